"""The async reference client, ``model-runner-client==0.14.0``, driven as its README shows.

Runs in its own virtual environment (``make bench`` creates it): the
reference needs ``websockets<15`` and pandas. Everything happens on one event
loop owned by this driver: ``init()`` (which returns once the orchestrator's
first snapshot has been set up), the ``sync()`` listener as a task, and each
round's ``call()``. The reference has no ``close()``; shutting it down takes
what its users do: disconnect its WebSocket client, cancel the listener and
close every model runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from model_runner_client.grpc.generated.commons_pb2 import Argument, Variant, VariantType
from model_runner_client.model_concurrent_runners.dynamic_subclass_model_concurrent_runner import (
    DynamicSubclassModelConcurrentRunner,
)

from .common import ClientConfig, run_client


class ReferenceDriver:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.runner: Any = None
        self.listener: asyncio.Task[None] | None = None

    def init(self) -> None:
        self.loop.run_until_complete(self._init())

    async def _init(self) -> None:
        config = self.config
        self.runner = DynamicSubclassModelConcurrentRunner(**config.runner_arguments())
        await self.runner.init()
        self.listener = asyncio.create_task(self.runner.sync())
        deadline = time.monotonic() + config.ready_timeout
        while len(self.runner.model_cluster.models_run) < config.n:
            if time.monotonic() > deadline:
                ready = len(self.runner.model_cluster.models_run)
                raise TimeoutError(f"{ready} of {config.n} models callable after {config.ready_timeout}s")
            await asyncio.sleep(0.01)

    def round(self, payload: dict[str, Any]) -> int:
        correct: int = self.loop.run_until_complete(self._round(payload))
        return correct

    async def _round(self, payload: dict[str, Any]) -> int:
        value = json.dumps(payload).encode("utf-8")
        argument = Argument(position=1, data=Variant(type=VariantType.JSON, value=value))
        arguments: tuple[list[Any], list[Any]] = ([argument], [])
        results = await self.runner.call(self.config.method, arguments)
        return sum(
            1 for result in results.values() if result.status.name == "SUCCESS" and result.result == payload
        )

    def close(self) -> None:
        try:
            if self.runner is not None:
                self.loop.run_until_complete(self._close())
        finally:
            self.loop.close()

    async def _close(self) -> None:
        cluster = self.runner.model_cluster
        await cluster.ws_client.disconnect()
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.listener
        runners = list(cluster.models_run.values()) + list(cluster.pending_model_runs.values())
        await asyncio.gather(*(runner.close() for runner in runners), return_exceptions=True)
        # Keep the reference's atexit hook (registered by WebsocketClient.__del__) quiet.
        cluster.ws_client.websocket = None


if __name__ == "__main__":
    run_client(ReferenceDriver)
