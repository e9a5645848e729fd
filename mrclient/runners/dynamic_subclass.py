"""Runner for nodes serving ``dynamic_subclass.DynamicSubclassService``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

from .._support.validation import check_text, check_timeout
from ..errors import InvalidCoordinatorUsageError
from ..wire.arguments import Args
from ..wire.codec import named_arguments, named_kw_arguments
from ..wire.proto.commons_pb2 import Argument, KwArgument
from ..wire.proto.dynamic_subclass_pb2 import CallRequest, CallResponse, SetupRequest, SetupResponse
from .base import (
    MISUSE_CODES,
    CallOutcome,
    ErrorType,
    ModelRunner,
    check_call_timeout,
    check_channel,
    decoded_outcome,
)

logger = logging.getLogger(__name__)

ArgsAndKwargs = tuple[Sequence[Argument] | None, Sequence[KwArgument] | None]
#: Either one ``(args, kwargs)`` tuple of protobuf lists for every model, or a
#: function that builds it for one model.
ArgumentsType = ArgsAndKwargs | Callable[["DynamicSubclassModelRunner"], ArgsAndKwargs]

_SERVICE = "/dynamic_subclass.DynamicSubclassService/"

#: How nodes word "I have no instance" (the dynamic-subclass and the train/infer services).
_NO_INSTANCE = ("setup has not been called", "call setup first")


def check_class_name(base_classname: Any) -> str:
    """``base_classname``: the base class's dotted name (``"package.module.Class"``, or a bare ``"Class"``)."""
    what = 'the base class\'s dotted name, e.g. "package.module.Class"'
    name: str = check_text("base_classname", base_classname, what)
    if any(not part.isidentifier() for part in name.split(".")):
        raise InvalidCoordinatorUsageError(f"base_classname must be {what}, got {name!r}")
    return name


def node_lost_setup(code: str, message: str, setup_succeeded: bool) -> bool:
    """Whether a node's answer means it lost the instance this runner's Setup made.

    A node restarted in place keeps its address and loses its instance: gRPC
    reconnects by itself and every call answers ``FAILED_PRECONDITION`` ("Setup
    has not been called yet"). After a successful Setup that is no misuse by
    the coordinator: the node must be set up again. Before one, it is misuse.
    """
    if not setup_succeeded:
        return False
    return code == "FAILED_PRECONDITION" or any(phrase in message.lower() for phrase in _NO_INSTANCE)


def setup_lost_outcome(code: str, message: str) -> CallOutcome:
    """The outcome of a call that found the node without the model's instance."""
    detail = f"SETUP_LOST: the node lost the model's instance ({code}: {message})"
    return CallOutcome(error=ErrorType.SETUP_LOST, detail=detail)


def serialize_request(request: Any) -> bytes:
    """Serialize a request, passing already-serialized bytes through.

    A round sends the same request to every model: serializing it once and
    handing each call the bytes saves that work N - 1 times.
    """
    if isinstance(request, bytes):
        return request
    data: bytes = request.SerializeToString()
    return data


def build_call_request(method_name: str, arguments: ArgsAndKwargs) -> CallRequest:
    """A CallRequest from ``(args, kwargs)`` protobuf lists (``None`` meaning empty)."""
    args, kwargs = arguments
    return CallRequest(methodName=method_name, methodArguments=args or (), methodKwArguments=kwargs or ())


def checked_call_request(method_name: str, arguments: Any, name: str) -> CallRequest:
    """The CallRequest for ``Args(...)`` or ``(args, kwargs)``; anything else is refused, naming ``name``."""
    if isinstance(arguments, Args):
        arguments = (
            named_arguments(f"{name}: args", arguments.args),
            named_kw_arguments(f"{name}: kwargs", arguments.kwargs),
        )
    elif not (isinstance(arguments, (tuple, list)) and len(arguments) == 2):
        raise InvalidCoordinatorUsageError(
            f"{name} must be (args, kwargs), two lists of Argument and KwArgument, or Args(...) of plain values "
            f"(or a function of the model runner returning one of those), got {arguments!r:.200}"
        )
    try:
        return build_call_request(method_name, (arguments[0], arguments[1]))
    except (TypeError, ValueError) as error:
        raise InvalidCoordinatorUsageError(
            f"{name} must be (args, kwargs), two lists of Argument and KwArgument: {error}"
        ) from error


