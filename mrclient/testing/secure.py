"""Secure mode on loopback: a throwaway certificate authority, crunchers' wallets, and secure node settings.

Production secure mode needs certificates from CrunchDAO's issuer, participants'
wallets and on-chain registrations. ``LocalCertificateAuthority`` stands in for
all of it, so a coordinator can try secure mode (and test its own code in it)
in a few lines::

    authority = LocalCertificateAuthority()
    cruncher = Cruncher.generate()
    node = LocalModelNode(classes=[...], secure=authority.mutual_tls_node("model-1", cruncher))
    orchestrator.add_model(port=node.start().port, model_id="model-1", infos=cruncher.infos())
    runner = DynamicSubclassModelConcurrentRunner(..., secure_credentials=authority.coordinator_credentials())

The node side behaves like the secure model node (SECURE-MODE.md A7, B and
F): mutual TLS with the coordinator's certificate checked against registered
SHA-256 hashes of its public key, the participant's signed identity in the
initial metadata of every unary response, and, in gateway mode, a token
check. Unlike the real node it serves whatever identity it is given, so tests
can play an impostor. Messages have the issuer tool's shape (``cert_pub``,
``hotkey``, ``model_id``, Python's default JSON separators).

Needs the ``secure`` extra (``cryptography``, ``base58``).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from .._support.extras import install_hint
from ..security import GatewayCredentials, SecureCredentials
from ..security.credentials import GATEWAY_MESSAGE_HEADER, GATEWAY_PUBKEY_HEADER, GATEWAY_SIGNATURE_HEADER
from ..security.identity import MESSAGE_HEADER, SIGNATURE_HEADER, WALLET_HEADER
from ..security.probe import node_server_name

try:
    import base58
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"mrclient.testing.secure needs cryptography and base58: {install_hint('secure')}") from error

__all__ = [
    "Cruncher",
    "GatewayNodeSecurity",
    "LocalCertificateAuthority",
    "MutualTlsNodeSecurity",
    "SignedIdentity",
    "UnaryInterceptor",
    "public_key_der",
    "public_key_sha256",
]

_PEM = serialization.Encoding.PEM
_HEALTH_METHODS = ("/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch")
REFUSED_MESSAGE = "TLS certificate hash does not match registered certificate"


def public_key_der(certificate_or_key: Any) -> bytes:
    """DER SubjectPublicKeyInfo of a certificate's or a key's public key (PEM bytes or objects)."""
    if isinstance(certificate_or_key, bytes):
        certificate_or_key = x509.load_pem_x509_certificate(certificate_or_key)
    public = certificate_or_key.public_key()
    der: bytes = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def public_key_sha256(certificate_or_key: Any) -> str:
    """The hex SHA-256 of a public key's DER SubjectPublicKeyInfo: what nodes register for a coordinator."""
    return hashlib.sha256(public_key_der(certificate_or_key)).hexdigest()


def _private_pem(key: Any) -> bytes:
    pem: bytes = key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem


# -- participants ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIdentity:
    """What a secure node sends with every response (its ``cruncher_msg.json``)."""

    message_b64: str
    signature_b64: str
    wallet_pubkey_b58: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (
            (MESSAGE_HEADER, self.message_b64),
            (SIGNATURE_HEADER, self.signature_b64),
            (WALLET_HEADER, self.wallet_pubkey_b58),
        )

    @property
    def message(self) -> bytes:
        return base64.b64decode(self.message_b64)

    @classmethod
    def from_json(cls, text: str | bytes) -> SignedIdentity:
        """From the ``{"message_b64", "signature_b64", "wallet_pubkey_b58"}`` file the issuer tool writes."""
        fields = json.loads(text)
        return cls(fields["message_b64"], fields["signature_b64"], fields["wallet_pubkey_b58"])


