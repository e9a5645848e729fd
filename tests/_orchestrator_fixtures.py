"""Fixtures and helpers for the orchestrator and model-table tests.

Import the fixtures into a test module by name (``from _orchestrator_fixtures
import orchestrator, ...``). Every server started here is stopped by its
fixture, every cluster closed, and every wait is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mrclient.cluster.table import ModelCluster
from mrclient.orchestrator.connection import OrchestratorSettings, reconnect_backoff
from mrclient.runners import DynamicSubclassModelRunner, ModelRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

CRUNCH = "bird-game"
WAIT = 10.0  # bound on every wait for something that should happen
QUIET = 0.3  # how long to watch for something that should not happen

#: Fast timings: reconnects in tens of milliseconds, a dead peer noticed within a second.
FAST = OrchestratorSettings(
    ping_interval=0.5,
    ping_timeout=0.5,
    open_timeout=2.0,
    close_timeout=0.5,
    reconnect_wait=reconnect_backoff(initial=0.01, maximum=0.1, jitter=0.01),
)


@pytest.fixture
def orchestrator() -> Iterator[LocalOrchestrator]:
    """A LocalOrchestrator for CRUNCH on a free port; stopped after the test."""
    orch = LocalOrchestrator(crunch_id=CRUNCH)
    orch.start()
    try:
        yield orch
    finally:
        orch.stop()


@pytest.fixture
def node(local_node: Callable[..., LocalModelNode]) -> LocalModelNode:
    """A model node serving EwmaTracker (a TrackerBase)."""
    return local_node(classes=[TrackerBase, EwmaTracker])


class Recorder:
    """Listener events, in order, with bounded waits on them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ModelRunner]] = []
        self.threads: set[str] = set()
        self._changed = threading.Condition()

    def joined(self, runner: ModelRunner) -> None:
        self._add("joined", runner)

    def left(self, runner: ModelRunner) -> None:
        self._add("left", runner)

    def _add(self, kind: str, runner: ModelRunner) -> None:
        with self._changed:
            self.events.append((kind, runner))
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[tuple[str, ModelRunner]]], bool], timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.events), timeout)

    def wait_count(self, count: int, timeout: float = WAIT) -> bool:
        return self.wait_for(lambda events: len(events) >= count, timeout)

    def wait_for_events(self, *expected: tuple[str, str, str], timeout: float = WAIT) -> bool:
        """Until every ``(kind, model_id, deployment_id)`` of ``expected`` has happened."""
        return self.wait_for(lambda events: set(expected) <= {(k, r.model_id, r.deployment_id) for k, r in events},
                             timeout)

    def summary(self) -> list[tuple[str, str, str]]:
        """(kind, model_id, deployment_id) per event."""
        with self._changed:
            return [(kind, r.model_id, r.deployment_id) for kind, r in self.events]


class ClusterKit:
    """Makes clusters against the test's orchestrator and remembers every runner they create."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.clusters: list[ModelCluster] = []
        self.runners: list[ModelRunner] = []
        self._lock = threading.Lock()

    def factory(self, base_classname: str = BASE_CLASSNAME, **options: Any) -> Callable[..., ModelRunner]:
        def create(**identity: Any) -> ModelRunner:
            runner = DynamicSubclassModelRunner(
                base_classname=base_classname, retry_backoff_factor=0.01, **options, **identity
            )
            with self._lock:
                self.runners.append(runner)
            return runner

        return create

    def cluster(
        self,
        *,
        factory: Callable[..., ModelRunner] | None = None,
        report_failure: bool = True,
        recorder: Recorder | None = None,
        settings: OrchestratorSettings = FAST,
        **options: Any,
    ) -> ModelCluster:
        cluster = ModelCluster(
            CRUNCH, "127.0.0.1", self.port, factory or self.factory(), report_failure, settings=settings, **options
        )
        if recorder is not None:
            cluster.on_model_joined(recorder.joined)
            cluster.on_model_left(recorder.left)
        self.clusters.append(cluster)
        return cluster

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.close()


@pytest.fixture
def kit(orchestrator: LocalOrchestrator) -> Iterator[ClusterKit]:
    """Cluster factory for ``orchestrator``; every cluster is closed after the test."""
    made = ClusterKit(orchestrator.port)
    try:
        yield made
    finally:
        made.close()


# -- a peer that stops talking --------------------------------------------------


_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def text_frame(text: str) -> bytes:
    """An unmasked server-to-client text frame (payload under 126 bytes)."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


class SilentServer(socketserver.ThreadingTCPServer):
    """A TCP server that goes silent: after the handshake and an init (``mute=False``), or at once.

    Each connection's handler then waits, reading nothing, until ``stop()``. It
    counts the connections it accepted, so a test can see the client reconnect.
    """

    daemon_threads = True
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, mute: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _SilentHandler)
        self.mute = mute
        self.release = threading.Event()
        self.changed = threading.Condition()
        self.accepted = 0
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(WAIT)

    def wait_accepted(self, count: int, timeout: float = WAIT) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.accepted >= count, timeout)


class _SilentHandler(socketserver.BaseRequestHandler):
    server: SilentServer

    def handle(self) -> None:
        with self.server.changed:
            self.server.accepted += 1
            self.server.changed.notify_all()
        if not self.server.mute:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
            self.request.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + text_frame('{"event": "init", "data": []}')
            )
        self.server.release.wait(WAIT)


@pytest.fixture
def silent_server() -> Iterator[Callable[..., SilentServer]]:
    """Factory: ``silent_server(mute=False)`` starts a SilentServer; all are stopped after the test."""
    servers: list[SilentServer] = []

    def start(mute: bool = False) -> SilentServer:
        server = SilentServer(mute)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
