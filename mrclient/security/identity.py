"""Is this model node the participant's? The identity check of every secure response.

In mutual-TLS mode a node sends, in the initial metadata of every response, a
message its participant signed with their wallet: the node's TLS public key,
the model id and the participant's hotkey. ``check_node_identity`` decides,
from plain data, whether a response's metadata proves that the node we reached
(the TLS key the probe saw) serves the model the orchestrator announced. The
checks run in the reference client's order with its exact comparisons
(SECURE-MODE.md A5), plus the expiry mrclient enforces (part E.1).

``NodeIdentity`` holds what one connection expects and remembers the last
metadata it accepted: a node sends the same three values on every call, so
after the first call only the expiry is checked again.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import AuthError

__all__ = [
    "IDENTITY_HEADERS",
    "MESSAGE_HEADER",
    "NodeIdentity",
    "SIGNATURE_HEADER",
    "WALLET_HEADER",
    "check_node_identity",
]

MESSAGE_HEADER = "x-server-auth-message"
SIGNATURE_HEADER = "x-server-auth-signature"
WALLET_HEADER = "x-server-wallet-pubkey"
IDENTITY_HEADERS = (MESSAGE_HEADER, SIGNATURE_HEADER, WALLET_HEADER)


@dataclass(frozen=True)
class ExpectedIdentity:
    """What the node must prove: from the orchestrator (model id, wallet, hotkey) and the TLS probe (its key)."""

    model_id: str
    wallet_pubkey: Any  # infos["cruncher_wallet_pubkey"]: compared as given, None included
    hotkey: Any  # infos["cruncher_hotkey"]
    cert_pub: bytes  # DER SubjectPublicKeyInfo of the certificate the probe saw


def identity_headers(metadata: Iterable[tuple[str, Any]] | None) -> tuple[Any, Any, Any]:
    """The three identity values of a response's metadata (keys compared lower-cased), None when absent."""
    found: dict[str, Any] = {}
    for key, value in metadata or ():
        name = key.lower()
        if name in IDENTITY_HEADERS and name not in found:
            found[name] = value
    return found.get(MESSAGE_HEADER), found.get(SIGNATURE_HEADER), found.get(WALLET_HEADER)


def check_node_identity(
    headers: tuple[Any, Any, Any],
    expected: ExpectedIdentity,
    *,
    now: float | None,
) -> int | None:
    """Check a node's identity headers; return the message's ``expires_at`` (None if it has none).

    Raises ``AuthError`` naming the first check that failed, in this order:
    headers present; base64/base58 decoding; wallet key equal (as a string) to
    the announced one; Ed25519 signature over the decoded message bytes; the
    message is a JSON object with ``cert_pub``; ``cert_pub`` is the key of the
    certificate the TLS probe saw; ``model_id`` and ``hotkey`` equal the
    announced ones (strict equality); ``expires_at`` an integer and, unless
    ``now`` is None, not in the past.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    message_b64, signature_b64, wallet_b58 = headers
    missing = [name for name, value in zip(IDENTITY_HEADERS, headers, strict=True) if not value]
    if missing:
        raise AuthError(f"the node sent no identity: missing {', '.join(missing)}")
    if not all(isinstance(value, str) for value in headers):
        raise AuthError("the node's identity headers are not text")

    try:
        message = base64.b64decode(message_b64)
        signature = base64.b64decode(signature_b64)
    except (binascii.Error, ValueError) as error:
        raise AuthError(f"the node's identity message or signature is not base64: {error}") from None
    wallet = _b58decode(wallet_b58)

    if wallet_b58 != expected.wallet_pubkey:
        raise AuthError(
            f"the node is signed by wallet {wallet_b58!r}, not by the participant's {expected.wallet_pubkey!r}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(wallet).verify(signature, message)
    except InvalidSignature:
        raise AuthError(
            "the signature of the node's identity message does not verify with the participant's wallet"
        ) from None
    except ValueError as error:  # not a 32-byte Ed25519 key
        raise AuthError(f"the participant's wallet key is not an Ed25519 key: {error}") from None

    payload = _json_object(message)
    cert_pub_b64 = payload.get("cert_pub")
    if not cert_pub_b64 or not isinstance(cert_pub_b64, str):
        raise AuthError("the node's identity message has no cert_pub")
    try:
        cert_pub = base64.b64decode(cert_pub_b64)
    except (binascii.Error, ValueError) as error:
        raise AuthError(f"the cert_pub of the node's identity message is not base64: {error}") from None
    if cert_pub != expected.cert_pub:
        raise AuthError("the node's identity message is for another TLS key than the certificate it presented")
    if payload.get("model_id") != expected.model_id:
        raise AuthError(
            f"the node's identity message is for model {payload.get('model_id')!r}, not {expected.model_id!r}"
        )
    if payload.get("hotkey") != expected.hotkey:
        raise AuthError(f"the node's identity message is for hotkey {payload.get('hotkey')!r}, not {expected.hotkey!r}")

    if "expires_at" not in payload:
        return None
    expires_at = payload["expires_at"]
    if type(expires_at) is not int:
        raise AuthError(f"the node's identity message has a non-integer expires_at: {expires_at!r}")
    check_not_expired(expires_at, now)
    return expires_at


def check_not_expired(expires_at: int | None, now: float | None) -> None:
    """Raise ``AuthError`` when ``expires_at`` (unix seconds) is before ``now``; None skips the check."""
    if expires_at is None or now is None or expires_at >= now:
        return
    when = datetime.fromtimestamp(expires_at, timezone.utc).isoformat(timespec="seconds")
    raise AuthError(f"the node's identity message expired at {when} (expires_at={expires_at})")


def _b58decode(text: str) -> bytes:
    import base58

    try:
        decoded: bytes = base58.b58decode(text)
    except ValueError as error:
        raise AuthError(f"the node's wallet key is not base58: {error}") from None
    return decoded


def _json_object(message: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(message.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise AuthError(f"the node's identity message is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise AuthError("the node's identity message is not a JSON object")
    return payload


class NodeIdentity:
    """Checks the identity of one connection's responses; thread-safe.

    The wallet and hotkey are read from the runner's ``infos`` at each check,
    so a refresh from the orchestrator applies at once. The last accepted
    headers are remembered with their expiry: the same headers again cost a
    comparison and a clock read, not a signature check.
    """

    def __init__(self, model_id: str, cert_pub: bytes, infos: Mapping[str, Any], *, check_expiry: bool = True) -> None:
        self.model_id = model_id
        self.cert_pub = cert_pub
        self.check_expiry = check_expiry
        self._infos = infos
        self._lock = threading.Lock()
        self._accepted: tuple[tuple[Any, ...], int | None] | None = None

    def check(self, metadata: Iterable[tuple[str, Any]] | None, now: float) -> None:
        """Raise ``AuthError`` unless ``metadata`` proves the node's identity."""
        headers = identity_headers(metadata)
        wallet, hotkey = self._infos.get("cruncher_wallet_pubkey"), self._infos.get("cruncher_hotkey")
        key = (*headers, wallet, hotkey)
        clock = now if self.check_expiry else None
        with self._lock:
            accepted = self._accepted
        if accepted is not None and accepted[0] == key:
            check_not_expired(accepted[1], clock)
            return
        expected = ExpectedIdentity(self.model_id, wallet, hotkey, self.cert_pub)
        expires_at = check_node_identity(headers, expected, now=clock)
        with self._lock:
            self._accepted = (key, expires_at)
