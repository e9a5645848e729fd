"""Runner for nodes serving the train/infer services (the participant's ``infer`` generator)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.empty_pb2 import Empty

from .._support.validation import check_choice, check_timeout
from ..wire.codec import named_variant
from ..wire.proto.train_infer_pb2 import InferRequest, InferResponse
from .base import CallOutcome, ErrorType, ModelRunner, check_call_timeout, check_channel, decoded_outcome
from .dynamic_subclass import node_lost_setup, serialize_request, setup_lost_outcome

#: The service the reference client uses; ``TrainInferService`` has the same RPCs.
DEFAULT_SERVICE = "TrainInferStreamService"
#: The two services a node serves the train/infer calls on.
SERVICE_NAMES = (DEFAULT_SERVICE, "TrainInferService")


def check_service_name(service_name: object) -> str:
    """``service_name``: one of ``SERVICE_NAMES``."""
    return check_choice("service_name", service_name, SERVICE_NAMES)


class TrainInferModelRunner(ModelRunner):
    """Feeds values to the participant's ``infer`` and returns its predictions.

    ``service_name`` picks one of the node's two identical services; the other
    keyword arguments are :class:`ModelRunner`'s.
    """

    def __init__(self, service_name: str = DEFAULT_SERVICE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_name = check_service_name(service_name)
        self._infer: Any = None
        self._reinitialize: Any = None

    def _method(self, channel: grpc.Channel, name: str, deserializer: Any) -> Any:
        return channel.unary_unary(
            f"/train_infer.{self.service_name}/{name}",
            request_serializer=serialize_request,
            response_deserializer=deserializer,
        )

    def bind(self, channel: grpc.Channel) -> None:
        """Prepare the ``Infer`` and ``Reinitialize`` methods on a new channel."""
        check_channel(channel)
        self._infer = self._method(channel, "Infer", InferResponse.FromString)
        self._reinitialize = self._method(channel, "Reinitialize", Empty.FromString)

    def setup(self, channel: grpc.Channel, timeout: float) -> tuple[bool, ErrorType | None]:
        """Ask the node to load the participant's ``infer``; its errors come back as gRPC errors."""
        check_channel(channel)
        timeout = check_timeout("timeout", timeout)
        self.invoke(self._method(channel, "Setup", Empty.FromString), Empty(), timeout)
        return True, None

    def infer(self, value: Any, timeout: float | None = None) -> tuple[Any, ErrorType | None]:
        """One prediction for ``value``: ``(prediction, None)`` or ``(None, error)``."""
        timeout = check_call_timeout(timeout)
        outcome = self.execute(InferRequest(argument=named_variant("value", value)), timeout)
        return outcome.result, outcome.error

    def execute(self, request: InferRequest | bytes, timeout: float | None) -> CallOutcome:
        """Send one ``Infer`` and decode the prediction."""
        response, failed = self.send(self._infer, request, timeout)
        if failed is not None:
            return self._lost_setup_or(failed)
        return decoded_outcome(response.prediction, "prediction")

    def reinitialize(self, timeout: float | None = None) -> tuple[bool, ErrorType | None]:
        """Restart the participant's ``infer`` generator."""
        outcome = self.execute_reinitialize(check_call_timeout(timeout))
        return outcome.error is None, outcome.error

    def execute_reinitialize(self, timeout: float | None) -> CallOutcome:
        """``reinitialize`` as an outcome, with the error's detail."""
        _, failed = self.send(self._reinitialize, Empty(), timeout)
        return self._lost_setup_or(failed) if failed else CallOutcome()

    def _lost_setup_or(self, failed: CallOutcome) -> CallOutcome:
        """``SETUP_LOST`` when the node answered that it has no instance, else ``failed`` as is."""
        code, _, message = (failed.detail or "").partition(": ")
        if failed.error is ErrorType.FAILED and node_lost_setup(code, message, self.setup_succeeded):
            return setup_lost_outcome(code, message)
        return failed
