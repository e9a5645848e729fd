"""Peers that misbehave on purpose, and measures of what a client holds.

* ``FaultyProxy``: a TCP proxy that can hold bytes (a network that freezes
  mid-call), swallow them (a black hole), cut its connections, and heal;
* ``serve_garbage``: a gRPC node whose Setup succeeds and whose every answer
  carries a Variant that cannot be decoded;
* ``InstantRunner``: a runner whose "node" answers at once in-process, for
  tables of thousands of models that no CI machine can run as real nodes;
* ``Resources``: threads, file descriptors and resident memory of this process.

Every server here is stopped by the fixture that made it; every wait is bounded.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.runners import CLOSED_OUTCOME, CallOutcome, DynamicSubclassModelRunner
from mrclient.wire.proto.commons_pb2 import Status, Variant, VariantType
from mrclient.wire.proto.dynamic_subclass_pb2 import CallRequest, CallResponse, SetupRequest, SetupResponse

WAIT = 10.0


# -- a network that freezes ----------------------------------------------------------------------


class FaultyProxy:
    """Forwards TCP from its own port to ``target_port``, until told to misbehave.

    ``freeze()`` holds every byte (it reads nothing, so bytes pile up in the
    kernel's buffers, as on a path that stopped delivering); ``swallow()``
    reads and discards every byte both ways (a black hole: the sender's writes
    succeed, nothing arrives); ``heal()`` forwards again; ``cut()`` closes every
    connection it carries. One thread runs a select loop over every pair; each
    command returns once that thread acts on it, so no byte slips past a freeze.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._mode = "forward"  # or "freeze" or "swallow"
        self._swallowed = 0
        self._changed = threading.Condition()  # guards the fields below
        self._cut = False
        self._commands = 0  # commands given, and acted on by the thread
        self._done = 0
        self._stop = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="faulty-proxy", daemon=True)
        self._thread.start()

    def freeze(self) -> None:
        self._set("freeze")

    def swallow(self) -> None:
        self._set("swallow")

    def heal(self) -> None:
        self._set("forward")

    def cut(self) -> None:
        """Close every connection now carried (the peers see them end); new ones are carried."""
        with self._changed:
            self._cut = True
        self._command()

    def wait_swallowed(self, count: int, timeout: float = WAIT) -> bool:
        """Block until at least ``count`` bytes were swallowed; False after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._swallowed >= count, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake_writer.send(b"s")
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the proxy thread did not stop"
        for sock in [self._listener, *self._pairs, self._wake_reader, self._wake_writer]:
            sock.close()

    def _set(self, mode: str) -> None:
        with self._changed:
            self._mode = mode
        self._command()

    def _command(self) -> None:
        with self._changed:
            self._commands += 1
            given = self._commands
        self._wake_writer.send(b"!")
        with self._changed:
            assert self._changed.wait_for(lambda: self._done >= given, WAIT), "the proxy did not act"

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                mode, cut, self._cut, given = self._mode, self._cut, False, self._commands
            if cut:
                for sock in list(self._pairs):
                    self._pairs.pop(sock).close()
            with self._changed:
                self._done = given
                self._changed.notify_all()
            watched = [self._listener, self._wake_reader]
            if mode != "freeze":
                watched += list(self._pairs)
            readable, _, _ = select.select(watched, [], [], 1.0)
            for sock in readable:
                if sock is self._wake_reader:
                    self._wake_reader.recv(64)
                elif sock is self._listener:
                    self._accept()
                elif sock in self._pairs:
                    self._forward(sock, mode)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=WAIT)
        self._pairs[client], self._pairs[upstream] = upstream, client

    def _forward(self, sock: socket.socket, mode: str) -> None:
        other = self._pairs[sock]
        try:
            data = sock.recv(65536)
            if data and mode == "swallow":
                with self._changed:
                    self._swallowed += len(data)
                    self._changed.notify_all()
                return
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        for end in (sock, other):  # one side ended: end the other
            self._pairs.pop(end, None)
            end.close()


@pytest.fixture
def faulty_proxy() -> Iterator[Callable[[int], FaultyProxy]]:
    """Factory: ``faulty_proxy(target_port)``; every proxy is stopped after the test."""
    proxies: list[FaultyProxy] = []

    def start(target_port: int) -> FaultyProxy:
        proxy = FaultyProxy(target_port)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


# -- a node that answers garbage -----------------------------------------------------------------


def _deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


#: Answers no client can decode, each with what the node claims it is.
GARBAGE_VARIANTS: dict[str, Variant] = {
    "json-not-json": Variant(type=VariantType.JSON, value=b"{not json"),
    "json-not-utf8": Variant(type=VariantType.JSON, value=b'"\xff\xfe"'),
    "json-nested-100000": Variant(type=VariantType.JSON, value=_deeply_nested(100_000)),
    "int-3-bytes": Variant(type=VariantType.INT, value=b"\x01\x02\x03"),
    "double-9-bytes": Variant(type=VariantType.DOUBLE, value=b"\x00" * 9),
    "string-not-utf8": Variant(type=VariantType.STRING, value=b"\xc3\x28"),
    "parquet-garbage": Variant(type=VariantType.PARQUET, value=b"PAR1 but not really"),
    "unknown-type-99": Variant(type=99, value=b"?"),  # type: ignore[arg-type]
    "arrow-reserved": Variant(type=VariantType.ARROW, value=b"\x00"),
}


class _GarbageServicer:
    """Setup succeeds; Call answers SUCCESS with the garbage Variant its method name picks (bad JSON by default)."""

    def setup(self, request: SetupRequest, context: Any) -> SetupResponse:
        return SetupResponse(status=Status(code="SUCCESS"))

    def call(self, request: bytes, context: Any) -> bytes:
        method = CallRequest.FromString(request).methodName
        if method == "not-protobuf":
            return b"\xff\xff\xff\xff this is no CallResponse"
        variant = GARBAGE_VARIANTS.get(method, GARBAGE_VARIANTS["json-not-json"])
        return CallResponse(status=Status(code="SUCCESS"), methodResponse=variant).SerializeToString()


@dataclass
class GarbageNode:
    port: int
    server: grpc.Server


@pytest.fixture
def garbage_node() -> Iterator[GarbageNode]:
    """A node on loopback answering undecodable Variants (and, for ``not-protobuf``, no protobuf at all)."""
    servicer = _GarbageServicer()
    handlers = {
        "Setup": grpc.unary_unary_rpc_method_handler(
            servicer.setup, request_deserializer=SetupRequest.FromString, response_serializer=SetupResponse.SerializeToString
        ),
        "Call": grpc.unary_unary_rpc_method_handler(servicer.call),  # raw bytes both ways
    }
    executor = ThreadPoolExecutor(4, thread_name_prefix="local-model-node-garbage")
    server = grpc.server(executor)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("dynamic_subclass.DynamicSubclassService", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield GarbageNode(port, server)
    finally:
        server.stop(None).wait(WAIT)
        executor.shutdown(wait=True)


# -- thousands of models -------------------------------------------------------------------------


class InstantRunner(DynamicSubclassModelRunner):
    """A runner whose node answers at once, in-process: Setup succeeds, a call returns the model id.

    Thousands of real nodes cannot run on a 2-core CI machine (a server and
    two file descriptors each). The faults these runners take part in are the
    orchestrator's frames and the model table, which stay real: the WebSocket,
    the cluster, the setup pool and the call pool all run as in production.
    A real (never connected) gRPC channel is still opened and closed per runner.
    """

    def setup(self, channel: grpc.Channel, timeout: float) -> tuple[bool, Any]:
        return True, None

    def execute(self, request: Any, timeout: float | None) -> CallOutcome:
        return CLOSED_OUTCOME if self.closed else CallOutcome(result=self.model_id)


class InstantConcurrentRunner(DynamicSubclassModelConcurrentRunner):
    """The concurrent runner, its models served by ``InstantRunner``."""

    def create_model_runner(self, **kwargs: Any) -> InstantRunner:
        return InstantRunner(base_classname=self.base_classname, **kwargs)


def instant_runner_factory(made: list[InstantRunner] | None = None) -> Callable[..., InstantRunner]:
    def create(**identity: Any) -> InstantRunner:
        runner = InstantRunner(base_classname="instant.Base", **identity)
        if made is not None:
            made.append(runner)
        return runner

    return create


# -- waiting on progress -------------------------------------------------------------------------


class Progress:
    """A counter a test thread advances and another waits on (bounded)."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def advance(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= count, timeout)


def settle_threads(prefix: str, timeout: float = WAIT) -> None:
    """Join the threads whose name starts with ``prefix`` (pool threads on their way out)."""
    deadline = time.monotonic() + timeout
    for thread in [t for t in threading.enumerate() if t.name.startswith(prefix)]:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threading.enumerate() if t.name.startswith(prefix)]
    assert not alive, f"threads still running after {timeout}s: {alive}"


# -- what the process holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """Threads, open file descriptors and resident memory (MiB) of this process."""

    threads: int
    fds: int
    rss_mib: float

    @classmethod
    def now(cls) -> Resources:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        return cls(
            threads=threading.active_count(),
            fds=len(os.listdir("/proc/self/fd")),
            rss_mib=resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20,
        )

    def growth_since(self, before: Resources) -> Resources:
        return Resources(self.threads - before.threads, self.fds - before.fds, self.rss_mib - before.rss_mib)

    def __str__(self) -> str:
        return f"threads={self.threads} fds={self.fds} rss={self.rss_mib:.1f}MiB"


def on_linux() -> bool:
    return os.path.exists("/proc/self/statm")
