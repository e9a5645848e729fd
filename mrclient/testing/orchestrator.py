"""A real model orchestrator on loopback, for tests: the WebSocket half of PROTOCOL.md.

``LocalOrchestrator`` serves ``ws://HOST:PORT/<crunch_id>`` with the
``websockets`` library's threaded server (websockets 14.2 and newer). Every new
connection gets an ``init`` (the models currently running; an unknown crunch
gets an empty one), then ``update`` deltas as the test adds, stops, recovers
and redeploys models. Nothing is replayed: a client that was away learns the
current state from its next ``init``. It records every ``report_failure`` it
receives and, as the production orchestrator does, stops the reported model
only when the report's ``ip`` is the one it announced for that model.

``backend="docker"`` speaks as the real orchestrator's Docker backend does:
ports as numeric strings, ``"ip": "localhost"``, two STOPPED frames per stop,
and a replaced submission as RUNNING for the new deployment then STOPPED for
the old one. Whatever the backend, it closes with 1001 when it stops and with
1011 when a client sends what the real one chokes on.

Each connection's handler thread sends the keepalive pings itself, so the
same code runs on every supported websockets. The optional report cycle
(``report_cycle``) has a thread of its own; ``stop()`` ends both.

Changing the model set while stopped, then ``start()`` again on the same port,
is an orchestrator restart with a different model set.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._support.extras import install_hint
from .._support.validation import (
    check_flag,
    check_host,
    check_instance,
    check_mapping,
    check_non_negative_int,
    check_port,
    check_text,
    check_timeout,
    check_wait,
    shown,
)

try:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import Server, ServerConnection, serve
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"LocalOrchestrator needs websockets: {install_hint('testing')}") from error

__all__ = ["LocalOrchestrator"]

logger = logging.getLogger(__name__)

Backend = Literal["plain", "docker"]
BACKENDS: tuple[Backend, ...] = ("plain", "docker")

#: websockets 15 added keepalive pings to its threaded server (on by default); 14 has none.
#: The handlers here ping themselves, so the library's own are turned off where they exist.
_LIBRARY_KEEPALIVE = "ping_interval" in inspect.signature(serve).parameters

#: Close codes the real orchestrator uses: shutting down, and a message it could not handle.
GOING_AWAY, INTERNAL_ERROR = 1001, 1011



def _count_and_wait(count: object, timeout: object) -> tuple[int, float]:
    """A ``wait_for_*``'s ``count`` (0 or more) and ``timeout`` (seconds, 0 or more)."""
    return check_non_negative_int("count", count, error=ValueError), check_wait("timeout", timeout, error=ValueError)


def _check_address(host: object, port: object, *, optional: bool = False) -> None:
    """A model's announced address: ``host`` (None: the default) and ``port`` (None too, if ``optional``)."""
    if host is not None:
        check_host(host, error=ValueError)
    if port is not None or not optional:
        check_port(port, error=ValueError)

@dataclass
class _Model:
    model_id: str
    deployment_id: str
    ip: str
    port: int
    infos: dict[str, Any] = field(default_factory=dict)
    state: str = "RUNNING"


class _Unhandled(Exception):
    """A client message the real orchestrator's handler raises on: it closes the connection with 1011."""


