"""What a coordinator holds to reach model nodes in secure mode.

Two ways, never both (SECURE-MODE.md): ``SecureCredentials`` (mutual TLS: the
CA that signs model nodes, the coordinator's certificate and key) and
``GatewayCredentials`` (an RSA key that signs a short-lived token for a
TLS-terminating gateway). Both are checked when they are made, so a wrong file
or a mismatched key fails at start-up with the file's name rather than on the
first model. Both need the ``secure`` extra (``cryptography``, ``base58``);
importing this module does not.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._support.extras import install_hint
from .._support.validation import check_flag, check_instance, check_text, check_wait
from ..errors import MrclientError

__all__ = ["GatewayCredentials", "SecureCredentials", "require_secure_extra"]

#: The metadata a gateway token travels in (SECURE-MODE.md B).
GATEWAY_MESSAGE_HEADER = "x-gateway-auth-message"
GATEWAY_SIGNATURE_HEADER = "x-gateway-auth-signature"
GATEWAY_PUBKEY_HEADER = "x-gateway-auth-pubkey"


def require_secure_extra() -> None:
    """Raise an ImportError naming the ``secure`` extra when its packages are missing."""
    try:
        import base58  # noqa: F401
        import cryptography  # noqa: F401
    except ImportError as error:
        raise ImportError(f"secure mode needs {error.name}, which is missing: {install_hint('secure')}") from error


def _path(name: str, path: Any) -> str | os.PathLike[str]:
    """A file or directory path: a string or a ``pathlib.Path``."""
    checked: str | os.PathLike[str] = check_instance(name, path, (str, os.PathLike), "a path (str or pathlib.Path)")
    return checked


def _read(path: str | Path, what: str, name: str) -> bytes:
    try:
        return Path(_path(name, path)).read_bytes()
    except OSError as error:
        raise MrclientError(f"cannot read the {what} {str(path)!r}: {error.strerror or error}") from error


@dataclass(frozen=True)
class SecureCredentials:
    """Mutual TLS: PEM bytes of the CA that signs model nodes, and the coordinator's certificate and key.

    The CA is used only to check each node's certificate when the runner first
    reaches it (the TLS probe); the gRPC channel then trusts that one
    certificate. ``check_expiry=False`` accepts node identity messages whose
    ``expires_at`` has passed (the reference client never checks it; mrclient
    does by default).
    """

    ca_bytes: bytes
    cert_bytes: bytes
    key_bytes: bytes
    check_expiry: bool = True
    ssl_context: ssl.SSLContext = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("ca_bytes", "cert_bytes", "key_bytes"):
            check_instance(name, getattr(self, name), bytes, "PEM bytes (or use SecureCredentials.from_files)")
        check_flag("check_expiry", self.check_expiry)
        require_secure_extra()
        object.__setattr__(self, "ssl_context", _client_ssl_context(self.ca_bytes, self.cert_bytes, self.key_bytes))

    @classmethod
    def from_files(
        cls,
        ca_cert_path: str | Path,
        tls_cert_path: str | Path,
        tls_key_path: str | Path,
        *,
        check_expiry: bool = True,
    ) -> SecureCredentials:
        """Read the three PEM files; an unreadable one is named in the error."""
        check_flag("check_expiry", check_expiry)
        return cls(
            _read(ca_cert_path, "CA certificate", "ca_cert_path"),
            _read(tls_cert_path, "coordinator certificate", "tls_cert_path"),
            _read(tls_key_path, "coordinator key", "tls_key_path"),
            check_expiry,
        )

    @classmethod
    def from_directory(cls, path: str | Path, *, check_expiry: bool = True) -> SecureCredentials:
        """``ca.crt``, ``tls.crt`` and ``tls.key`` from one directory (as the issuer tool writes them)."""
        directory = Path(_path("path", path))
        return cls.from_files(
            directory / "ca.crt", directory / "tls.crt", directory / "tls.key", check_expiry=check_expiry
        )


def _client_ssl_context(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """The probe's TLS settings (SECURE-MODE.md A1): verify the node with the CA, show our certificate, ALPN h2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and hostname checks by default
    context.set_alpn_protocols(["h2"])
    try:
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    except (ssl.SSLError, ValueError) as error:
        raise MrclientError(f"the CA certificate is not a PEM certificate: {error}") from error
    # load_cert_chain reads files only: a private file that lives just long enough.
    fd, path = tempfile.mkstemp(prefix="mrclient-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as chain:  # mkstemp makes it 0600
            chain.write(key_pem.rstrip(b"\n") + b"\n" + cert_pem)
        context.load_cert_chain(path)
    except ssl.SSLError as error:
        raise MrclientError(
            f"the coordinator certificate and key do not load together (not PEM, or not a pair): {error}"
        ) from error
    finally:
        os.unlink(path)
    return context


@dataclass(frozen=True)
class GatewayCredentials:
    """The coordinator's RSA private key, which signs a token on every call to a gateway.

    ``private_key`` is a ``cryptography`` RSA key object; only RSA is accepted,
    as by the gateway. ``root_certificates`` (PEM) replaces gRPC's default
    roots for a gateway behind a private CA; the default (None) is gRPC's
    roots, as the reference client uses.
    """

    private_key: Any
    root_certificates: bytes | None = None
    public_key_b64: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require_secure_extra()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise TypeError(
                f"private_key: gateway credentials need an RSA private key, got {_key_kind(self.private_key)}"
            )
        check_instance("root_certificates", self.root_certificates, bytes, "PEM bytes or None", optional=True)
        spki = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        object.__setattr__(self, "public_key_b64", base64.b64encode(spki).decode("ascii"))

    @classmethod
    def from_pem(cls, key_pem: bytes, *, root_certificates: bytes | None = None) -> GatewayCredentials:
        """An unencrypted PEM private key; a non-RSA key is a TypeError naming its type."""
        check_instance("key_pem", key_pem, bytes, "PEM bytes (or use GatewayCredentials.from_files)")
        require_secure_extra()
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as error:
            raise MrclientError(f"the gateway key is not an unencrypted PEM private key: {error}") from error
        return cls(key, root_certificates)

    @classmethod
    def from_files(
        cls,
        cert_or_key_path: str | Path,
        key_path: str | Path | None = None,
        *,
        root_certificates: bytes | None = None,
    ) -> GatewayCredentials:
        """``from_files(key_path)``, or the reference's ``from_files(cert_path, key_path)`` (the certificate unused)."""
        _path("cert_or_key_path", cert_or_key_path)
        if key_path is None:
            return cls.from_pem(_read(cert_or_key_path, "gateway key", "cert_or_key_path"),
                                root_certificates=root_certificates)
        return cls.from_pem(_read(key_path, "gateway key", "key_path"), root_certificates=root_certificates)

    def token(self, model_id: str, now: float | None = None) -> tuple[tuple[str, str], ...]:
        """The three ``x-gateway-auth-*`` headers for one call to ``model_id``.

        The message is the compact JSON ``{"model_id": ..., "timestamp": <unix
        seconds>}`` (that key order), signed with RSA PKCS#1 v1.5 and SHA-256;
        the gateway accepts it for about 30 seconds.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        check_text("model_id", model_id, "the model's id, a non-empty string")
        if now is not None:
            check_wait("now", now)  # unix seconds
        timestamp = int(time.time() if now is None else now)
        message = json.dumps({"model_id": model_id, "timestamp": timestamp}, separators=(",", ":")).encode()
        signature = self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return (
            (GATEWAY_MESSAGE_HEADER, base64.b64encode(message).decode("ascii")),
            (GATEWAY_SIGNATURE_HEADER, base64.b64encode(signature).decode("ascii")),
            (GATEWAY_PUBKEY_HEADER, self.public_key_b64),
        )


def _key_kind(key: Any) -> str:
    """The name of a key's type as ``cryptography`` documents it (its classes are Rust bindings).

    DSA is not in the list: naming its class warns that DSA is deprecated, and its binding's name is the documented one.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

    for kind in (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey):
        if isinstance(key, kind):
            return kind.__name__
    return type(key).__name__
