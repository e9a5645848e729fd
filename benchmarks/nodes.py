"""A shard of benchmark model nodes: many ``DynamicSubclassService`` endpoints in one process.

Each endpoint is its own ``grpc.aio`` server on its own loopback port, with
the standard health service, and behaves like a real model node for the
calls a benchmark makes: ``Setup`` answers ``SUCCESS``, ``Call`` waits for the
configured model latency and then echoes its first argument, and one call at a
time is served (a second concurrent call is aborted with
``RESOURCE_EXHAUSTED``, "Server busy", exactly like the reference node).

With ``--latency-max-ms``, each call's latency is drawn afresh, uniformly
between ``--latency-ms`` and that, as a real model's time varies from sample
to sample (the ``map`` case, ``benchmarks.map_case``). The draw is a pure
function of the seed, the endpoint's port and the input's number (the
``round`` of the payload), so every client of a run meets exactly the same
latencies, and the parent can compute the ideal times (``drawn_latency``).

Why ``grpc.aio`` servers in one event loop: they share the process's
completion queue and poller, so an extra endpoint costs about 20 KB and no
thread (measured: 1000 endpoints start in 0.3 s with 8 threads and 62 MB),
while a synchronous ``grpc.server`` costs a polling thread plus its worker pool
per endpoint. See docs/performance.rst ("The benchmark cluster").

Run as a process by ``benchmarks.cluster``::

    python -m benchmarks.nodes --count 250 --latency-ms 50

It prints one JSON line ``{"ports": [...]}`` once every endpoint listens, then
serves until its standard input closes or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import signal
import sys
from collections.abc import Sequence

import grpc
from google.protobuf.empty_pb2 import Empty
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from mrclient.wire.proto import dynamic_subclass_pb2_grpc
from mrclient.wire.proto.commons_pb2 import Status
from mrclient.wire.proto.dynamic_subclass_pb2 import (
    CallRequest,
    CallResponse,
    RestResponse,
    SetupRequest,
    SetupResponse,
)

_SUCCESS = Status(code="SUCCESS")
_SETUP_OK = SetupResponse(status=_SUCCESS)
_NOT_SET_UP = CallResponse(status=Status(code="FAILED_PRECONDITION", message="Setup was never called"))


def drawn_latency(seed: int, port: int, index: int, low: float, high: float) -> float:
    """The latency, in seconds, of input ``index`` at the endpoint on ``port``: uniform in [low, high], reproducible.

    A hash of the three numbers, not a seeded ``random.Random`` (ten times the CPU, on the nodes' cores).
    """
    digest = hashlib.blake2b(f"{seed}:{port}:{index}".encode(), digest_size=8).digest()
    return low + (high - low) * int.from_bytes(digest, "little") / 2**64


def _input_number(request: CallRequest) -> int:
    """The ``round`` of a benchmark payload (its first argument, JSON), or 0."""
    if not request.methodArguments:
        return 0
    try:
        return int(json.loads(request.methodArguments[0].data.value).get("round", 0))
    except (ValueError, AttributeError, TypeError):
        return 0


class BenchModelServicer(dynamic_subclass_pb2_grpc.DynamicSubclassServiceServicer):
    """One model endpoint: exclusive like a real node, answering after ``latency`` seconds.

    With ``latency_max`` (and the endpoint's ``port`` set once bound), the
    latency of each call is ``drawn_latency(seed, port, input, latency, latency_max)``.
    """

    def __init__(self, latency: float, latency_max: float | None = None, seed: int = 0) -> None:
        self.latency = latency
        self.latency_max = latency_max
        self.seed = seed
        self.port = 0
        self.busy = False
        self.set_up = False

    def _latency_of(self, request: CallRequest) -> float:
        if self.latency_max is None:
            return self.latency
        return drawn_latency(self.seed, self.port, _input_number(request), self.latency, self.latency_max)

    async def _enter(self, context: grpc.aio.ServicerContext) -> None:
        # The event loop is single-threaded: a flag is the node's "try-lock".
        if self.busy:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Server busy")
        self.busy = True

    async def Setup(self, request: SetupRequest, context: grpc.aio.ServicerContext) -> SetupResponse:
        await self._enter(context)
        try:
            self.set_up = True
            return _SETUP_OK
        finally:
            self.busy = False

    async def Call(self, request: CallRequest, context: grpc.aio.ServicerContext) -> CallResponse:
        await self._enter(context)
        try:
            latency = self._latency_of(request)
            if latency > 0:
                await asyncio.sleep(latency)
            if not self.set_up:
                return _NOT_SET_UP
            if not request.methodArguments:
                return CallResponse(status=_SUCCESS)
            return CallResponse(status=_SUCCESS, methodResponse=request.methodArguments[0].data)
        finally:
            self.busy = False

    async def Rest(self, request: Empty, context: grpc.aio.ServicerContext) -> RestResponse:
        await self._enter(context)
        try:
            self.set_up = False
            return RestResponse(status=_SUCCESS)
        finally:
            self.busy = False


async def start_endpoints(
    count: int, latency: float, host: str, health: HealthServicer, latency_max: float | None = None, seed: int = 0
) -> tuple[list[grpc.aio.Server], list[int]]:
    """Start ``count`` endpoints on free ports of ``host``; return the servers and their ports."""
    servers: list[grpc.aio.Server] = []
    ports: list[int] = []
    try:
        for _ in range(count):
            server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            servicer = BenchModelServicer(latency, latency_max, seed)
            dynamic_subclass_pb2_grpc.add_DynamicSubclassServiceServicer_to_server(  # type: ignore[no-untyped-call]
                servicer, server
            )
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            port = server.add_insecure_port(f"{host}:0")
            if port == 0:
                raise OSError(f"could not bind a port on {host}")
            servicer.port = port
            await server.start()
            servers.append(server)
            ports.append(port)
    except BaseException:
        await stop_endpoints(servers)
        raise
    return servers, ports


async def stop_endpoints(servers: Sequence[grpc.aio.Server]) -> None:
    await asyncio.gather(*(server.stop(grace=None) for server in servers))


def raise_fd_limit() -> None:
    """Lift the soft limit on open files to the hard one: each endpoint holds a few sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(count: int, latency: float, host: str, latency_max: float | None = None, seed: int = 0) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # The parent holds our stdin open; its end (even a crash of the parent) stops us.
    try:
        loop.add_reader(sys.stdin.fileno(), stop.set)
    except (OSError, ValueError):  # stdin is a regular file or /dev/null: signals only
        pass

    health = HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    servers, ports = await start_endpoints(count, latency, host, health, latency_max, seed)
    try:
        print(json.dumps({"pid": os.getpid(), "ports": ports}), flush=True)
        await stop.wait()
    finally:
        await stop_endpoints(servers)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, required=True, help="endpoints in this shard")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="model latency of every Call")
    parser.add_argument("--latency-max-ms", type=float, help="draw each call's latency up to this (see drawn_latency)")
    parser.add_argument("--seed", type=int, default=0, help="of the drawn latencies")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    raise_fd_limit()
    latency_max = None if args.latency_max_ms is None else args.latency_max_ms / 1000.0
    asyncio.run(serve(args.count, args.latency_ms / 1000.0, args.host, latency_max, args.seed))


if __name__ == "__main__":
    main()
