"""Runner for nodes serving the train/infer services (the participant's ``infer`` generator)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.empty_pb2 import Empty

from ..wire.codec import to_variant
from ..wire.proto.train_infer_pb2 import InferRequest, InferResponse
from .base import CallOutcome, ErrorType, ModelRunner, decoded_outcome
from .dynamic_subclass import node_lost_setup, serialize_request, setup_lost_outcome

#: The service the reference client uses; ``TrainInferService`` has the same RPCs.
DEFAULT_SERVICE = "TrainInferStreamService"


class TrainInferModelRunner(ModelRunner):
    """Feeds values to the participant's ``infer`` and returns its predictions.

    ``service_name`` picks one of the node's two identical services; the other
    keyword arguments are :class:`ModelRunner`'s.
    """

    def __init__(self, service_name: str = DEFAULT_SERVICE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
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
        self._infer = self._method(channel, "Infer", InferResponse.FromString)
        self._reinitialize = self._method(channel, "Reinitialize", Empty.FromString)

    def setup(self, channel: grpc.Channel, timeout: float) -> tuple[bool, ErrorType | None]:
        """Ask the node to load the participant's ``infer``; its errors come back as gRPC errors."""
        self.invoke(self._method(channel, "Setup", Empty.FromString), Empty(), timeout)
        return True, None

    def infer(self, value: Any, timeout: float | None = None) -> tuple[Any, ErrorType | None]:
        """One prediction for ``value``: ``(prediction, None)`` or ``(None, error)``."""
        outcome = self.execute(InferRequest(argument=to_variant(value)), timeout)
        return outcome.result, outcome.error

    def execute(self, request: InferRequest | bytes, timeout: float | None) -> CallOutcome:
        """Send one ``Infer`` and decode the prediction."""
        response, failed = self.send(self._infer, request, timeout)
        if failed is not None:
            return self._lost_setup_or(failed)
        return decoded_outcome(response.prediction, "prediction")

    def reinitialize(self, timeout: float | None = None) -> tuple[bool, ErrorType | None]:
        """Restart the participant's ``infer`` generator."""
        outcome = self.execute_reinitialize(timeout)
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
