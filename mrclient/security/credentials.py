"""What a coordinator holds to reach model nodes in secure mode.

Two ways, never both: ``SecureCredentials`` (mutual TLS, the coordinator's
``ca.crt``, ``tls.crt`` and ``tls.key``) and ``GatewayCredentials`` (an RSA
key that signs a token for a TLS-terminating gateway). Loading them needs
nothing beyond the standard library, except the gateway's key, which needs the
``secure`` extra (``cryptography``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SecureCredentials:
    """PEM bytes of the CA that signs model nodes, and the coordinator's certificate and key."""

    ca_bytes: bytes
    cert_bytes: bytes
    key_bytes: bytes

    @classmethod
    def from_files(
        cls, ca_cert_path: str | Path, tls_cert_path: str | Path, tls_key_path: str | Path
    ) -> SecureCredentials:
        """Read the three PEM files (the CA's certificate, the coordinator's certificate and key)."""
        return cls(Path(ca_cert_path).read_bytes(), Path(tls_cert_path).read_bytes(), Path(tls_key_path).read_bytes())

    @classmethod
    def from_directory(cls, path: str | Path) -> SecureCredentials:
        """``ca.crt``, ``tls.crt`` and ``tls.key`` from one directory."""
        directory = Path(path)
        return cls.from_files(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")


@dataclass(frozen=True)
class GatewayCredentials:
    """The coordinator's RSA private key (a ``cryptography`` key object); only RSA is accepted."""

    private_key: Any

    @classmethod
    def from_pem(cls, key_pem: bytes) -> GatewayCredentials:
        """Load an unencrypted PEM private key; TypeError unless it is RSA."""
        try:
            from cryptography.hazmat.primitives.asymmetric import rsa
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
        except ImportError as error:
            raise ImportError("gateway credentials need cryptography: pip install 'mrclient[secure]'") from error
        key = load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"gateway credentials need an RSA key, got {type(key).__name__}")
        return cls(key)

    @classmethod
    def from_files(cls, key_path: str | Path) -> GatewayCredentials:
        """Load the RSA private key from a PEM file (see :meth:`from_pem`)."""
        return cls.from_pem(Path(key_path).read_bytes())
