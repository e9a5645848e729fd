"""One model node: its gRPC channels, connection with retries, and health.

A ``ModelRunner`` owns two channels to its node, each with its own TCP
connection: the main channel carries Setup and model calls, the health channel
(opened when first needed) carries ``grpc.health.v1`` checks, so a stuck model
call cannot hide whether the node is alive. Everything here is blocking; the concurrent runner and the
cluster decide which thread does the waiting.
"""

from __future__ import annotations

import abc
import enum
import logging
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from ..errors import InvalidCoordinatorUsageError

logger = logging.getLogger(__name__)

#: Channel options shared by every runner. A local subchannel pool gives each
#: channel its own TCP connection (gRPC otherwise shares one per target). A
#: short initial reconnect backoff brings a restarted node back quickly; the
#: minimum backoff is also gRPC's bound on one connect attempt (TCP and HTTP/2
#: handshake), so a node that accepts connections but never answers fails an
#: attempt within a second instead of hanging a setup.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 1000),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)

#: gRPC codes that mean "no answer in time": the node is busy (it serves one call
#: at a time), slow, unreachable, or the call was cancelled by a close.
NO_ANSWER_CODES = frozenset(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
    }
)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one model call produced: a result, or an error with its detail."""

    result: Any = None
    error: ModelRunner.ErrorType | None = None
    detail: str | None = None


def outcome_of_rpc_error(error: grpc.RpcError) -> CallOutcome:
    """Classify a gRPC error: no answer in time, or a failure."""
    code = error.code()
    detail = f"{code.name}: {error.details()}"
    if code in NO_ANSWER_CODES:
        return CallOutcome(error=ErrorType.TIMEOUT, detail=detail)
    return CallOutcome(error=ErrorType.FAILED, detail=detail)


class _AttemptFailed(Exception):
    """One connection attempt failed in a way worth retrying."""


class _Aborted(Exception):
    """``close()`` was called while connecting."""


def port_speaks_tls(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether ``host:port`` answers a TLS handshake (a secure model node).

    Certificates are not checked: the question is only which protocol the port
    speaks. A server that wants a client certificate may end the handshake with
    an alert, which still proves it speaks TLS.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as error:
        return "ALERT" in str(error.reason or "").upper()
    except OSError:
        return False


def _health_check_method(channel: grpc.Channel) -> Any:
    return channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


class ModelRunner(abc.ABC):
    """The client side of one model node (one deployment of one model).

    Instances are hashable by identity, so they key result dictionaries. The
    counters are the penalty state that the concurrent runner's policy keeps.
    """

    class ErrorType(enum.Enum):
        """Why a setup or a call did not succeed."""

        GRPC_CONNECTION_FAILED = "GRPC_CONNECTION_FAILED"
        FAILED = "FAILED"
        BAD_IMPLEMENTATION = "BAD_IMPLEMENTATION"
        ABORTED = "ABORTED"
        AUTH_ERROR = "AUTH_ERROR"
        TIMEOUT = "TIMEOUT"
        #: The node lost the instance a successful Setup made (it restarted in place).
        SETUP_LOST = "SETUP_LOST"

    def __init__(
        self,
        deployment_id: str,
        model_id: str,
        model_name: str | None,
        ip: str,
        port: int,
        infos: dict[str, Any] | None = None,
        *,
        retry_backoff_factor: float = 2.0,
        connect_attempts: int = 5,
        setup_timeout: float = 120.0,
    ) -> None:
        self.runner_id = uuid.uuid4().hex
        self.deployment_id = deployment_id
        self.model_id = model_id
        self.model_name = model_name
        self.ip = ip
        self.port = port
        self.infos: dict[str, Any] = dict(infos or {})
        self.retry_backoff_factor = retry_backoff_factor
        self.connect_attempts = connect_attempts
        self.setup_timeout = setup_timeout

        #: This runner's Setup succeeded once; a node answering "no instance" later lost it.
        self.setup_succeeded = False
        self.consecutive_failures = 0
        self.consecutive_timeouts = 0
        #: Calls still to skip while the model rests after a timeout.
        self.cooldown_calls_remaining = 0

        self.channel: grpc.Channel | None = None
        self.health_channel: grpc.Channel | None = None
        self._health_check: Any = None
        self._closing = threading.Event()
        self._lock = threading.Lock()  # guards the channel fields against close()
        self._tls_checked = False  # this init() already probed the port for TLS

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} model_id={self.model_id!r} name={self.model_name!r} "
            f"at {self.target} deployment={self.deployment_id!r}>"
        )

    @property
    def target(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    # -- what a flavour of runner provides -------------------------------------------------

    @abc.abstractmethod
    def setup(self, channel: grpc.Channel, timeout: float) -> tuple[bool, ErrorType | None]:
        """Ask the node to prepare the model; blocking, bounded by ``timeout``."""

    @abc.abstractmethod
    def execute(self, request: Any, timeout: float) -> CallOutcome:
        """Send one model request (a message, or its serialized bytes) with a deadline."""

    # -- connecting -------------------------------------------------------------------------

    def init(self) -> tuple[bool, ErrorType | None]:
        """Connect both channels and run ``setup``, retrying connection errors.

        Returns ``(True, None)`` when the model is ready to be called, otherwise
        ``(False, reason)``; ``ABORTED`` when ``close()`` interrupted it. Raises
        ``InvalidCoordinatorUsageError`` when the node speaks TLS and this runner
        has no credentials, since retrying cannot help.
        """
        self._tls_checked = False
        retrying = Retrying(
            stop=stop_after_attempt(self.connect_attempts),
            wait=wait_exponential(multiplier=self.retry_backoff_factor, max=60),
            retry=retry_if_exception_type(_AttemptFailed),
            sleep=self._sleep_unless_closed,
            before_sleep=before_sleep_log(logger, logging.INFO),
            reraise=True,
        )
        try:
            outcome: tuple[bool, ErrorType | None] = retrying(self._connect_and_setup)
        except InvalidCoordinatorUsageError:
            self._close_channels()
            raise
        except _Aborted:
            self._close_channels()
            return False, ErrorType.ABORTED
        except _AttemptFailed as error:
            self._close_channels()
            if self.closed:
                return False, ErrorType.ABORTED
            logger.warning("model %s at %s: giving up after %d attempts: %s",
                           self.model_id, self.target, self.connect_attempts, error)
            return False, ErrorType.GRPC_CONNECTION_FAILED
        if outcome[0]:
            self.setup_succeeded = True
            logger.info("model %s (%s) ready at %s", self.model_id, self.model_name, self.target)
        else:
            self._close_channels()
        return outcome

    def _sleep_unless_closed(self, seconds: float) -> None:
        if self._closing.wait(seconds):
            raise _Aborted()

    def _connect_and_setup(self) -> tuple[bool, ErrorType | None]:
        # Setup is also the connection check: without wait_for_ready, a refused,
        # broken or silent connection fails it at once (gRPC bounds each connect
        # attempt, see CHANNEL_OPTIONS) and the retry policy decides what next.
        channel = self._open_channel()
        try:
            return self.setup(channel, self.setup_timeout)
        except ValueError as error:  # close() closed the channel as the call started
            raise _Aborted() from error
        except grpc.RpcError as error:
            if self.closed:
                raise _Aborted() from error
            code = error.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                logger.warning("model %s: setup did not answer within %ss", self.model_id, self.setup_timeout)
                return False, ErrorType.GRPC_CONNECTION_FAILED
            if code not in NO_ANSWER_CODES:
                logger.warning("model %s: setup failed with %s: %s", self.model_id, code.name, error.details())
                return False, ErrorType.FAILED
            self._close_channels()
            if code == grpc.StatusCode.UNAVAILABLE and self._first_tls_check() and port_speaks_tls(self.ip, self.port):
                raise InvalidCoordinatorUsageError(
                    f"the model node at {self.target} is in secure mode (it speaks TLS) "
                    "and no credentials were given"
                ) from None
            raise _AttemptFailed(f"setup: {code.name}: {error.details()}") from error

    def _first_tls_check(self) -> bool:
        """Whether to probe the port for TLS: once per ``init()``, it costs a handshake."""
        first, self._tls_checked = not self._tls_checked, True
        return first

    def _open_channel(self) -> grpc.Channel:
        channel = self.create_channel()
        with self._lock:
            if self.closed:
                channel.close()
                raise _Aborted()
            self.channel = channel
        self.bind(channel)
        return channel

    def create_channel(self) -> grpc.Channel:
        """A new channel to the node (overridden by secure flavours)."""
        return grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)

    def bind(self, channel: grpc.Channel) -> None:
        """Create the stubs a flavour needs on a freshly opened channel."""

    def send(self, rpc: Any, request: Any, timeout: float | None) -> tuple[Any, CallOutcome | None]:
        """Send ``request`` on ``rpc`` (a method of the main channel) with a deadline.

        ``(response, None)``, or ``(None, outcome)`` when no response came: a
        gRPC error classified, or the runner closed before or during the call.
        """
        if rpc is None or self.closed:
            return None, CLOSED_OUTCOME
        try:
            return rpc(request, timeout=timeout), None
        except grpc.RpcError as error:  # CANCELLED by close(), if closed: the model left
            return None, CLOSED_OUTCOME if self.closed else outcome_of_rpc_error(error)
        except ValueError:  # the channel was closed while the call was starting
            return None, CLOSED_OUTCOME

    # -- health and shutdown ----------------------------------------------------------------

    def health(self, timeout: float = 5.0) -> bool:
        """Whether the node answers SERVING over the health channel.

        The health channel is opened on first use: health is asked only after
        repeated timeouts, and a thousand idle connections cost start-up time
        and file descriptors for nothing. It is still its own TCP connection,
        so a stuck model call cannot block it.
        """
        with self._lock:
            if self.closed or self.channel is None:
                return False
            if self._health_check is None:
                self.health_channel = self.create_channel()
                self._health_check = _health_check_method(self.health_channel)
            check = self._health_check
        try:
            response = check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except (grpc.RpcError, ValueError):  # ValueError: channel closed meanwhile
            return False
        serving: bool = response.status == health_pb2.HealthCheckResponse.SERVING
        return serving

    def close(self) -> None:
        """Abort a running ``init()`` and close both channels; idempotent."""
        self._closing.set()
        self._close_channels()  # cancels any RPC in flight

    def _close_channels(self) -> None:
        with self._lock:
            channels = (self.channel, self.health_channel)
            self.channel = self.health_channel = None
            self._health_check = None
        for channel in channels:
            if channel is not None:
                channel.close()


ErrorType = ModelRunner.ErrorType
#: The one detail of a call whose runner was closed before or during it: the model left the
#: table (stopped, replaced, reported, or ``close()``). FAILED in a round, never a penalty.
MODEL_LEFT = "MODEL_LEFT: the model left the table during the round"
CLOSED_OUTCOME = CallOutcome(error=ErrorType.ABORTED, detail=MODEL_LEFT)
