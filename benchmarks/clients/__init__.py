"""The clients the benchmark compares, each run as ``python -m <module> --config FILE``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientSpec:
    name: str
    module: str
    #: Which interpreter runs it: the benchmark's own, or the reference client's venv.
    reference_venv: bool
    description: str


CLIENTS: dict[str, ClientSpec] = {
    spec.name: spec
    for spec in (
        ClientSpec(
            "mrclient",
            "benchmarks.clients.mrclient_sync",
            False,
            "mrclient DynamicSubclassModelConcurrentRunner (sync, thread pool)",
        ),
        ClientSpec(
            "reference",
            "benchmarks.clients.reference_async",
            True,
            "model-runner-client 0.14.0 (asyncio, grpc.aio)",
        ),
        ClientSpec(
            "raw-futures",
            "benchmarks.clients.raw_futures",
            False,
            "raw floor A: grpcio stub .future() per model, gathered",
        ),
        ClientSpec(
            "raw-threads",
            "benchmarks.clients.raw_threads",
            False,
            "raw floor B: ThreadPoolExecutor of blocking stub calls, wait(timeout)",
        ),
        ClientSpec(
            "raw-aio",
            "benchmarks.clients.raw_aio",
            False,
            "raw floor C: grpc.aio, one event loop, every call awaited at once (the reference's own floor)",
        ),
    )
}

RAW_FLOORS = ("raw-futures", "raw-threads", "raw-aio")
#: The design card's shape, bare: the floor mrclient's goals are set against.
FLOOR_B = "raw-threads"
#: The event-loop shape, bare: the floor the reference client sits above.
FLOOR_AIO = "raw-aio"