class LocalOrchestrator:
    """An orchestrator for one crunch, on ``host:port`` (``port=0``: a free one, kept across restarts).

    ``backend`` chooses how models are announced: ``"plain"`` (the default:
    integer ports, the ``host`` given to ``add_model``, one STOPPED frame per
    stop) or ``"docker"``, as the real orchestrator's Docker backend does
    (ports as numeric strings such as ``"32768"``, ``"ip": "localhost"`` unless
    ``add_model`` says otherwise, a stop announced by two STOPPED frames, the
    second with ``port: 0`` and an empty ``ip``, and ``redeploy_model``
    announcing the new deployment RUNNING, then the old one stopped).

    Reports are acted on only when their ``ip`` is the model's announced ip,
    exactly; the others are recorded in ``ignored_reports``. With
    ``report_cycle`` (seconds) reports wait for the next cycle, as on the real
    orchestrator, and a report it cannot act on ends the cycle: the reports
    queued behind it are dropped (and recorded so).
    """

    def __init__(
        self,
        crunch_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backend: Backend = "plain",
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        stop_reported: bool = True,
        refuse_unknown_crunch: bool = False,
        report_cycle: float | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, not {backend!r}")
        for name, seconds in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout),
                              ("report_cycle", report_cycle)):
            if seconds is not None:
                check_timeout(name, seconds, error=ValueError)
        self.crunch_id = check_text("crunch_id", crunch_id, "the crunch's id, a non-empty string", error=ValueError)
        self.backend: Backend = backend
        #: Answer a client of another crunch with an error object and close, instead of an empty init.
        self.refuse_unknown_crunch = check_flag("refuse_unknown_crunch", refuse_unknown_crunch, error=ValueError)
        self.host = check_host(host, error=ValueError)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.stop_reported = check_flag("stop_reported", stop_reported, error=ValueError)
        self.report_cycle = report_cycle
        port = 0 if port == 0 else check_port(port, error=ValueError)  # 0: the system picks a free port
        self._port = port
        self._changed = threading.Condition()  # guards everything below
        self._models: dict[str, _Model] = {}
        self._clients: dict[ServerConnection, str] = {}  # connection -> the crunch id it asked for
        self._reports: list[dict[str, Any]] = []
        self._queued: list[tuple[str, dict[str, Any]]] = []  # (crunch id, report) awaiting the next cycle
        self._ignored: list[tuple[dict[str, Any], str]] = []
        self._close_codes: list[int | None] = []
        self._unhandled: list[str] = []
        self._connections = 0
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._cycle_thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> LocalOrchestrator:
        """Listen (again, on the same port after a ``stop``) and serve in a thread."""
        with self._changed:
            if self._server is not None:
                raise RuntimeError("the orchestrator is already started")
            options: dict[str, Any] = {"ping_interval": None} if _LIBRARY_KEEPALIVE else {}
            server = serve(self._serve_connection, self.host, self._port, close_timeout=2.0, compression=None,
                           **options)
            self._port = server.socket.getsockname()[1]
            self._server = server
            self._stopping.clear()
            # Each thread is kept only once started, under the lock stop() reads them with.
            serving = threading.Thread(target=server.serve_forever, name="local-orchestrator", daemon=True)
            serving.start()
            self._thread = serving
            if self.report_cycle is not None:
                cycles = threading.Thread(
                    target=self._run_cycles, args=(self.report_cycle,), name="local-orchestrator-cycle", daemon=True
                )
                cycles.start()
                self._cycle_thread = cycles
        logger.info("local orchestrator for %r on %s", self.crunch_id, self.url)
        return self

    def stop(self) -> None:
        """Close every connection (code 1001, no STOPPED frames first) and stop listening; idempotent.

        Reports still waiting for a cycle are lost, as on the real
        orchestrator, and recorded in ``ignored_reports``.
        """
        with self._changed:
            server, thread, cycles = self._server, self._thread, self._cycle_thread
            self._server = self._thread = self._cycle_thread = None
            self._stopping.set()
        if server is None:
            return
        server.shutdown()
        # websockets >= 17 closes the open connections at shutdown and waits for
        # their handlers; older versions leave them open, so close them here.
        with self._changed:
            clients = list(self._clients)
        for client in clients:
            client.close(code=GOING_AWAY)
        with self._changed:
            self._changed.wait_for(lambda: not self._clients, 10.0)
        for joined in (thread, cycles):
            if joined is not None:
                joined.join(10.0)
        with self._changed:
            lost, self._queued = self._queued, []
            self._ignored.extend((report, "the orchestrator stopped before its next cycle") for _, report in lost)
            self._changed.notify_all()
        logger.info("local orchestrator on port %s stopped", self._port)

    def restart(self) -> None:
        """``stop()`` then ``start()`` on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> LocalOrchestrator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (kept across ``stop()`` and ``start()``); RuntimeError before the first start."""
        if not self._port:
            raise RuntimeError("the orchestrator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """The WebSocket URL a client connects to, ``ws://host:port/<crunch_id>``."""
        return f"ws://{self.host}:{self.port}/{self.crunch_id}"

    @property
    def running(self) -> bool:
        """Whether it is listening (between ``start()`` and ``stop()``)."""
        return self._server is not None

    # -- the model set ----------------------------------------------------------------------

    def add_model(
        self,
        host: str | None = None,
        port: int | None = None,
        name: str | None = None,
        infos: Mapping[str, Any] | None = None,
        model_id: str | None = None,
    ) -> str:
        """Add a RUNNING model served at ``host:port``; returns its model_id.

        ``host`` is the ip announced (and the one reports must carry); by
        default ``127.0.0.1``, or ``localhost`` with the Docker backend.
        ``model_id`` is chosen here unless given (a secure node's certificate
        and identity name its model, so they are made first).
        """
        if port is None:
            raise TypeError("add_model() needs the model node's port")
        _check_address(host, port)
        check_text("name", name, "a string or None", optional=True, error=ValueError)
        check_mapping("infos", infos, "a dict or None", error=ValueError)
        check_text("model_id", model_id, "a non-empty string or None", optional=True, error=ValueError)
        with self._changed:
            number = next(self._ids)
            model_id = model_id or f"model-{number}"
            if model_id in self._models:
                raise ValueError(f"model {model_id!r} already exists")
            details = {
                "model_name": name or f"local-model-{number}",
                "cruncher_id": f"cruncher-{number}",
                "cruncher_name": f"cruncher {number}",
                "cruncher_wallet_pubkey": "",
                "cruncher_hotkey": "",
            }
            details.update(infos or {})
            if name is not None:
                details["model_name"] = name
            ip = host or ("localhost" if self.backend == "docker" else "127.0.0.1")
            model = _Model(model_id, self._new_deployment_id(), ip, port, details)
            self._models[model_id] = model
            self._publish(model)
        return model_id

    def stop_model(self, model_id: str) -> None:
        """The model stops (announced STOPPED; twice with the Docker backend); ``recover_model`` brings it back."""
        with self._changed:
            self._stop(self._model(model_id))

    def recover_model(self, model_id: str, host: str | None = None, port: int | None = None) -> None:
        """Announce RECOVERING, then RUNNING again (same deployment), optionally at a new address."""
        _check_address(host, port, optional=True)
        with self._changed:
            model = self._model(model_id)
            model.state = "RECOVERING"
            self._publish(model)
            model.ip = host or model.ip
            model.port = port or model.port
            model.state = "RUNNING"
            self._publish(model)

    def move_model(self, model_id: str, host: str | None = None, port: int | None = None) -> None:
        """The same deployment, RUNNING at a new address (announced without a RECOVERING first)."""
        _check_address(host, port, optional=True)
        with self._changed:
            model = self._model(model_id)
            model.ip = host or model.ip
            model.port = port or model.port
            model.state = "RUNNING"
            self._publish(model)

    def redeploy_model(
        self,
        model_id: str,
        host: str | None = None,
        port: int | None = None,
        stop_old: bool | None = None,
    ) -> str:
        """A new deployment of the model (same model_id), RUNNING; returns its deployment_id.

        With ``stop_old`` (the default with the Docker backend), the old
        deployment's stop follows, as when the production orchestrator
        replaces a submission: RUNNING for the new one, then STOPPED for the old.
        """
        _check_address(host, port, optional=True)
        if stop_old is not None:
            check_flag("stop_old", stop_old, error=ValueError)
        with self._changed:
            model = self._model(model_id)
            old = _Model(model.model_id, model.deployment_id, model.ip, model.port, dict(model.infos), model.state)
            model.deployment_id = self._new_deployment_id()
            model.ip = host or model.ip
            model.port = port or model.port
            model.state = "RUNNING"
            self._publish(model)
            if stop_old if stop_old is not None else self.backend == "docker":
                self._stop(old)
            return model.deployment_id

    def remove_model(self, model_id: str) -> None:
        """Forget the model (announced STOPPED if it was running)."""
        with self._changed:
            model = self._models.pop(self._model(model_id).model_id)
            if model.state != "STOPPED":
                self._stop(model)

    def set_state(self, model_id: str, state: str) -> None:
        """Announce any state, known or not (``RECOVERING`` alone, or one the client must ignore)."""
        check_instance("state", state, str, "a string (any state, known or not)", error=ValueError)
        with self._changed:
            model = self._model(model_id)
            model.state = state
            self._publish(model)

    def set_infos(self, model_id: str, infos: Mapping[str, Any]) -> None:
        """Change the model's infos (same deployment and address), announced as RUNNING."""
        check_mapping("infos", infos, "a dict", optional=False, error=ValueError)
        with self._changed:
            model = self._model(model_id)
            model.infos.update(infos)
            self._publish(model)

    def model(self, model_id: str) -> dict[str, Any]:
        """The model's entry as the orchestrator would send it now."""
        with self._changed:
            return self._entry(self._model(model_id))

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        """model_id -> entry, for every model it knows, whatever its state."""
        with self._changed:
            return {m.model_id: self._entry(m) for m in self._models.values()}

    @property
    def running_models(self) -> dict[str, dict[str, Any]]:
        """``model_id -> entry`` for every RUNNING model, what a client should end up with."""
        with self._changed:
            return {m.model_id: self._entry(m) for m in self._models.values() if m.state == "RUNNING"}

    def _model(self, model_id: object) -> _Model:
        """The model ``model_id`` names (lock held); ValueError naming ``model_id`` for any other."""
        model = self._models.get(model_id) if isinstance(model_id, str) else None
        if model is None:
            raise ValueError(f"model_id must be the id of a model of this orchestrator (add_model's), "
                             f"got {shown(model_id)}; it has {', '.join(map(repr, self._models)) or 'none'}")
        return model

    def _entry(self, model: _Model, **changes: Any) -> dict[str, Any]:
        """The model's entry as this backend announces it (lock held)."""
        entry = {
            "deployment_id": model.deployment_id,
            "model_id": model.model_id,
            "infos": dict(model.infos),
            "state": model.state,
            "ip": model.ip,
            "port": str(model.port) if self.backend == "docker" else model.port,
        }
        entry.update(changes)
        return entry

    def _stop(self, model: _Model) -> None:
        """Mark ``model`` stopped and announce it: once, or as the Docker backend does (lock held).

        The Docker backend's second frame comes once the container is gone,
        so it no longer knows the address: ``port: 0`` and an empty ``ip``.
        """
        model.state = "STOPPED"
        self._publish(model)
        if self.backend == "docker":
            self._broadcast({"event": "update", "data": [self._entry(model, ip="", port=0)]})

    def _new_deployment_id(self) -> str:
        return f"deployment-{next(self._ids)}"

    # -- talking to clients -----------------------------------------------------------------

    def send_raw(self, data: str | bytes, *, text: bool = True) -> None:
        """Send ``data`` as is to every connected client (malformed frames, for instance).

        Bytes go in a text frame too unless ``text=False`` (a binary frame), so a
        test can send text that is not UTF-8.
        """
        check_instance("data", data, (str, bytes), "a string or bytes (sent as is)", error=ValueError)
        check_flag("text", text, error=ValueError)
        with self._changed:
            self._send_all(data, text=text)

    def drop_connections(self) -> None:
        """Cut every client's TCP connection without a closing handshake, as a network failure does."""
        with self._changed:
            clients = list(self._clients)
        for client in clients:
            try:
                client.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def clients(self) -> int:
        """Clients connected now."""
        with self._changed:
            return len(self._clients)

    @property
    def connections(self) -> int:
        """Client connections accepted so far (one per connect or reconnect)."""
        with self._changed:
            return self._connections

    @property
    def reports(self) -> list[dict[str, Any]]:
        """Every ``report_failure`` item received, in order (a copy), acted on or not."""
        with self._changed:
            return [dict(report) for report in self._reports]

    @property
    def ignored_reports(self) -> list[tuple[dict[str, Any], str]]:
        """``(report, why)`` for each report received and not acted on, in order (a copy).

        Why: no such running model at the report's ``ip`` (the real
        orchestrator compares it with the announced ip, exactly), another
        crunch's client, dropped with the rest of its cycle, or lost when the
        orchestrator stopped before its next cycle.
        """
        with self._changed:
            return [(dict(report), why) for report, why in self._ignored]

    @property
    def unhandled_messages(self) -> list[str]:
        """Why each connection closed with 1011 was closed, that is what the client sent that the real one chokes on."""
        with self._changed:
            return list(self._unhandled)

    @property
    def client_close_codes(self) -> list[int | None]:
        """For each connection that ended, the close code the client sent (None if it sent none).

        Only closes the client started count; a close the orchestrator started
        (``stop()``, a 1011) is recorded as None.
        """
        with self._changed:
            return list(self._close_codes)

    def wait_for_clients(self, count: int, timeout: float) -> bool:
        """Block until exactly ``count`` clients are connected; False after ``timeout``."""
        count, timeout = _count_and_wait(count, timeout)
        with self._changed:
            return self._changed.wait_for(lambda: len(self._clients) == count, timeout)

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` connections were accepted in all; False after ``timeout``."""
        count, timeout = _count_and_wait(count, timeout)
        with self._changed:
            return self._changed.wait_for(lambda: self._connections >= count, timeout)

    def wait_for_reports(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` reports arrived; False after ``timeout``."""
        count, timeout = _count_and_wait(count, timeout)
        with self._changed:
            return self._changed.wait_for(lambda: len(self._reports) >= count, timeout)

    def wait_for_ignored_reports(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` reports were ignored; False after ``timeout``."""
        count, timeout = _count_and_wait(count, timeout)
        with self._changed:
            return self._changed.wait_for(lambda: len(self._ignored) >= count, timeout)

    def _publish(self, model: _Model) -> None:
        self._broadcast({"event": "update", "data": [self._entry(model)]})

    def _broadcast(self, message: Mapping[str, Any]) -> None:
        """Send to this crunch's clients (lock held, so each sees frames in publication order)."""
        self._send_all(json.dumps(message), self.crunch_id)

    def _send_all(self, data: str | bytes, crunch_id: str | None = None, text: bool = True) -> None:
        for client, wanted in list(self._clients.items()):
            if crunch_id is not None and wanted != crunch_id:
                continue
            try:
                client.send(data, text=text)
            except ConnectionClosed:
                pass

    def _serve_connection(self, connection: ServerConnection) -> None:
        request = connection.request
        path = urllib.parse.unquote(urllib.parse.urlsplit(request.path if request else "").path)
        crunch_id = path.strip("/")
        if not crunch_id or (self.refuse_unknown_crunch and crunch_id != self.crunch_id):
            error = f"unknown crunch {crunch_id!r}" if crunch_id else "no crunch id: connect to ws://host:port/<crunch_id>"
            connection.send(json.dumps({"error": error}))
            connection.close(code=1008, reason="unknown crunch" if crunch_id else "missing crunch id")
            return
        with self._changed:
            self._connections += 1
            self._clients[connection] = crunch_id
            models = [self._entry(m) for m in self._models.values() if m.state == "RUNNING"]
            try:
                connection.send(json.dumps({"event": "init", "data": models if crunch_id == self.crunch_id else []}))
            except ConnectionClosed:
                pass
            self._changed.notify_all()
        try:
            self._converse(crunch_id, connection)
        except ConnectionClosed:
            pass
        except _Unhandled as error:
            logger.warning("local orchestrator: closing a connection with 1011: %s", error)
            with self._changed:
                self._unhandled.append(str(error))
            connection.close(code=INTERNAL_ERROR, reason="internal error")
        finally:
            protocol = connection.protocol
            by_client = protocol.close_rcvd is not None and bool(protocol.close_rcvd_then_sent)
            with self._changed:
                self._clients.pop(connection, None)
                self._close_codes.append(protocol.close_rcvd.code if by_client and protocol.close_rcvd else None)
                self._changed.notify_all()

    def _converse(self, crunch_id: str, connection: ServerConnection) -> None:
        """Read the client's messages until the connection ends, pinging it if asked to.

        A ping not answered within ``ping_timeout`` closes the connection with
        1011, as the websockets keepalive does.
        """
        interval = self.ping_interval
        next_ping = time.monotonic() + interval if interval else None
        pong: threading.Event | None = None
        pong_deadline = 0.0
        while True:
            now = time.monotonic()
            if pong is not None and pong.is_set():
                pong = None
            if pong is not None and now >= pong_deadline:
                connection.close(code=INTERNAL_ERROR, reason="keepalive ping timeout")
                return
            if next_ping is not None and interval and now >= next_ping:
                next_ping = now + interval
                if pong is None:
                    pong = connection.ping()
                    pong_deadline = now + (self.ping_timeout or interval)
            deadlines = [d for d in (next_ping, pong_deadline if pong is not None else None) if d is not None]
            wait = max(0.001, min(deadlines) - now) if deadlines else None
            try:
                message = connection.recv(timeout=wait)
            except TimeoutError:
                continue
            self._receive(crunch_id, message)

    def _receive(self, crunch_id: str, message: str | bytes) -> None:
        """Read one client message as the real orchestrator does: what it chokes on raises ``_Unhandled``."""
        try:
            frame = json.loads(message)
        except ValueError:
            raise _Unhandled(f"not JSON: {message!r:.200}") from None
        if isinstance(frame, list) or (isinstance(frame, dict) and frame.get("event") != "report_failure"):
            logger.warning("local orchestrator: ignoring %.200r", message)
            return
        if not isinstance(frame, dict):
            raise _Unhandled(f"not a JSON object: {message!r:.200}")
        if "data" not in frame:
            raise _Unhandled(f"a report_failure without data: {message!r:.200}")
        items = frame["data"]
        if not isinstance(items, list):
            raise _Unhandled(f"a report_failure whose data is not a list: {message!r:.200}")
        with self._changed:
            try:
                for item in items:
                    if not isinstance(item, dict) or not {"model_id", "failure_code", "ip"} <= item.keys():
                        raise _Unhandled(f"a report without model_id, failure_code or ip: {item!r:.200}")
                    self._reports.append(item)
                    if self.report_cycle is None:
                        self._handle_reports([(crunch_id, item)])
                    else:
                        self._queued.append((crunch_id, item))
            finally:
                self._changed.notify_all()

    # -- acting on reports --------------------------------------------------------------------

    def _run_cycles(self, period: float) -> None:
        """The report cycle: every ``period`` seconds, act on the reports queued since the last one."""
        while not self._stopping.wait(period):
            with self._changed:
                queued, self._queued = self._queued, []
                self._handle_reports(queued)
                self._changed.notify_all()

    def _handle_reports(self, queued: list[tuple[str, dict[str, Any]]]) -> None:
        """Act on one cycle's reports, in order (lock held).

        As the real orchestrator: a report is about the model running at
        exactly the ip it names; one it cannot place ends the cycle, and the
        reports queued behind it are dropped.
        """
        for position, (crunch_id, report) in enumerate(queued):
            if crunch_id != self.crunch_id:
                self._ignored.append((report, f"from a client of another crunch ({crunch_id!r})"))
                continue
            model = self._models.get(str(report["model_id"]))
            if model is None or model.state != "RUNNING" or model.ip != report["ip"]:
                where = "not running" if model is None or model.state != "RUNNING" else f"announced at {model.ip!r}"
                self._ignored.append((report, f"no model {report['model_id']!r} at ip {report['ip']!r} ({where})"))
                self._ignored.extend(
                    (later, "dropped: an earlier report of its cycle named no running model")
                    for _, later in queued[position + 1 :]
                )
                return
            if self.stop_reported:
                self._stop(model)