@dataclass(frozen=True)
class Cruncher:
    """A participant: an Ed25519 wallet and a hotkey, as the orchestrator announces them."""

    wallet_key: ed25519.Ed25519PrivateKey
    hotkey: str

    @classmethod
    def generate(cls, hotkey: str | None = None) -> Cruncher:
        key = ed25519.Ed25519PrivateKey.generate()
        return cls(key, hotkey or f"hotkey-{base58.b58encode(key.public_key().public_bytes_raw()[:6]).decode()}")

    @property
    def wallet_pubkey(self) -> str:
        """The wallet's public key, base58, as in ``infos["cruncher_wallet_pubkey"]``."""
        encoded: bytes = base58.b58encode(self.wallet_key.public_key().public_bytes_raw())
        return encoded.decode("ascii")

    def infos(self) -> dict[str, str]:
        """The ``infos`` keys the orchestrator sends for this participant's models."""
        return {"cruncher_wallet_pubkey": self.wallet_pubkey, "cruncher_hotkey": self.hotkey}

    def sign(self, message: bytes) -> SignedIdentity:
        """Sign ``message`` bytes as they are (the node sends them base64-encoded)."""
        return SignedIdentity(
            base64.b64encode(message).decode("ascii"),
            base64.b64encode(self.wallet_key.sign(message)).decode("ascii"),
            self.wallet_pubkey,
        )

    def sign_identity(
        self,
        node_certificate: bytes,
        model_id: str | None,
        *,
        expires_at: Any = None,
        **extra: Any,
    ) -> SignedIdentity:
        """The delegation a secure node serves: its TLS key, the hotkey and the model id, signed.

        Keys in the issuer tool's order (``cert_pub``, ``hotkey``, ``model_id``),
        then ``expires_at`` when given, then ``extra`` (to build odd messages in tests).
        """
        payload: dict[str, Any] = {
            "cert_pub": base64.b64encode(public_key_der(node_certificate)).decode("ascii"),
            "hotkey": self.hotkey,
        }
        if model_id is not None:
            payload["model_id"] = model_id
        if expires_at is not None:
            payload["expires_at"] = expires_at
        payload.update(extra)
        return self.sign(json.dumps(payload).encode("utf-8"))


# -- what a secure node needs --------------------------------------------------------------


@dataclass(frozen=True)
class MutualTlsNodeSecurity:
    """A node in mutual-TLS mode: its certificate, whom it accepts, and the identity it sends.

    ``identity=None`` sends no identity headers (an impostor, or an old node).
    """

    server_key: bytes
    server_cert: bytes
    client_ca: bytes  # the CA that signs coordinators' certificates
    coordinator_key_hashes: tuple[str, ...]  # COORDINATOR_CERT_HASH and COORDINATOR_CERT_HASH_SECONDARY
    identity: SignedIdentity | None

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server_key, self.server_cert)], root_certificates=self.client_ca, require_client_auth=True
        )

    def check_call(self, method: str, context: grpc.ServicerContext) -> None:
        """The node's coordinator check, then its identity headers (SECURE-MODE.md A7); may abort."""
        certificates = context.auth_context().get("x509_pem_cert") or [b""]
        try:
            accepted = public_key_sha256(certificates[0]) in self.coordinator_key_hashes
        except ValueError:
            accepted = False
        if not accepted:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSED_MESSAGE)
        if self.identity is not None:
            context.send_initial_metadata(self.identity.metadata())


@dataclass(frozen=True)
class GatewayToken:
    """A token a gateway node accepted, for tests to look at."""

    method: str
    model_id: Any
    timestamp: int
    public_key_sha256: str


@dataclass
class GatewayNodeSecurity:
    """A node behind a TLS gateway: plain TLS, and a coordinator token on every call but health's.

    Accepts RSA keys whose SHA-256 (of the DER public key) is registered, a
    PKCS#1 v1.5 SHA-256 signature, and a timestamp at most ``max_age`` seconds
    old and ``max_ahead`` seconds ahead (the newest node code's bounds).
    """

    server_key: bytes
    server_cert: bytes
    coordinator_key_hashes: tuple[str, ...]
    max_age: float = 30.0
    max_ahead: float = 5.0
    #: Every token accepted, in order (the node keeps no other state about tokens).
    accepted: list[GatewayToken] = field(default_factory=list)
    #: Every refusal's reason, in order.
    refused: list[str] = field(default_factory=list)
    #: For each health call, whether it carried a token (it should not).
    health_calls: list[bool] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.server_key, self.server_cert)])

    def check_call(self, method: str, context: grpc.ServicerContext) -> None:
        """Verify the coordinator's token, except on health calls; may abort."""
        if method in _HEALTH_METHODS:
            with self._lock:
                self.health_calls.append(GATEWAY_MESSAGE_HEADER in dict(context.invocation_metadata()))
            return
        try:
            token = self._verify(method, dict(context.invocation_metadata()))
        except ValueError as error:
            with self._lock:
                self.refused.append(str(error))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"gateway authentication failed: {error}")
        with self._lock:
            self.accepted.append(token)

    def _verify(self, method: str, metadata: Mapping[str, Any]) -> GatewayToken:
        try:
            message = base64.b64decode(metadata[GATEWAY_MESSAGE_HEADER], validate=True)
            signature = base64.b64decode(metadata[GATEWAY_SIGNATURE_HEADER], validate=True)
            key_der = base64.b64decode(metadata[GATEWAY_PUBKEY_HEADER], validate=True)
        except KeyError as missing:
            raise ValueError(f"missing {missing.args[0]}") from None
        key_hash = hashlib.sha256(key_der).hexdigest()
        if key_hash not in self.coordinator_key_hashes:
            raise ValueError("public key not registered")
        public_key = serialization.load_der_public_key(key_der)
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("only RSA keys are accepted")
        try:
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ValueError("bad signature") from None
        payload = json.loads(message)
        timestamp = payload.get("timestamp")
        if type(timestamp) is not int:
            raise ValueError("no timestamp")
        age = time.time() - timestamp
        if age > self.max_age or -age > self.max_ahead:
            raise ValueError(f"timestamp {timestamp} out of range ({age:+.0f}s)")
        return GatewayToken(method, payload.get("model_id"), timestamp, key_hash)


class UnaryInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Runs ``check(method, context)`` before every unary-unary handler (it may abort)."""

    def __init__(self, check: Callable[[str, grpc.ServicerContext], None]) -> None:
        self._check = check

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        behaviour = handler.unary_unary
        check = self._check

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            check(method, context)
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# -- the authority ------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class LocalCertificateAuthority:
    """A throwaway CA that issues node and coordinator certificates, like CrunchDAO's issuer.

    It makes one coordinator certificate at once (``coordinator_credentials``),
    registered with every node it configures. Keys are RSA, as the protocol
    needs for node certificates and gateway keys.
    """

    def __init__(self, common_name: str = "mrclient local CA", *, days: int = 7) -> None:
        self.days = days
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.coordinator_key, self.coordinator_cert = self.issue("coordinator", client=True)
        self.gateway_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def ca_pem(self) -> bytes:
        return self.certificate.public_bytes(_PEM)

    def issue(
        self,
        common_name: str,
        *,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        client: bool = False,
    ) -> tuple[bytes, bytes]:
        """A new RSA key and a certificate for it signed by this CA: ``(key_pem, cert_pem)``."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=self.days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return _private_pem(key), certificate.public_bytes(_PEM)

    # -- the coordinator's side ---------------------------------------------------------

    def coordinator_credentials(self, *, check_expiry: bool = True) -> SecureCredentials:
        """What the coordinator holds in mutual-TLS mode (``ca.crt``, ``tls.crt``, ``tls.key``)."""
        return SecureCredentials(self.ca_pem, self.coordinator_cert, self.coordinator_key, check_expiry)

    def write_coordinator_files(self, directory: str | Path) -> Path:
        """Write ``ca.crt``, ``tls.crt`` and ``tls.key`` (0600) into ``directory``; returns it."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / "ca.crt").write_bytes(self.ca_pem)
        (path / "tls.crt").write_bytes(self.coordinator_cert)
        key = path / "tls.key"
        key.touch(mode=0o600)
        key.write_bytes(self.coordinator_key)
        return path

    def gateway_credentials(self) -> GatewayCredentials:
        """The coordinator's gateway key, trusting this CA's gateway certificates."""
        return GatewayCredentials(self.gateway_key, root_certificates=self.ca_pem)

    def write_gateway_key(self, path: str | Path) -> Path:
        """Write the coordinator's gateway key (PEM, 0600) to ``path``; returns it."""
        target = Path(path)
        target.touch(mode=0o600)
        target.write_bytes(_private_pem(self.gateway_key))
        return target

    # -- the nodes' side ----------------------------------------------------------------

    def mutual_tls_node(
        self,
        model_id: str,
        cruncher: Cruncher,
        *,
        expires_at: Any = None,
        server_name: str | None = None,
    ) -> MutualTlsNodeSecurity:
        """A node for ``model_id`` in mutual-TLS mode, its identity signed by ``cruncher``.

        Its certificate names ``server_name`` (default: the model's own node
        name), and it accepts this authority's coordinator certificate.
        """
        key, cert = self.issue(f"model node {model_id}", dns_names=[server_name or node_server_name(model_id)])
        return MutualTlsNodeSecurity(
            server_key=key,
            server_cert=cert,
            client_ca=self.ca_pem,
            coordinator_key_hashes=(public_key_sha256(self.coordinator_cert),),
            identity=cruncher.sign_identity(cert, model_id, expires_at=expires_at),
        )

    def gateway_node(self, host: str = "127.0.0.1") -> GatewayNodeSecurity:
        """A node behind a gateway at ``host`` that accepts this authority's gateway key."""
        address = [host] if _is_ip(host) else []
        key, cert = self.issue(f"gateway {host}", dns_names=[] if address else [host], ip_addresses=address)
        return GatewayNodeSecurity(key, cert, (public_key_sha256(self.gateway_key),))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
