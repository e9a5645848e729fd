"""The orchestrator WebSocket: one background thread that keeps it open.

``OrchestratorConnection`` owns one daemon thread. The thread connects to
``ws://HOST:PORT/<crunch_id>``, hands each ``init`` and ``update`` frame to a
callback, pings the orchestrator to notice a dead peer, and reconnects with
exponential backoff and jitter (a tenacity policy) until ``close()``; only
``close()`` ends it. A frame that cannot be read or handled is logged with its
first bytes and skipped; any other error ends the connection and goes through
the reconnect policy. Messages for the orchestrator go through an ``Outbox``
that only this thread drains: each is kept until pongs prove the orchestrator
has it, and resent after a reconnect otherwise (at least once, in order), once
the new ``init`` is applied and only if still worth sending (``redelivery``: a
report whose model that init no longer lists at its ip is dropped and logged).
A failed attempt is said in one line (``failures``): a web server's 404 page
is not quoted, and ``connect()`` gives up early on answers that say the
address is not an orchestrator's.
The thread reads what is waiting before it writes, and waits in ``select`` on the
socket and on a wake-up socket, so ``close()`` and new messages reach it at once.

It knows the wire format and nothing about runners: the callback decides.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import websocket
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential, wait_random
from tenacity.wait import wait_base

from .._support.addresses import host_port
from .._support.waits import wait_for
from ..stats import ConnectionState
from ..wire.frames import Event, Skipped, parse_frame
from .failures import AttemptFailure, UnreadableAnswer, Verdict, attempt_failure
from .outbox import Outbox
from .redelivery import redeliver

__all__ = [
    "EventHandler",
    "OrchestratorConnectError",
    "OrchestratorConnection",
    "OrchestratorSettings",
    "orchestrator_url",
    "reconnect_backoff",
]

logger = logging.getLogger(__name__)

#: ``handler(event, entries)`` for every ``init`` and ``update`` frame, on the connection's thread.
EventHandler = Callable[[str, list[Any]], None]

#: A long backlog (after a reconnect) asks for proof every this many messages, so that a
#: connection that dies mid-flush has had most of it confirmed.
_PING_EVERY = 16
#: Connections the orchestrator may refuse with an error object (an unknown crunch id...),
#: or attempts whose answer says the address is not an orchestrator's (an HTTP 404, a host
#: name that does not resolve: see ``failures``), before ``connect()`` gives up and says
#: why, rather than retrying until its timeout.
MAX_REFUSALS = 3

#: How long the thread waits before trying again after an error that escaped even the
#: reconnect policy (a bug): it must never spin, and never stop.
_LAST_RESORT_WAIT = 1.0


def reconnect_backoff(initial: float = 0.5, maximum: float = 30.0, jitter: float = 1.0) -> wait_base:
    """The reconnect policy: ``initial * 2**n`` seconds, capped at ``maximum``, plus up to ``jitter``.

    The jitter spreads the reconnects of many coordinators after an
    orchestrator restart. Tests pass small numbers.
    """
    return wait_exponential(multiplier=initial, max=maximum) + wait_random(0, jitter)


@dataclass(frozen=True)
class OrchestratorSettings:
    """Timings of the orchestrator connection (seconds); the defaults suit production.

    A dead peer is noticed within ``ping_interval + ping_timeout``.
    """

    ping_interval: float | None = 5.0
    ping_timeout: float = 5.0
    open_timeout: float = 10.0  # TCP + WebSocket handshake + the first ``init``
    close_timeout: float = 1.0  # what ``close()`` waits for the last reports' proof, then the closing handshake
    reconnect_wait: wait_base = field(default_factory=reconnect_backoff)
    tls: bool = False  # ``wss://`` when TLS is put in front of the orchestrator
    #: Whether ``connect()`` gives up early, as on an HTTP 404, when the host name does not
    #: resolve. Off by default: a container's name does not resolve while it restarts.
    #: The ``mrclient`` command sets it (a person typed the name, and is waiting).
    give_up_on_unknown_host: bool = False


def orchestrator_url(host: str, port: int | str, crunch_id: str, *, tls: bool = False) -> str:
    """The orchestrator's WebSocket URL for ``crunch_id``: ``ws://host:port/crunch`` (the crunch id quoted)."""
    return f"{'wss' if tls else 'ws'}://{host_port(host, port)}/{urllib.parse.quote(crunch_id, safe='')}"


