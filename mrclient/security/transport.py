"""How one connection to a model node is secured: plain, mutual TLS, or through a gateway.

A runner asks ``connect_transport`` for a transport at each connection attempt
and opens its channels with it; it then sends every main-channel call with the
transport's metadata and hands it the response's initial metadata to check:

* ``Transport`` itself: insecure channels, nothing added, nothing checked;
* ``MutualTlsTransport``: made by the TLS probe, so each attempt (and each
  reconnect) pins the certificate the node presents now; channels trust only
  that certificate and use the name ``model-node-<id>.crunchdao.internal``;
  every main-channel response must carry the participant's signed identity
  (``identity.NodeIdentity``);
* ``GatewayTransport``: TLS with gRPC's default roots (or the credentials'
  own), and a freshly signed token on every main-channel call.

Health channels use the same TLS, with no token and no identity check, as the
reference client does. This module knows nothing of runners: the runner
passes what it knows (address, model id, infos).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from .credentials import GatewayCredentials, SecureCredentials
from .identity import NodeIdentity
from .probe import node_server_name, probe_node_certificate

__all__ = ["PLAINTEXT", "GatewayTransport", "MutualTlsTransport", "Transport", "connect_transport"]

Metadata = tuple[tuple[str, str], ...]
ChannelOptions = tuple[tuple[str, Any], ...]


class Transport:
    """A plain-text connection: the base of the secure ones."""

    #: True when calls need neither metadata nor a response check (the fast path).
    plain = True

    def open_channel(self, target: str, options: ChannelOptions) -> grpc.Channel:
        """A new channel to the node (main or health: each its own connection)."""
        return grpc.insecure_channel(target, options=options)

    def call_metadata(self) -> Metadata | None:
        """Metadata to send with a main-channel call."""
        return None

    def check_response(self, initial_metadata: Iterable[tuple[str, Any]] | None) -> None:
        """Raise ``AuthError`` when a main-channel response does not prove the node's identity."""

    def certificate_changed(self, error: grpc.RpcError) -> bool:
        """Whether a failed call shows that the node now presents another certificate than the pinned one."""
        return False



class MutualTlsTransport(Transport):
    """Channels pinned to the certificate the probe saw; identity checked on every response."""

    plain = False

    def __init__(
        self, credentials: SecureCredentials, server_name: str, certificate_pem: bytes, identity: NodeIdentity
    ) -> None:
        self.server_name = server_name
        self.identity = identity
        self._channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=certificate_pem,
            private_key=credentials.key_bytes,
            certificate_chain=credentials.cert_bytes,
        )

    def open_channel(self, target: str, options: ChannelOptions) -> grpc.Channel:
        named = (("grpc.ssl_target_name_override", self.server_name), ("grpc.default_authority", self.server_name))
        return grpc.secure_channel(target, self._channel_credentials, options=options + named)

    def check_response(self, initial_metadata: Iterable[tuple[str, Any]] | None) -> None:
        self.identity.check(initial_metadata, time.time())

    def certificate_changed(self, error: grpc.RpcError) -> bool:
        # The channel trusts one certificate: a node that restarted with a new one
        # fails every handshake, and only a new probe (a reconnect) can pin it.
        details = error.details() or ""
        return bool(error.code() == grpc.StatusCode.UNAVAILABLE and "CERTIFICATE_VERIFY_FAILED" in details)


class GatewayTransport(Transport):
    """TLS to a gateway, and a signed token on every main-channel call.

    A token is valid for about 30 seconds and says only the model id and the
    second it was made, so the one made for this second is reused.
    """

    plain = False

    def __init__(self, credentials: GatewayCredentials, model_id: str) -> None:
        self.credentials = credentials
        self.model_id = model_id
        self._channel_credentials = grpc.ssl_channel_credentials(root_certificates=credentials.root_certificates)
        self._lock = threading.Lock()
        self._token: tuple[int, Metadata] | None = None

    def open_channel(self, target: str, options: ChannelOptions) -> grpc.Channel:
        return grpc.secure_channel(target, self._channel_credentials, options=options)

    def call_metadata(self, now: float | None = None) -> Metadata:
        second = int(time.time() if now is None else now)
        with self._lock:
            token = self._token
        if token is not None and token[0] == second:
            return token[1]
        metadata = self.credentials.token(self.model_id, second)
        with self._lock:
            self._token = (second, metadata)
        return metadata


#: The one plain-text transport: it holds no state, so every runner shares it.
PLAINTEXT = Transport()


def connect_transport(
    credentials: SecureCredentials | GatewayCredentials | None,
    *,
    host: str,
    port: int,
    model_id: str,
    infos: Mapping[str, Any],
) -> Transport:
    """The transport for one connection attempt; in mutual-TLS mode this runs the TLS probe.

    Raises ``OSError`` when the node cannot be reached (worth another
    attempt) and ``AuthError`` when it cannot be trusted or refuses us.
    """
    if credentials is None:
        return PLAINTEXT
    if isinstance(credentials, GatewayCredentials):
        return GatewayTransport(credentials, model_id)
    server_name = node_server_name(model_id)
    certificate = probe_node_certificate(host, port, server_name, credentials.ssl_context)
    identity = NodeIdentity(model_id, certificate.public_key_der, infos, check_expiry=credentials.check_expiry)
    return MutualTlsTransport(credentials, server_name, certificate.pem, identity)
