"""What the raw gRPC floors share: one plain channel per model, Setup, request and answer.

No library and no orchestrator: the floors get the endpoints' addresses from
the benchmark configuration, open one channel each (no health channel), wait
until every channel is ready and run ``Setup`` on every model; that is their
"time until callable". A round serializes the request once and checks each
answer: status ``SUCCESS`` and the decoded JSON result equal to the payload.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from mrclient.wire.proto.commons_pb2 import Argument, Variant, VariantType
from mrclient.wire.proto.dynamic_subclass_pb2 import CallRequest, CallResponse, SetupRequest, SetupResponse

from .common import ClientConfig

SERVICE = "/dynamic_subclass.DynamicSubclassService/"
#: One TCP connection per channel, as the clients under test have.
CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)


def identity(data: bytes) -> bytes:
    """The request is serialized once per round: send its bytes as they are."""
    return data


class RawChannels:
    """One channel and one ``Call`` callable per endpoint."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.channels = [
            grpc.insecure_channel(f"{host}:{port}", options=CHANNEL_OPTIONS) for host, port in config.endpoints
        ]
        self.calls = [
            channel.unary_unary(
                SERVICE + "Call", request_serializer=identity, response_deserializer=CallResponse.FromString
            )
            for channel in self.channels
        ]

    def connect_and_setup(self) -> None:
        """Wait for every channel, then Setup every model (all at once); raise on any failure."""
        timeout = self.config.ready_timeout
        readiness = [grpc.channel_ready_future(channel) for channel in self.channels]
        for future in readiness:
            future.result(timeout=timeout)
        setup_request = SetupRequest(className=self.config.base_classname).SerializeToString()
        setups = [
            channel.unary_unary(
                SERVICE + "Setup", request_serializer=identity, response_deserializer=SetupResponse.FromString
            ).future(setup_request, timeout=timeout)
            for channel in self.channels
        ]
        codes = [future.result().status.code for future in setups]
        failed = [code for code in codes if code != "SUCCESS"]
        if failed:
            raise RuntimeError(f"{len(failed)} models failed Setup: {failed[:3]}")

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


def call_request(config: ClientConfig, payload: dict[str, Any]) -> bytes:
    """The round's request, serialized once for every model."""
    return method_request(config.method, payload)


def method_request(method: str, payload: dict[str, Any]) -> bytes:
    """A ``Call`` of ``method`` with ``payload`` as its one JSON argument, serialized."""
    argument = Argument(
        position=1,
        data=Variant(type=VariantType.JSON, value=json.dumps(payload, separators=(",", ":")).encode()),
    )
    return bytes(CallRequest(methodName=method, methodArguments=[argument]).SerializeToString())


def is_echo(response: CallResponse, payload: dict[str, Any]) -> bool:
    """Whether the model succeeded and answered the payload back."""
    if response.status.code != "SUCCESS" or response.methodResponse.type != VariantType.JSON:
        return False
    answer: Any = json.loads(response.methodResponse.value)
    return bool(answer == payload)
