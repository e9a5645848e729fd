"""One model node: its gRPC channels, connection with retries, and health.

A ``ModelRunner`` owns two channels to its node, each with its own TCP
connection: the main channel carries Setup and model calls, the health channel
(opened when first needed) carries ``grpc.health.v1`` checks, so a stuck model
call cannot hide whether the node is alive. In secure mode each connection
attempt gets a ``security.Transport`` that opens both channels and checks
every main-channel answer. Everything here is blocking; the concurrent runner
and the cluster decide which thread does the waiting.
"""

from __future__ import annotations

import abc
import enum
import functools
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from tenacity import (
    RetryCallState,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from .._support.addresses import host_port
from .._support.fdlimit import OPEN_FILES_EXHAUSTED, is_out_of_files
from .._support.validation import (
    check_callable,
    check_host,
    check_instance,
    check_mapping,
    check_port,
    check_positive_int,
    check_text,
    check_timeout,
)
from ..errors import InvalidCoordinatorUsageError
from ..security import REFUSED, AuthError, GatewayCredentials, SecureCredentials
from ..security.transport import PLAINTEXT, Transport, connect_transport
from ..stats import ModelCounters, ModelStats
from ..wire.codec import decode_variant

logger = logging.getLogger(__name__)

#: The largest message sent or received, as the model nodes allow (their default).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

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
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)

#: Status codes by which a node says the coordinator's call was malformed (PROTOCOL.md section 2);
#: FAILED_PRECONDITION only before a successful Setup (after one, the node lost its setup).
MISUSE_CODES = frozenset({"INVALID_ARGUMENT", "FAILED_PRECONDITION"})

#: The model's answer is over ``MAX_MESSAGE_BYTES``: this client refused to receive it.
RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
#: The model's answer needs an optional dependency the coordinator lacks (pandas for PARQUET).
MISSING_EXTRA = "MISSING_EXTRA"

#: The code of an outcome where the node no longer presents the certificate its channel is
#: pinned to (it rotated it): not the model's fault, the runner must reconnect to pin the new one.
CERTIFICATE_CHANGED = "CERTIFICATE_CHANGED"

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
    """What one model call produced: a result, or an error with its detail.

    ``code`` is the status code the node or gRPC answered when it says more
    than ``error`` does (``security.REFUSED``: the node did not accept the
    coordinator).
    """

    result: Any = None
    error: ModelRunner.ErrorType | None = None
    detail: str | None = None
    code: str | None = None


def outcome_of_rpc_error(error: grpc.RpcError) -> CallOutcome:
    """Classify a gRPC error: no answer in time, a refusal of the coordinator, or a failure."""
    code = error.code()
    detail = f"{code.name}: {error.details()}"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger than max" in (error.details() or ""):
        # gRPC's own size check, not a busy node: the coordinator's limit, not the model's fault
        return CallOutcome(error=ErrorType.FAILED, detail=f"{RESULT_TOO_LARGE}: {detail}", code=RESULT_TOO_LARGE)
    if code in NO_ANSWER_CODES:
        return CallOutcome(error=ErrorType.TIMEOUT, detail=detail)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return auth_outcome(AuthError(f"the node refused the coordinator ({detail})", code=REFUSED))
    return CallOutcome(error=ErrorType.FAILED, detail=detail)


def decoded_outcome(variant: Any, what: str = "result") -> CallOutcome:
    """The outcome holding a model's decoded answer, or why it could not be decoded here."""
    try:
        return CallOutcome(result=decode_variant(variant))
    except ImportError as error:  # the coordinator lacks an extra: not the model's fault
        return CallOutcome(error=ErrorType.FAILED, detail=f"{MISSING_EXTRA}: {error}", code=MISSING_EXTRA)
    except ValueError as error:
        return CallOutcome(error=ErrorType.FAILED, detail=f"undecodable {what}: {error}")


def auth_outcome(error: AuthError) -> CallOutcome:
    """The outcome of a failed identity check or of a node refusing the coordinator."""
    return CallOutcome(
        error=ErrorType.AUTH_ERROR,
        detail=f"AUTH_ERROR: {error.reason}",
        code=error.code,
    )


class _AttemptFailed(Exception):
    """One connection attempt failed in a way worth retrying."""


class _Aborted(Exception):
    """``close()`` was called while connecting."""


