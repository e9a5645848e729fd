"""A model node's RPCs, recorded: a gRPC proxy on loopback in front of a real node.

The orchestrator announces the proxy's port instead of the node's, so every
client's RPCs (a coordinator's, a watcher's) pass through it: it forwards each
unary call, bytes as they are, to the node (a ``LocalModelNode`` or the
reference node in its own process) and records the method and the status the
node answered. Nothing of the node is changed, and the same proxy serves both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import grpc
import pytest


class Recorded(NamedTuple):
    """One RPC that reached the node: the method's last part (``Setup``, ``Call``, ``Check``...) and its status."""

    method: str
    code: str


class RecordingProxy:
    """Forwards every unary RPC to ``target`` and records it; ``port`` is where clients connect."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._lock = threading.Lock()
        self._recorded: list[Recorded] = []
        # grpc.server does not own the pool it is given: stop() shuts it down.
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="local-model-node-proxy")
        self._server = grpc.server(self._pool, handlers=[_Forward(self)])
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def start(self) -> RecordingProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(None).wait(10)
        self._pool.shutdown(wait=True)
        self._channel.close()

    @property
    def recorded(self) -> list[Recorded]:
        with self._lock:
            return list(self._recorded)

    def methods(self) -> list[str]:
        return [rpc.method for rpc in self.recorded]

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        remaining = context.time_remaining()
        call = self._channel.unary_unary(method)  # no serializers: the request's bytes as they came
        try:
            response: bytes = call(request, timeout=None if remaining is None or remaining > 1e6 else remaining)
        except grpc.RpcError as error:
            self._record(method, error.code().name)
            context.abort(error.code(), error.details() or "")
        self._record(method, "OK")
        return response

    def _record(self, method: str, code: str) -> None:
        with self._lock:
            self._recorded.append(Recorded(method.rsplit("/", 1)[-1], code))


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, proxy: RecordingProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        return grpc.unary_unary_rpc_method_handler(lambda request, context: self.proxy.forward(method, request, context))


@pytest.fixture(name="recording_proxy")
def recording_proxy_fixture() -> Iterator[Callable[[str], RecordingProxy]]:
    """Factory: ``recording_proxy("127.0.0.1:port")`` starts a proxy to that node; all stopped after the test."""
    proxies: list[RecordingProxy] = []

    def start(target: str) -> RecordingProxy:
        proxy = RecordingProxy(target).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()
