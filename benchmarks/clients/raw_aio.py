"""Raw floor C: the event-loop shape, bare (``grpc.aio``, one loop, ``gather``).

The floor the async reference client sits above: one ``grpc.aio`` channel per
model on one event loop owned by this driver, Setup on every model, and a
round that awaits every ``Call`` at once under the deadline. It shares the
request and the answer check with the other floors (``benchmarks.clients.raw``).
No orchestrator and no health channel, like floors A and B.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc import aio

from mrclient.wire.proto.dynamic_subclass_pb2 import CallResponse, SetupRequest, SetupResponse

from .common import ClientConfig, run_client
from .raw import CHANNEL_OPTIONS, SERVICE, call_request, identity, is_echo


class RawAioDriver:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.channels: list[aio.Channel] = []
        self.calls: list[Any] = []

    def init(self) -> None:
        self.loop.run_until_complete(self._init())

    async def _init(self) -> None:
        config = self.config
        self.channels = [
            aio.insecure_channel(f"{host}:{port}", options=CHANNEL_OPTIONS) for host, port in config.endpoints
        ]
        self.calls = [
            channel.unary_unary(SERVICE + "Call", request_serializer=identity,
                                response_deserializer=CallResponse.FromString)
            for channel in self.channels
        ]  # fmt: skip
        ready = (channel.channel_ready() for channel in self.channels)
        await asyncio.wait_for(asyncio.gather(*ready), timeout=config.ready_timeout)
        request = SetupRequest(className=config.base_classname).SerializeToString()
        setups = [
            channel.unary_unary(SERVICE + "Setup", request_serializer=identity,
                                response_deserializer=SetupResponse.FromString)(request, timeout=config.ready_timeout)
            for channel in self.channels
        ]  # fmt: skip
        codes = [response.status.code for response in await asyncio.gather(*setups)]
        failed = [code for code in codes if code != "SUCCESS"]
        if failed:
            raise RuntimeError(f"{len(failed)} models failed Setup: {failed[:3]}")

    def round(self, payload: dict[str, Any]) -> int:
        correct: int = self.loop.run_until_complete(self._round(payload))
        return correct

    async def _one(self, call: Any, request: bytes, payload: dict[str, Any]) -> bool:
        try:
            return is_echo(await call(request, timeout=self.config.timeout), payload)
        except grpc.RpcError:
            return False

    async def _round(self, payload: dict[str, Any]) -> int:
        request = call_request(self.config, payload)
        answers = await asyncio.gather(*(self._one(call, request, payload) for call in self.calls))
        return sum(answers)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self._close())
        finally:
            self.loop.close()

    async def _close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels))


if __name__ == "__main__":
    run_client(RawAioDriver)