@functools.cache
def _any_tls_context() -> ssl.SSLContext:
    """A TLS client that checks nothing, made once: loading a CA store would cost ~40 ms a probe."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    return context


def port_speaks_tls(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether ``host:port`` answers a TLS handshake (a secure model node).

    Certificates are not checked: the question is only which protocol the port
    speaks. A server that wants a client certificate may end the handshake with
    an alert, which still proves it speaks TLS.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with _any_tls_context().wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as error:
        return "ALERT" in str(error.reason or "").upper()
    except OSError:
        return False


def check_channel(channel: object) -> None:
    """``channel`` (of ``bind`` and ``setup``) is a gRPC channel."""
    check_instance("channel", channel, grpc.Channel, "a grpc.Channel (the runner's own, opened by init())")


def check_call_timeout(timeout: object) -> float | None:
    """A per-model call's ``timeout``: positive seconds, or None for no deadline."""
    return None if timeout is None else check_timeout("timeout", timeout)


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
        secure_credentials: SecureCredentials | None = None,
        gateway_credentials: GatewayCredentials | None = None,
    ) -> None:
        if secure_credentials is not None and gateway_credentials is not None:
            raise InvalidCoordinatorUsageError("give secure_credentials or gateway_credentials, not both")
        check_instance("secure_credentials", secure_credentials, SecureCredentials,
                       "SecureCredentials (e.g. SecureCredentials.from_directory(path)) or None", optional=True)
        check_instance("gateway_credentials", gateway_credentials, GatewayCredentials,
                       "GatewayCredentials (e.g. GatewayCredentials.from_files(key_path)) or None", optional=True)
        self.runner_id = uuid.uuid4().hex
        self.deployment_id: str = check_instance("deployment_id", deployment_id, str, "a string")
        self.model_id: str = check_text("model_id", model_id, "the model's id, a non-empty string")
        self.model_name = check_instance("model_name", model_name, str, "a string or None", optional=True)
        self.ip = check_host(ip, name="ip")
        self.port = check_port(port)
        check_mapping("infos", infos, "a dict or None")
        self.infos: dict[str, Any] = dict(infos or {})
        self.retry_backoff_factor = check_timeout("retry_backoff_factor", retry_backoff_factor)
        self.connect_attempts = check_positive_int("connect_attempts", connect_attempts)
        self.setup_timeout = check_timeout("setup_timeout", setup_timeout)
        #: How calls to the node are secured (None for plain, mutual TLS or a gateway).
        self.credentials: SecureCredentials | GatewayCredentials | None = secure_credentials or gateway_credentials
        #: Why the last ``init()`` failed (error, detail, code), for the failure report.
        self.init_failure: CallOutcome | None = None
        #: What the node said when ``setup`` last failed, if a flavour knows more than an ErrorType.
        self.setup_detail: str | None = None
        #: The node's status code when ``setup`` last failed (``"SETUP_FAILED"``), if a flavour knows it.
        self.setup_code: str | None = None

        #: This runner's Setup succeeded once; a node answering "no instance" later lost it.
        self.setup_succeeded = False
        self.consecutive_failures = 0
        self.consecutive_timeouts = 0
        #: Calls still to skip while the model rests after a timeout.
        self.cooldown_calls_remaining = 0
        #: What the concurrent runner recorded of this model's rounds (see ``stats``).
        self.counters = ModelCounters()
        #: When (``time.time()``) this runner left the table after being ready; None while it is there.
        self.left_at: float | None = None
        #: Why it left, as ``reported MULTIPLE_FAILED``, ``stopped`` or ``closed`` (see ``mark_left``).
        self.left_reason: str | None = None

        self.channel: grpc.Channel | None = None
        self.health_channel: grpc.Channel | None = None
        self._transport: Transport = PLAINTEXT  # replaced at each connection attempt
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
        """``ip:port`` as gRPC wants it (an IPv6 address in brackets)."""
        return host_port(self.ip, self.port)

    @property
    def stats(self) -> ModelStats:
        """This model's statistics so far as a frozen snapshot (calls by outcome, latency, last error).

        Kept by the concurrent runner from its rounds (``keep_stats``); a runner
        set up again for the same deployment (a reconnect, a move, a recovery)
        keeps the model's history, a new deployment starts a new one. After
        the runner left the table, its state is ``left``, with when and why.
        """
        return self.counters.snapshot(self)

    def mark_left(self, reason: str) -> None:
        """This runner left the table after being ready, for ``reason`` (``reported MULTIPLE_FAILED``, ``closed``)."""
        self.left_reason = check_text("reason", reason, "why the model left, a non-empty string")
        self.left_at = time.time()

    @property
    def setup_class(self) -> str | None:
        """The class the node is asked to set up (the coordinator's base class), if this flavour names one."""
        return None

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called; the runner never connects nor calls again."""
        return self._closing.is_set()

    # -- what a flavour of runner provides -------------------------------------------------

    @abc.abstractmethod
    def setup(self, channel: grpc.Channel, timeout: float) -> tuple[bool, ErrorType | None]:
        """Ask the node to prepare the model; blocking, bounded by ``timeout``."""

    @abc.abstractmethod
    def execute(self, request: Any, timeout: float) -> CallOutcome:
        """Send one model request (a message, or its serialized bytes) with a deadline."""

    # -- connecting -------------------------------------------------------------------------

    def init(self, on_retry: Callable[[str], None] | None = None) -> tuple[bool, ErrorType | None]:
        """Connect both channels and run ``setup``, retrying connection errors.

        Returns ``(True, None)`` when the model is ready to be called, otherwise
        ``(False, reason)`` with the details in ``init_failure``; ``ABORTED``
        when ``close()`` interrupted it. An identity check that fails or a node
        that refuses the coordinator (``AUTH_ERROR``) is not retried. Raises
        ``InvalidCoordinatorUsageError`` when the node speaks TLS and this
        runner has no credentials, since retrying cannot help. ``on_retry(reason)``
        is called before each wait for another attempt.
        """
        if on_retry is not None:
            check_callable("on_retry", on_retry, "a function of the reason, or None")
        self._tls_checked = False
        self.init_failure = None
        log_retry = before_sleep_log(logger, logging.INFO)

        def before_retry(state: RetryCallState) -> None:
            log_retry(state)
            if on_retry is not None and state.outcome is not None:
                on_retry(str(state.outcome.exception()))

        retrying = Retrying(
            stop=stop_after_attempt(self.connect_attempts),
            wait=wait_exponential(multiplier=self.retry_backoff_factor, max=60),
            retry=retry_if_exception_type(_AttemptFailed),
            sleep=self._sleep_unless_closed,
            before_sleep=before_retry,
            reraise=True,
        )
        try:
            failure: CallOutcome | None = retrying(self._connect_and_setup)
        except InvalidCoordinatorUsageError:
            self._close_channels()
            raise
        except _Aborted:
            failure = CallOutcome(error=ErrorType.ABORTED, detail="the runner was closed while connecting")
        except _AttemptFailed as error:
            if self.closed:
                failure = CallOutcome(error=ErrorType.ABORTED, detail="the runner was closed while connecting")
            else:
                logger.warning("model %s at %s: giving up after %d attempts: %s",
                               self.model_id, self.target, self.connect_attempts, error)
                detail = f"no connection after {self.connect_attempts} attempts: {error}"
                # Out of file descriptors is this process's limit, not the model's fault (see fdlimit).
                code = OPEN_FILES_EXHAUSTED if is_out_of_files(detail) else None
                failure = CallOutcome(error=ErrorType.GRPC_CONNECTION_FAILED, detail=detail, code=code)
        if failure is None:
            self.setup_succeeded = True
            self.counters.mark_joined()
            logger.info("model %s (%s) ready at %s", self.model_id, self.model_name, self.target)
            return True, None
        self._close_channels()
        self.init_failure = failure
        return False, failure.error

    def _sleep_unless_closed(self, seconds: float) -> None:
        if self._closing.wait(seconds):
            raise _Aborted()

    def _connect_and_setup(self) -> CallOutcome | None:
        """One attempt: None when the model is ready, else why not; ``_AttemptFailed`` to retry."""
        # Setup is also the connection check: without wait_for_ready, a refused,
        # broken or silent connection fails it at once (gRPC bounds each connect
        # attempt, see CHANNEL_OPTIONS) and the retry policy decides what next.
        self.setup_detail = self.setup_code = None
        try:
            channel = self._open_channel()
            ok, error = self.setup(channel, self.setup_timeout)
        except AuthError as refusal:
            if self.closed:
                raise _Aborted() from refusal
            logger.warning("model %s at %s: %s", self.model_id, self.target, refusal.reason)
            return auth_outcome(refusal)
        except OSError as unreachable:  # the TLS probe could not reach the node
            self._close_channels()
            raise _AttemptFailed(f"TLS probe: {unreachable}") from unreachable
        except ValueError as closed:
            if self.closed:  # close() closed the channel as the call started
                raise _Aborted() from closed
            raise
        except grpc.RpcError as rpc_error:
            return self._setup_rpc_failure(rpc_error)
        if ok:
            return None
        return CallOutcome(
            error=error,
            detail=self.setup_detail or f"setup failed: {error.name if error else ''}",
            code=self.setup_code or (error.name if error is ErrorType.BAD_IMPLEMENTATION else None),
        )

    def _setup_rpc_failure(self, error: grpc.RpcError) -> CallOutcome:
        """What a gRPC error of Setup means: give up, retry (``_AttemptFailed``), or the coordinator's mistake."""
        if self.closed:
            raise _Aborted() from error
        code = error.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            logger.warning("model %s: setup did not answer within %ss", self.model_id, self.setup_timeout)
            return CallOutcome(
                error=ErrorType.GRPC_CONNECTION_FAILED, detail=f"setup did not answer within {self.setup_timeout}s"
            )
        if code not in NO_ANSWER_CODES:
            outcome = outcome_of_rpc_error(error)
            logger.warning("model %s: setup failed: %s", self.model_id, outcome.detail)
            return outcome
        self._close_channels()
        if (
            code == grpc.StatusCode.UNAVAILABLE
            and self.credentials is None  # a gateway or a secure node speaks TLS on purpose
            and self._first_tls_check()
            and port_speaks_tls(self.ip, self.port)
        ):
            raise InvalidCoordinatorUsageError(
                f"the model node at {self.target} is in secure mode (it speaks TLS) and no credentials were given"
            ) from None
        raise _AttemptFailed(f"setup: {code.name}: {error.details()}") from error

    def _first_tls_check(self) -> bool:
        """Whether to probe the port for TLS: once per ``init()``, it costs a handshake."""
        first, self._tls_checked = not self._tls_checked, True
        return first

    def _open_channel(self) -> grpc.Channel:
        """Secure the connection (in mutual TLS: probe and pin the node's certificate) and open the channel."""
        transport = connect_transport(
            self.credentials, host=self.ip, port=self.port, model_id=self.model_id, infos=self.infos
        )
        channel = transport.open_channel(self.target, CHANNEL_OPTIONS)
        with self._lock:
            if self.closed:
                channel.close()
                raise _Aborted()
            self.channel, self._transport = channel, transport
        self.bind(channel)
        return channel

    def bind(self, channel: grpc.Channel) -> None:  # noqa: B027 (a hook: flavours without stubs keep it empty)
        """Create the stubs a flavour needs on a freshly opened channel."""
        check_channel(channel)

    def invoke(self, rpc: Any, request: Any, timeout: float | None) -> Any:
        """One main-channel call: the response, once the node's identity checked out.

        In secure mode the call carries the gateway token, and the response's
        initial metadata must prove the node's identity. Raises
        ``grpc.RpcError``, or ``AuthError`` when the identity check fails.
        """
        transport = self._transport
        if transport.plain:
            return rpc(request, timeout=timeout)
        response, call = rpc.with_call(request, timeout=timeout, metadata=transport.call_metadata())
        transport.check_response(call.initial_metadata())
        return response

    def send(self, rpc: Any, request: Any, timeout: float | None) -> tuple[Any, CallOutcome | None]:
        """Send ``request`` on ``rpc`` (a method of the main channel) with a deadline.

        ``(response, None)``, or ``(None, outcome)`` when no usable response
        came: a gRPC error classified, a failed identity check, or the runner
        closed before or during the call.
        """
        if rpc is None or self.closed:
            return None, CLOSED_OUTCOME
        try:
            return self.invoke(rpc, request, timeout), None
        except grpc.RpcError as error:
            if self.closed:  # CANCELLED by close(): the model left
                return None, CLOSED_OUTCOME
            if self._transport.certificate_changed(error):
                return None, CallOutcome(
                    error=ErrorType.TIMEOUT,
                    detail=f"the node presents a new TLS certificate; reconnecting to pin it ({error.details()})",
                    code=CERTIFICATE_CHANGED,
                )
            return None, outcome_of_rpc_error(error)
        except AuthError as error:
            return None, auth_outcome(error)
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
        timeout = check_timeout("timeout", timeout)
        with self._lock:
            if self.closed or self.channel is None:
                return False
            if self._health_check is None:  # same TLS as the main channel; no token, no identity check
                self.health_channel = self._transport.open_channel(self.target, CHANNEL_OPTIONS)
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
