"""The orchestrator WebSocket: one background thread that keeps it open.

``OrchestratorConnection`` owns one daemon thread. The thread connects to
``ws://HOST:PORT/<crunch_id>``, hands each ``init`` and ``update`` frame to a
callback, pings the orchestrator to notice a dead peer, and reconnects with
exponential backoff and jitter (a tenacity policy) until ``close()``. Messages
for the orchestrator go through an outbox that only this thread drains, so a
report made while the socket is down is sent after the reconnect, in order and
once. The thread waits in ``select`` on the socket and on a wake-up socket, so
``close()`` and new outbox messages reach it at once.

It knows the wire format and nothing about runners: the callback decides.
"""

from __future__ import annotations

import collections
import json
import logging
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import websocket
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential, wait_random
from tenacity.wait import wait_base

__all__ = [
    "EventHandler",
    "OrchestratorConnection",
    "OrchestratorSettings",
    "reconnect_backoff",
]

logger = logging.getLogger(__name__)

#: ``handler(event, entries)`` for every ``init`` and ``update`` frame, on the connection's thread.
EventHandler = Callable[[str, list[Any]], None]

EVENTS = ("init", "update")


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
    close_timeout: float = 1.0  # how long ``close()`` waits for the closing handshake
    reconnect_wait: wait_base = field(default_factory=reconnect_backoff)
    tls: bool = False  # ``wss://`` when TLS is put in front of the orchestrator


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
        scheme = "wss" if self.settings.tls else "ws"
        hostname = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{hostname}:{port}/{urllib.parse.quote(crunch_id, safe='')}"
        self._handler = handler

        self._closing = threading.Event()
        self._state = threading.Condition()  # guards the fields below
        self._thread: threading.Thread | None = None
        self._ws: websocket.WebSocket | None = None
        self._serving = False  # the thread waits in select(), where the wake-up socket reaches it
        self._init_seen = False
        self._connected = False
        self._last_error: str | None = None
        self._outbox: collections.deque[str] = collections.deque()
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
        """Messages waiting in the outbox."""
        with self._state:
            return len(self._outbox)

    def start(self) -> None:
        """Start the thread (once); it connects and reconnects by itself."""
        with self._state:
            if self._closing.is_set():
                raise RuntimeError("the orchestrator connection is closed")
            if self._thread is not None:
                return
            name = f"mrclient-orchestrator-{self.crunch_id}"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def connect(self, timeout: float) -> None:
        """Start, and block until the first ``init`` has been handled.

        Raises ``ConnectionError`` naming the URL when that does not happen
        within ``timeout`` seconds; the connection is closed then.
        """
        self.start()
        with self._state:
            self._state.wait_for(lambda: self._init_seen or self._closing.is_set(), timeout)
            ok, closing, error = self._init_seen, self._closing.is_set(), self._last_error
        if ok:
            return
        self.close()
        if closing and error is None:
            raise ConnectionError(f"the connection to the orchestrator at {self.url} was closed while connecting")
        detail = f" (last error: {error})" if error else ""
        raise ConnectionError(f"could not connect to the orchestrator at {self.url} within {timeout}s{detail}")

    def send(self, message: Mapping[str, Any]) -> None:
        """Queue a JSON message for the orchestrator; never blocks on the network."""
        text = json.dumps(message)
        with self._state:
            if self._closing.is_set():
                logger.warning("orchestrator connection closed: dropping %s", text)
                return
            self._outbox.append(text)
        self._wake()

    def report_failure(self, model_id: str, failure_code: str, failure_reason: str | None, ip: str) -> None:
        """Queue a ``report_failure`` message (sent after a reconnect if the socket is down)."""
        logger.info("reporting model %s at %s: %s (%s)", model_id, ip, failure_code, failure_reason)
        item = {"model_id": model_id, "failure_code": failure_code, "failure_reason": failure_reason, "ip": ip}
        self.send({"event": "report_failure", "data": [item]})

    def close(self) -> None:
        """Stop the thread and close the socket (with a closing handshake); idempotent.

        Messages still in the outbox are sent first if the socket is open.
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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
                # One call per healthy session: the backoff restarts after an init.
                retrying(self._session)
        except _Closing:
            pass
        except Exception:  # a bug: say so rather than die silently
            logger.exception("the orchestrator thread for %s failed", self.url)
        finally:
            with self._state:
                self._connected = False
                self._state.notify_all()
            self._close_wake_sockets()
            logger.debug("orchestrator thread for %s stopped", self.url)

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
        ws = websocket.WebSocket()
        with self._state:
            self._ws, self._serving = ws, False
        try:
            connect: Callable[..., None] = ws.connect  # untyped in websocket-client
            connect(self.url, timeout=self.settings.open_timeout, suppress_origin=True)
            logger.info("connected to the orchestrator at %s", self.url)
            self._serve(ws)
        except (OSError, websocket.WebSocketException, _Lost) as error:
            if self._closing.is_set():
                raise _Closing() from None
            self._record_error(error)
            if not self._connected:  # no init on this connection
                raise _Lost(str(error)) from error
            logger.warning("connection to the orchestrator at %s lost: %s", self.url, self._last_error)
        finally:
            self._end(ws)
        if self._closing.is_set():
            raise _Closing()

    def _serve(self, ws: websocket.WebSocket) -> None:
        """Receive frames, send the outbox and pings, until closing or a failure.

        Anything received proves the peer alive, and the deadlines (init, pong)
        are only checked when nothing is waiting to be read: a backlog of
        frames must not pass for a silent peer.
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
        while not self._closing.is_set():
            self._flush(ws)
            now = time.monotonic()
            if next_ping is not None and settings.ping_interval and now >= next_ping:
                ws.ping()
                next_ping = now + settings.ping_interval
                pong_deadline = pong_deadline or now + settings.ping_timeout
            deadlines = [d for d in (init_deadline, pong_deadline, next_ping) if d is not None]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes select() cannot see
            if pending is not None and pending() > 0:
                readable: list[Any] = [sock]
            else:
                readable, _, _ = select.select([sock, self._wake_reader], [], [], wait)
            if self._wake_reader in readable:
                self._drain_wake()
            if sock in readable:
                pong_deadline = None
                if self._receive(ws):
                    init_deadline = None
                continue
            now = time.monotonic()
            if init_deadline is not None and now >= init_deadline:
                raise _Lost(f"no init within {settings.open_timeout}s")
            if pong_deadline is not None and now >= pong_deadline:
                raise _Lost(f"no pong within {settings.ping_timeout}s")

    def _receive(self, ws: websocket.WebSocket) -> bool:
        """Read and act on one frame; True if it was an ``init``."""
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise _Lost(f"the orchestrator closed the connection{_close_detail(frame.data)}")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return self._handle(frame.data)
        if opcode == websocket.ABNF.OPCODE_BINARY:
            logger.warning("ignoring a binary frame of %d bytes from %s", len(frame.data), self.url)
        return False  # pings are answered by recv_data_frame; pongs only prove the peer alive

    def _flush(self, ws: websocket.WebSocket) -> None:
        """Send the outbox in order; a message leaves it only once fully sent.

        A send that fails breaks the connection (a frame may be half written),
        so the message is sent again, whole, on the next connection.
        """
        while True:
            with self._state:
                if not self._outbox:
                    return
                text = self._outbox[0]
            ws.send(text)
            with self._state:
                self._outbox.popleft()  # only this thread removes messages
            logger.debug("sent to %s: %s", self.url, text)

    def _handle(self, data: bytes) -> bool:
        """Decode one text frame and hand it over; True if it was an ``init``."""
        try:
            frame = json.loads(data)
        except ValueError:
            logger.warning("ignoring a frame that is not JSON from %s: %.200r", self.url, data)
            return False
        if not isinstance(frame, dict):
            logger.warning("ignoring a frame that is not a JSON object from %s: %.200r", self.url, data)
            return False
        event, entries = frame.get("event"), frame.get("data")
        if event not in EVENTS:
            if "error" in frame:
                logger.error("the orchestrator at %s says: %.500s", self.url, frame["error"])
            else:
                logger.warning("ignoring unknown event %.100r from %s", event, self.url)
            return False
        if not isinstance(entries, list):
            logger.warning("ignoring %s frame whose data is not a list: %.200r", event, entries)
            return False
        try:
            self._handler(event, entries)
        except Exception:
            logger.exception("the handler of %s frames failed", event)
        if event == "init":
            with self._state:
                self._init_seen = self._connected = True
                self._last_error = None
                self._state.notify_all()
            return True
        return False

    def _end(self, ws: websocket.WebSocket) -> None:
        """Close the socket: with a closing handshake (and the outbox sent) when closing."""
        with self._state:
            serving = self._serving
            self._ws, self._serving, self._connected = None, False, False
        if self._closing.is_set() and serving and ws.connected:
            try:
                self._flush(ws)
                ws.close(timeout=self.settings.close_timeout)
            except (OSError, websocket.WebSocketException) as error:
                logger.debug("closing the orchestrator socket: %s", error)
        ws.shutdown()  # type: ignore[no-untyped-call]

    def _record_error(self, error: BaseException) -> None:
        with self._state:
            self._last_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__

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