class OrchestratorConnectError(ConnectionError):
    """``connect()`` got no ``init``: its message says why in one line; the fields say it to a program.

    ``reason`` is what the last attempt met (None if none ended), ``timeout``
    the wait, and ``gave_up`` whether it ended before the timeout because the
    answers said the address is wrong or the orchestrator refused.
    """

    def __init__(self, message: str, *, url: str, reason: str | None, timeout: float, gave_up: bool) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason
        self.timeout = timeout
        self.gave_up = gave_up


class _Lost(Exception):
    """The connection failed or ended; the policy decides when to reconnect."""


class _Closing(Exception):
    """``close()`` was called: stop, do not reconnect."""


class OrchestratorConnection:
    """The WebSocket to the orchestrator, kept open by a thread this object owns."""

    def __init__(
        self,
        crunch_id: str,
        host: str,
        port: int,
        handler: EventHandler,
        settings: OrchestratorSettings | None = None,
    ) -> None:
        if not crunch_id:
            raise ValueError("crunch_id must not be empty: the orchestrator needs it in the URL")
        self.crunch_id = crunch_id
        self.settings = settings or OrchestratorSettings()
        self.url = orchestrator_url(host, port, crunch_id, tls=self.settings.tls)
        self.host, self.port = host, port
        self._handler = handler

        self._closing = threading.Event()
        self._state = threading.Condition()  # guards the fields below
        self._thread: threading.Thread | None = None
        self._ws: websocket.WebSocket | None = None
        self._serving = False  # the thread waits in select(), where the wake-up socket reaches it
        self._init_seen = False
        self._connected = False
        self._last_error: str | None = None
        self._refusal: str | None = None  # the error object this connection got, if any
        self._refusals = 0  # connections in a row that ended with one, before any init
        self._wrong_answers = 0  # attempts, before any init, whose answer says the address is wrong
        self._wrong_summary: str | None = None  # the last of them, in one line naming the URL
        self._failure: str | None = None  # why the thread stopped, if not by close()
        self._since: float | None = None  # time.time() when it last connected or was lost
        self._connections = 0  # connections that got their init
        self._reports_sent: dict[str, int] = {}  # failure reports queued, by code
        self._outbox = Outbox()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)

    def __repr__(self) -> str:
        return f"<OrchestratorConnection {self.url} connected={self.connected}>"

    # -- public -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the socket is open and its ``init`` was applied."""
        return self._connected

    @property
    def pending(self) -> int:
        """Messages the orchestrator is not known to have received: unsent, or sent and unconfirmed."""
        return len(self._outbox)

    @property
    def state(self) -> ConnectionState:
        """Connected or not since when, reconnects so far, reports not yet sent or confirmed."""
        pending, unconfirmed = self._outbox.counts()
        with self._state:
            return ConnectionState(
                connected=self._connected,
                since=self._since,
                reconnects=max(0, self._connections - 1),
                reports_pending=pending,
                reports_unconfirmed=unconfirmed,
                reports_sent=dict(self._reports_sent),
                last_error=self._last_error,
            )

    @property
    def failure(self) -> str | None:
        """Why the thread stopped without ``close()``, or None: it should never happen.

        After such a stop nothing reconnects and the model table is frozen.
        """
        return self._failure

    def start(self) -> None:
        """Start the thread (once); it connects and reconnects by itself."""
        with self._state:
            if self._closing.is_set():
                raise RuntimeError("the orchestrator connection is closed")
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=f"mrclient-orchestrator-{self.crunch_id}", daemon=True)
            thread.start()  # under the lock, kept once started: a close() racing this start waits for the thread
            self._thread = thread

    def connect(self, timeout: float) -> None:
        """Start, and block until the first ``init`` has been handled.

        Raises ``OrchestratorConnectError`` (a ``ConnectionError``) naming the
        URL when that does not happen within ``timeout`` seconds, or as soon as
        the orchestrator refused ``MAX_REFUSALS`` connections with an error
        object (its text is in the message), or that many attempts were
        answered in a way that says the address is not an orchestrator's (see
        ``failures``); the connection is closed then. A refused connection is
        not such an answer: an orchestrator that is restarting gives it, and is
        waited for. The wait is in short slices, so Ctrl-C is heard at once.
        """
        self.start()
        with self._state:
            wait_for(self._state, lambda: self._init_seen or self._closing.is_set() or self._gave_up, timeout)
            ok, closing, error, refused = self._init_seen, self._closing.is_set(), self._last_error, self._refusals
            wrong, summary = self._wrong_answers, self._wrong_summary
        if ok:
            return
        self.close()

        def failed(message: str, gave_up: bool = False) -> OrchestratorConnectError:
            return OrchestratorConnectError(message, url=self.url, reason=error, timeout=timeout, gave_up=gave_up)

        if refused >= MAX_REFUSALS:
            raise failed(f"the orchestrator at {self.url} refused the connection {refused} times: {error}", True)
        if wrong >= MAX_REFUSALS:
            raise failed(f"{summary} ({wrong} attempts)", True)
        if closing and error is None:
            raise failed(f"the connection to the orchestrator at {self.url} was closed while connecting")
        detail = f" (last error: {error})" if error else ""
        raise failed(f"could not connect to the orchestrator at {self.url} within {timeout:g}s{detail}")

    @property
    def _gave_up(self) -> bool:
        """Whether ``connect()`` has heard enough to stop waiting (the caller holds ``_state``)."""
        return self._refusals >= MAX_REFUSALS or self._wrong_answers >= MAX_REFUSALS

    def send(self, message: Mapping[str, Any]) -> None:
        """Queue a JSON message for the orchestrator; never blocks on the network.

        Delivered at least once: kept until the orchestrator is known to have it,
        resent after a reconnect otherwise.
        """
        text = json.dumps(message)
        with self._state:
            if self._closing.is_set():
                logger.error("orchestrator connection closed: not sending %s", text)
                return
            self._outbox.put(text)
        self._wake()

    def report_failure(self, model_id: str, failure_code: str, failure_reason: str | None, ip: str) -> None:
        """Queue a ``report_failure`` message (sent after a reconnect if the socket is down)."""
        logger.info("reporting model %s at %s: %s (%s)", model_id, ip, failure_code, failure_reason)
        item = {"model_id": model_id, "failure_code": failure_code, "failure_reason": failure_reason, "ip": ip}
        with self._state:
            self._reports_sent[failure_code] = self._reports_sent.get(failure_code, 0) + 1
        self.send({"event": "report_failure", "data": [item]})

    def close(self) -> None:
        """Stop the thread and close the socket (with a closing handshake); idempotent.

        If the socket is open, messages still in the outbox are sent first and
        get up to ``close_timeout`` to be confirmed; any left unconfirmed are
        logged as errors, message by message.
        """
        with self._state:
            self._closing.set()
            self._state.notify_all()
            thread = self._thread
        self._wake()
        if thread is None:
            self._close_wake_sockets()
            return
        if thread is threading.current_thread():
            return  # called by the handler: the thread ends when it returns
        # An open socket gets its closing handshake; a socket still connecting
        # (or a handshake that takes too long) is shut down to wake the thread.
        # Checked in short joins: the thread may be between creating its socket
        # and blocking on it.
        graceful_until = time.monotonic() + self.settings.close_timeout + 0.5
        give_up_at = graceful_until + 1.0
        while thread.is_alive():
            now = time.monotonic()
            if now >= give_up_at:
                logger.warning("the orchestrator thread for %s did not stop", self.url)
                break
            with self._state:
                ws, serving = self._ws, self._serving
            if ws is not None and (not serving or now >= graceful_until):
                _abort(ws)
            thread.join(0.05)

    def __enter__(self) -> OrchestratorConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        retrying = Retrying(
            wait=self.settings.reconnect_wait,
            retry=retry_if_exception_type(_Lost),
            sleep=self._sleep_unless_closing,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            while not self._closing.is_set():
                try:
                    # One call per healthy session: the backoff restarts after an init.
                    retrying(self._session)
                except _Closing:
                    break
                except Exception:  # escaped even the policy (a bug): log it, wait, go on
                    logger.exception("the orchestrator thread for %s hit an unexpected error", self.url)
                    if self._closing.wait(_LAST_RESORT_WAIT):
                        break
        except BaseException as error:  # SystemExit and the like: the thread cannot go on
            self._failure = f"{type(error).__name__}: {error}"
            logger.critical("the orchestrator thread for %s stopped (%s): the model table is no longer updated",
                            self.url, self._failure, exc_info=True)
        finally:
            with self._state:
                self._connected = False
                self._state.notify_all()
            self._log_undelivered()
            self._close_wake_sockets()
            logger.debug("orchestrator thread for %s stopped", self.url)

    def _log_undelivered(self) -> None:
        """No report is dropped silently: name each one the orchestrator may not have."""
        texts = self._outbox.take_all()
        for text in texts:
            logger.error("the orchestrator at %s may not have received: %s", self.url, text)
        if texts:
            logger.error("%d messages for the orchestrator at %s were not confirmed before the connection stopped",
                         len(texts), self.url)

    def _sleep_unless_closing(self, seconds: float) -> None:
        if self._closing.wait(seconds):
            raise _Closing()

    def _log_retry(self, retry_state: RetryCallState) -> None:
        level = logging.WARNING if retry_state.attempt_number == 1 else logging.INFO
        delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
        logger.log(level, "orchestrator at %s: %s; reconnecting in %.2fs (attempt %d)",
                   self.url, self._last_error, delay, retry_state.attempt_number)

    def _session(self) -> None:
        """Connect and serve until the connection ends.

        Raises ``_Lost`` if it ends before an ``init`` arrived (a failed attempt,
        retried with backoff); returns if it ends after (a new session starts).
        """
        if self._closing.is_set():
            raise _Closing()
        # UTF-8 is checked by the frame parser: a bad frame is skipped, not a broken connection.
        ws = websocket.WebSocket(skip_utf8_validation=True)
        with self._state:
            self._ws, self._serving = ws, False
        self._outbox.hold()  # until this connection's init says which held reports still make sense
        try:
            connect: Callable[..., None] = ws.connect  # untyped in websocket-client
            try:
                connect(self.url, timeout=self.settings.open_timeout, suppress_origin=True)
            except (IndexError, ValueError) as error:  # websocket-client 1.8 reading an answer that is not HTTP
                raise UnreadableAnswer(f"not an HTTP answer: {error}") from error
            logger.info("connected to the orchestrator at %s", self.url)
            self._serve(ws)
        except (OSError, websocket.WebSocketException, _Lost) as error:
            if self._closing.is_set():
                raise _Closing() from None
            self._record_error(error)
            if not self._connected:  # no init on this connection
                self._count_refusal()
                raise _Lost(str(error)) from error
            logger.warning("connection to the orchestrator at %s lost: %s", self.url, self._last_error)
        except Exception as error:  # a bug in the loop: this connection ends, the policy reconnects
            if self._closing.is_set():
                raise _Closing() from None
            logger.exception("the connection to the orchestrator at %s failed unexpectedly", self.url)
            self._record_error(error)
            raise _Lost(str(error)) from error
        finally:
            self._end(ws)
        if self._closing.is_set():
            raise _Closing()

    def _serve(self, ws: websocket.WebSocket) -> None:
        """Receive frames, send the outbox and pings, until closing or a failure.

        What is waiting to be read is read before anything is written, so a
        peer that closed is noticed before a message is sent into the void.
        After each burst of messages (and every ``_PING_EVERY`` messages) a
        ping asks for proof they arrived, and a second one once the first is
        answered (see ``Outbox``). Anything received proves the peer alive, and
        the deadlines (init, pong) are only checked when nothing is waiting to
        be read: a backlog of frames must not pass for a silent peer.
        """
        settings = self.settings
        ws.settimeout(settings.ping_timeout)  # bounds the read of a frame that arrived in part
        sock = ws.sock
        assert sock is not None
        with self._state:
            self._serving = True
        now = time.monotonic()
        init_deadline: float | None = now + settings.open_timeout
        next_ping = now + settings.ping_interval if settings.ping_interval else None
        pong_deadline: float | None = None
        unpinged = 0  # messages sent since the last ping
        while not self._closing.is_set():
            now = time.monotonic()
            if _has_input(sock, 0.0):
                pong_deadline = None
                received = self._receive(ws)
                if received == "init":
                    init_deadline = None
                elif received == "pong" and self._outbox.awaiting_second_pong:
                    ws.ping(self._outbox.ping_payload())
                    pong_deadline = now + settings.ping_timeout
                continue
            text = self._outbox.peek()
            if text is not None:
                ws.send(text)  # a failure breaks the connection; the message is sent again, whole
                self._outbox.mark_sent()
                unpinged += 1
                logger.debug("sent to %s: %s", self.url, text)
            keepalive_due = next_ping is not None and now >= next_ping
            if unpinged >= _PING_EVERY or (unpinged and text is None) or keepalive_due:
                ws.ping(self._outbox.ping_payload())
                unpinged = 0
                if settings.ping_interval:
                    next_ping = now + settings.ping_interval
                pong_deadline = pong_deadline or now + settings.ping_timeout
            if text is not None:
                continue
            deadlines = [d for d in (init_deadline, pong_deadline, next_ping) if d is not None]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            readable, _, _ = select.select([sock, self._wake_reader], [], [], wait)
            if self._wake_reader in readable:
                self._drain_wake()
            if sock in readable:
                continue
            now = time.monotonic()
            if init_deadline is not None and now >= init_deadline:
                raise _Lost(f"no init within {settings.open_timeout}s")
            if pong_deadline is not None and now >= pong_deadline:
                raise _Lost(f"no pong within {settings.ping_timeout}s")

    def _receive(self, ws: websocket.WebSocket) -> Literal["init", "pong"] | None:
        """Read and act on one frame; say whether it was an ``init`` or a pong."""
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise _Lost(f"the orchestrator closed the connection{_close_detail(frame.data)}")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return "init" if self._handle(frame.data) else None
        if opcode == websocket.ABNF.OPCODE_BINARY:
            logger.warning("ignoring a binary frame of %d bytes from %s: %.200r", len(frame.data), self.url,
                           bytes(frame.data[:200]))
        elif opcode == websocket.ABNF.OPCODE_PONG:
            confirmed = self._outbox.confirm(bytes(frame.data))
            if confirmed:
                logger.debug("the orchestrator at %s confirmed %d messages", self.url, confirmed)
            return "pong"
        return None  # pings are answered by recv_data_frame

    def _handle(self, data: bytes) -> bool:
        """Parse one text frame and hand it over; True if it was an ``init``.

        Never raises: a frame that cannot be parsed or handled is logged with
        its first bytes and skipped, and the connection goes on.
        """
        parsed = parse_frame(data)
        if isinstance(parsed, Skipped) and parsed.refusal is not None:
            with self._state:
                self._refusal = parsed.refusal
        if not isinstance(parsed, Event):
            logger.log(parsed.level, "ignoring a frame from %s: %s; it begins %.200r", self.url, parsed.reason,
                       bytes(data[:200]))
            return False
        try:
            self._handler(parsed.name, parsed.entries)
        except Exception:
            logger.exception("the handler of %s frames failed; skipped the frame, which begins %.200r",
                             parsed.name, bytes(data[:200]))
        if parsed.name == "init":
            self._release_outbox(parsed.entries)
            with self._state:
                if not self._connected:
                    self._connections += 1
                    self._since = time.time()
                self._init_seen = self._connected = True
                self._last_error = None
                self._state.notify_all()
            return True
        return False

    def _release_outbox(self, init_entries: list[Any]) -> None:
        """Let the held messages go, but the reports the ``init`` just applied no longer lists at their ip."""
        dropped: tuple[tuple[Mapping[str, Any], str], ...] = ()

        def decide(waiting: list[str]) -> list[str]:
            nonlocal dropped
            decision = redeliver(waiting, init_entries)
            dropped = decision.dropped
            return list(decision.send)

        self._outbox.release(decide)
        for item, why in dropped:
            logger.info("not sending again the report of model %s at %s (%s): %s", item.get("model_id"),
                        item.get("ip"), item.get("failure_code"), why)

    def _end(self, ws: websocket.WebSocket) -> None:
        """Close the socket (with a closing handshake when closing); unconfirmed messages go back first."""
        with self._state:
            serving = self._serving
            if self._connected:
                self._since = time.time()
            self._ws, self._serving, self._connected = None, False, False
        try:
            if self._closing.is_set() and serving and ws.connected:
                self._deliver_before_closing(ws)
                ws.close(timeout=self.settings.close_timeout)
        except (OSError, websocket.WebSocketException) as error:
            logger.debug("closing the orchestrator socket: %s", error)
        finally:
            requeued = self._outbox.requeue()
            if requeued and not self._closing.is_set():
                logger.info("%d messages to %s were not confirmed: sending them again once the next init is in",
                            requeued, self.url)
            ws.shutdown()  # type: ignore[no-untyped-call]

    def _deliver_before_closing(self, ws: websocket.WebSocket) -> None:
        """Send what is left and wait, up to ``close_timeout``, for the pongs that prove it arrived."""
        deadline = time.monotonic() + self.settings.close_timeout
        while (text := self._outbox.peek()) is not None:
            ws.send(text)
            self._outbox.mark_sent()
        if not self._outbox.unconfirmed:
            return
        ws.ping(self._outbox.ping_payload())
        sock = ws.sock
        while self._outbox.unconfirmed and sock is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _has_input(sock, remaining):
                return
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PONG:
                self._outbox.confirm(bytes(frame.data))
                if self._outbox.awaiting_second_pong:
                    ws.ping(self._outbox.ping_payload())
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                return

    def _count_refusal(self) -> None:
        """A connection that ended before any init: if the orchestrator said why, that is the error to show."""
        with self._state:
            refusal, self._refusal = self._refusal, None
            if refusal is None:
                return
            self._last_error = f"the orchestrator says: {refusal}"
            if not self._init_seen:
                self._refusals += 1
                self._state.notify_all()

    def _record_error(self, error: BaseException) -> None:
        """Keep what ``error`` says, in one line; before any init, count an answer saying the address is wrong."""
        if isinstance(error, _Lost):
            failure = AttemptFailure(str(error), f"{error} ({self.url})")
        else:
            failure = attempt_failure(error, self.url, self.host, self.port, self.settings.open_timeout)
        wrong = failure.verdict is Verdict.NOT_THE_ORCHESTRATOR or (
            failure.verdict is Verdict.UNKNOWN_HOST and self.settings.give_up_on_unknown_host
        )
        with self._state:
            self._last_error = failure.reason
            if wrong and not self._init_seen:
                self._wrong_answers += 1
                self._wrong_summary = failure.summary
                self._state.notify_all()

    # -- the wake-up socket -----------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except OSError:
            pass

    def _close_wake_sockets(self) -> None:
        self._wake_reader.close()
        self._wake_writer.close()


def _has_input(sock: Any, timeout: float) -> bool:
    """Whether ``sock`` has something to read (or was closed) within ``timeout`` seconds."""
    pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes select() cannot see
    if pending is not None and pending() > 0:
        return True
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


def _abort(ws: websocket.WebSocket) -> None:
    """Wake a thread blocked on ``ws`` by shutting its socket down."""
    sock = ws.sock
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close_detail(data: bytes) -> str:
    if len(data) < 2:
        return ""
    code = int.from_bytes(data[:2], "big")
    reason = data[2:].decode("utf-8", "replace")
    return f" (code {code}{': ' + reason if reason else ''})"