class DynamicSubclassModelRunner(ModelRunner):
    """Instantiates the participant's subclass of ``base_classname`` and calls its methods.

    ``instance_args`` and ``instance_kwargs`` are the constructor's arguments
    (plain values or protobuf messages); the other keyword arguments are
    :class:`ModelRunner`'s.
    """

    def __init__(
        self,
        base_classname: str,
        instance_args: Sequence[Any] | None = None,
        instance_kwargs: Mapping[str, Any] | Sequence[KwArgument] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_classname = check_class_name(base_classname)
        self.instance_args = named_arguments("instance_args", instance_args)
        self.instance_kwargs = named_kw_arguments("instance_kwargs", instance_kwargs)
        self._call: Any = None

    @property
    def setup_class(self) -> str:
        """``base_classname``: what Setup asks the node to find."""
        return self.base_classname

    def bind(self, channel: grpc.Channel) -> None:
        """Prepare the ``Call`` method on a new channel (requests may come pre-serialized)."""
        check_channel(channel)
        self._call = channel.unary_unary(
            _SERVICE + "Call",
            request_serializer=serialize_request,
            response_deserializer=CallResponse.FromString,
        )

    def setup(self, channel: grpc.Channel, timeout: float) -> tuple[bool, ErrorType | None]:
        """Ask the node to instantiate the participant's subclass of ``base_classname``.

        ``BAD_IMPLEMENTATION`` when the participant's code has no such class;
        raises ``InvalidCoordinatorUsageError`` when the node rejects the request itself.
        """
        check_channel(channel)
        timeout = check_timeout("timeout", timeout)
        setup_rpc = channel.unary_unary(
            _SERVICE + "Setup",
            request_serializer=SetupRequest.SerializeToString,
            response_deserializer=SetupResponse.FromString,
        )
        request = SetupRequest(
            className=self.base_classname,
            instanceArguments=self.instance_args,
            instanceKwArguments=self.instance_kwargs,
        )
        response: SetupResponse = self.invoke(setup_rpc, request, timeout)
        code, message = response.status.code, response.status.message
        if code == "SUCCESS":
            return True, None
        logger.warning("model %s: setup answered %s: %s", self.model_id, code, message)
        self.setup_detail = f"setup of {self.base_classname!r} answered {code}: {message}"
        self.setup_code = code
        if code == "INVALID_ARGUMENT":
            raise InvalidCoordinatorUsageError(f"Setup of {self.base_classname!r} rejected: {message}")
        if code == "BAD_IMPLEMENTATION":
            return False, ErrorType.BAD_IMPLEMENTATION
        return False, ErrorType.FAILED

    def call(
        self,
        method_name: str,
        arguments: ArgumentsType = ((), ()),
        timeout: float | None = None,
    ) -> tuple[Any, ErrorType | None]:
        """Call ``method_name`` on this model: ``(result, None)`` or ``(None, error)``.

        Raises ``InvalidCoordinatorUsageError`` when the node says the call
        itself was malformed (empty method name, Setup never done). A node that
        lost a successful Setup (restarted in place) gives ``SETUP_LOST``.
        """
        check_text("method_name", method_name)
        timeout = check_call_timeout(timeout)
        name = "arguments"
        if callable(arguments):
            arguments, name = arguments(self), "arguments(runner)"
        outcome = self.execute(checked_call_request(method_name, arguments, name), timeout)
        if outcome.code in MISUSE_CODES:
            raise InvalidCoordinatorUsageError(f"model {self.model_id} answered {outcome.detail}")
        return outcome.result, outcome.error

    def execute(self, request: CallRequest | bytes, timeout: float | None) -> CallOutcome:
        """Send one ``Call`` and classify the node's status (see :meth:`call`)."""
        response, failed = self.send(self._call, request, timeout)
        return failed or self._outcome_of_response(response)

    def _outcome_of_response(self, response: CallResponse) -> CallOutcome:
        status = response.status
        code = status.code
        if code == "SUCCESS":
            if not response.HasField("methodResponse"):
                return CallOutcome()
            return decoded_outcome(response.methodResponse)
        if node_lost_setup(code, status.message, self.setup_succeeded):
            return setup_lost_outcome(code, status.message)
        detail = f"{code}: {status.message}"
        if code in MISUSE_CODES:  # the call itself was malformed: FAILED, not the model's fault
            return CallOutcome(error=ErrorType.FAILED, detail=detail, code=code)
        if code == "BAD_IMPLEMENTATION":
            return CallOutcome(error=ErrorType.BAD_IMPLEMENTATION, detail=detail, code=code)
        return CallOutcome(error=ErrorType.FAILED, detail=detail)
