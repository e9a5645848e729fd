"""The TLS probe: reach a secure node once over plain TLS to learn its certificate.

Before each connection attempt in mutual-TLS mode the runner opens a plain TLS
connection (SECURE-MODE.md A3): the node's certificate must chain to the
coordinator's CA and name ``model-node-<model_id>.crunchdao.internal``, the
coordinator shows its own certificate, and ALPN offers ``h2``. After the
handshake one byte is read: a gRPC server speaks first (its HTTP/2 SETTINGS),
while a server that refused our certificate under TLS 1.3 can only say so by
an alert or by closing the connection right there. The gRPC channel is then
pinned to the certificate seen here, and the node's identity messages must
name its key.

What goes wrong is sorted for the retry policy: a node not listening yet, a
reset or a timeout is worth another attempt (``OSError``); a certificate that
does not check out, a refusal of ours or a non-RSA key is not (``AuthError``).
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from .errors import PLAINTEXT_NODE, REFUSED, AuthError

__all__ = ["NodeCertificate", "PROBE_TIMEOUT", "node_server_name", "probe_node_certificate"]

#: The whole probe (connect, handshake, first byte) is bounded by this, in seconds.
PROBE_TIMEOUT = 5.0

#: TLS alerts a server sends about the client's certificate: the node refused the coordinator.
_REFUSAL_ALERTS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_ACCESS_DENIED",
    "ALERT_HANDSHAKE_FAILURE",
)
#: What OpenSSL says when the other end answers a TLS hello with something else than TLS.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")


def node_server_name(model_id: str) -> str:
    """The name a model node's certificate carries, also the channel's target name override."""
    return f"model-node-{model_id}.crunchdao.internal"


@dataclass(frozen=True)
class NodeCertificate:
    """The node's leaf certificate as the probe saw it."""

    pem: bytes  # the channel's only trusted root
    public_key_der: bytes  # DER SubjectPublicKeyInfo, what the identity message's cert_pub must be


def probe_node_certificate(
    host: str,
    port: int,
    server_name: str,
    context: ssl.SSLContext,
    timeout: float = PROBE_TIMEOUT,
) -> NodeCertificate:
    """Handshake with the node at ``host:port`` and return its verified RSA leaf certificate.

    Raises ``OSError`` for what another attempt may cure, ``AuthError`` for
    what it cannot.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as raw:
        raw.settimeout(_left(deadline))
        try:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                leaf_der = tls.getpeercert(binary_form=True)
                tls.settimeout(_left(deadline))
                first = tls.recv(1)
        except ssl.SSLCertVerificationError as error:
            raise AuthError(f"the node's TLS certificate is not trusted: {error.verify_message}") from None
        except ssl.SSLError as error:
            raise _classify_ssl_error(error) from None
    if not first:
        raise AuthError(
            "the node closed the connection right after the TLS handshake: "
            "it did not accept the coordinator's certificate",
            code=REFUSED,
        )
    if not leaf_der:
        raise AuthError("the node presented no TLS certificate")
    return _rsa_leaf(leaf_der)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the TLS probe ran out of time")
    return left


def _classify_ssl_error(error: ssl.SSLError) -> Exception:
    reason = str(error.reason or error)
    if any(alert in reason.upper() for alert in _REFUSAL_ALERTS):
        return AuthError(
            f"the node refused the coordinator's certificate in the TLS handshake ({reason})", code=REFUSED
        )
    if any(sign in reason.upper() for sign in _NOT_TLS):
        return AuthError(f"the node does not speak TLS: it is not in secure mode ({reason})", code=PLAINTEXT_NODE)
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return ConnectionResetError(f"the TLS handshake was cut short: {reason}")
    return AuthError(f"the TLS handshake with the node failed ({reason})")


def _rsa_leaf(leaf_der: bytes) -> NodeCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    certificate = x509.load_der_x509_certificate(leaf_der)
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AuthError(f"the node's TLS key is not RSA ({type(public_key).__name__})")
    return NodeCertificate(
        pem=certificate.public_bytes(serialization.Encoding.PEM),
        public_key_der=public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
