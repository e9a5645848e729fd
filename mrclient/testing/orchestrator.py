"""A real model orchestrator on loopback, for tests: the WebSocket half of PROTOCOL.md.

``LocalOrchestrator`` serves ``ws://HOST:PORT/<crunch_id>`` with the
``websockets`` library's threaded server. Every new connection gets an
``init`` (the models currently running), then ``update`` deltas as the test
adds, stops, recovers and redeploys models. Nothing is replayed: a client that
was away learns the current state from its next ``init``. It records every
``report_failure`` it receives and, as the production orchestrator does, stops
the reported model.

Changing the model set while stopped, then ``start()`` again on the same port,
is an orchestrator restart with a different model set.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..extras import install_hint

try:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import Server, ServerConnection, serve
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"LocalOrchestrator needs websockets: {install_hint('testing')}") from error

__all__ = ["LocalOrchestrator"]

logger = logging.getLogger(__name__)


@dataclass
class _Model:
    model_id: str
    deployment_id: str
    ip: str
    port: int
    infos: dict[str, Any] = field(default_factory=dict)
    state: str = "RUNNING"

    def entry(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "model_id": self.model_id,
            "infos": dict(self.infos),
            "state": self.state,
            "ip": self.ip,
            "port": self.port,
        }


class LocalOrchestrator:
    """An orchestrator for one crunch, on ``host:port`` (``port=0``: a free one, kept across restarts)."""

    def __init__(
        self,
        crunch_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        stop_reported: bool = True,
        refuse_unknown_crunch: bool = False,
    ) -> None:
        self.crunch_id = crunch_id
        #: Answer a client of another crunch with an error object and close, instead of an empty init.
        self.refuse_unknown_crunch = refuse_unknown_crunch
        self.host = host
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.stop_reported = stop_reported
        self._port = port
        self._changed = threading.Condition()  # guards everything below
        self._models: dict[str, _Model] = {}
        self._clients: dict[ServerConnection, str] = {}  # connection -> the crunch id it asked for
        self._reports: list[dict[str, Any]] = []
        self._close_codes: list[int | None] = []
        self._connections = 0
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> LocalOrchestrator:
        """Listen (again, on the same port after a ``stop``) and serve in a thread."""
        with self._changed:
            if self._server is not None:
                raise RuntimeError("the orchestrator is already started")
            server = serve(
                self._serve_connection,
                self.host,
                self._port,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=2.0,
                compression=None,
            )
            self._port = server.socket.getsockname()[1]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name="local-orchestrator", daemon=True)
            self._thread.start()
        logger.info("local orchestrator for %r on %s", self.crunch_id, self.url)
        return self

    def stop(self) -> None:
        """Close every connection (code 1001) and stop listening; idempotent."""
        with self._changed:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        # websockets >= 17 closes the open connections at shutdown and waits for
        # their handlers; older versions leave them open, so close them here.
        with self._changed:
            clients = list(self._clients)
        for client in clients:
            client.close(code=1001)
        with self._changed:
            self._changed.wait_for(lambda: not self._clients, 10.0)
        if thread is not None:
            thread.join(10.0)
        logger.info("local orchestrator on port %s stopped", self._port)

    def restart(self) -> None:
        """``stop()`` then ``start()`` on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> LocalOrchestrator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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
        host: str = "127.0.0.1",
        port: int | None = None,
        name: str | None = None,
        infos: Mapping[str, Any] | None = None,
        model_id: str | None = None,
    ) -> str:
        """Add a RUNNING model served at ``host:port``; returns its model_id.

        ``model_id`` is chosen here unless given (a secure node's certificate
        and identity name its model, so they are made first).
        """
        if port is None:
            raise TypeError("add_model() needs the model node's port")
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
            model = _Model(model_id, self._new_deployment_id(), host, port, details)
            self._models[model_id] = model
            self._publish(model)
        return model_id

    def stop_model(self, model_id: str) -> None:
        """The model stops (announced STOPPED); ``recover_model`` brings it back."""
        self._set(model_id, "STOPPED")

    def recover_model(self, model_id: str, host: str | None = None, port: int | None = None) -> None:
        """Announce RECOVERING, then RUNNING again (same deployment), optionally at a new address."""
        with self._changed:
            model = self._models[model_id]
            model.state = "RECOVERING"
            self._publish(model)
            model.ip = host or model.ip
            model.port = port or model.port
            model.state = "RUNNING"
            self._publish(model)

    def move_model(self, model_id: str, host: str | None = None, port: int | None = None) -> None:
        """The same deployment, RUNNING at a new address (announced without a RECOVERING first)."""
        with self._changed:
            model = self._models[model_id]
            model.ip = host or model.ip
            model.port = port or model.port
            model.state = "RUNNING"
            self._publish(model)

    def redeploy_model(
        self,
        model_id: str,
        host: str | None = None,
        port: int | None = None,
        stop_old: bool = False,
    ) -> str:
        """A new deployment of the model (same model_id), RUNNING; returns its deployment_id.

        With ``stop_old``, the old deployment's STOPPED follows, as when the
        production orchestrator tears the previous run down.
        """
        with self._changed:
            model = self._models[model_id]
            old = model.entry()
            model.deployment_id = self._new_deployment_id()
            model.ip = host or model.ip
            model.port = port or model.port
            model.state = "RUNNING"
            self._publish(model)
            if stop_old:
                old["state"] = "STOPPED"
                self._broadcast({"event": "update", "data": [old]})
            return model.deployment_id

    def remove_model(self, model_id: str) -> None:
        """Forget the model (announced STOPPED if it was running)."""
        with self._changed:
            model = self._models.pop(model_id)
            if model.state != "STOPPED":
                model.state = "STOPPED"
                self._publish(model)

    def set_state(self, model_id: str, state: str) -> None:
        """Announce any state, known or not (``RECOVERING`` alone, or one the client must ignore)."""
        self._set(model_id, state)

    def set_infos(self, model_id: str, infos: Mapping[str, Any]) -> None:
        """Change the model's infos (same deployment and address), announced as RUNNING."""
        with self._changed:
            model = self._models[model_id]
            model.infos.update(infos)
            self._publish(model)

    def model(self, model_id: str) -> dict[str, Any]:
        """The model's entry as the orchestrator would send it now."""
        with self._changed:
            return self._models[model_id].entry()

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        """model_id -> entry, for every model it knows, whatever its state."""
        with self._changed:
            return {m.model_id: m.entry() for m in self._models.values()}

    @property
    def running_models(self) -> dict[str, dict[str, Any]]:
        """``model_id -> entry`` for every RUNNING model, what a client should end up with."""
        with self._changed:
            return {m.model_id: m.entry() for m in self._models.values() if m.state == "RUNNING"}

    def _set(self, model_id: str, state: str) -> None:
        with self._changed:
            model = self._models[model_id]
            model.state = state
            self._publish(model)

    def _new_deployment_id(self) -> str:
        return f"deployment-{next(self._ids)}"

    # -- talking to clients -----------------------------------------------------------------

    def send_raw(self, data: str | bytes, *, text: bool = True) -> None:
        """Send ``data`` as is to every connected client (malformed frames, for instance).

        Bytes go in a text frame too unless ``text=False`` (a binary frame), so a
        test can send text that is not UTF-8.
        """
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
        """Every ``report_failure`` item received, in order (a copy)."""
        with self._changed:
            return [dict(report) for report in self._reports]

    @property
    def client_close_codes(self) -> list[int | None]:
        """For each connection that ended, the close code the client sent (None if it sent none).

        Only closes the client started count; a close the orchestrator started
        (``stop()``) is recorded as None.
        """
        with self._changed:
            return list(self._close_codes)

    def wait_for_clients(self, count: int, timeout: float) -> bool:
        """Block until exactly ``count`` clients are connected; False after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._clients) == count, timeout)

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` connections were accepted in all; False after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._connections >= count, timeout)

    def wait_for_reports(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` reports arrived; False after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._reports) >= count, timeout)

    def _publish(self, model: _Model) -> None:
        self._broadcast({"event": "update", "data": [model.entry()]})

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
            models = [m.entry() for m in self._models.values() if m.state == "RUNNING"]
            try:
                connection.send(json.dumps({"event": "init", "data": models if crunch_id == self.crunch_id else []}))
            except ConnectionClosed:
                pass
            self._changed.notify_all()
        try:
            for message in connection:
                self._receive(crunch_id, message)
        except ConnectionClosed:
            pass
        finally:
            protocol = connection.protocol
            by_client = protocol.close_rcvd is not None and bool(protocol.close_rcvd_then_sent)
            with self._changed:
                self._clients.pop(connection, None)
                self._close_codes.append(protocol.close_rcvd.code if by_client and protocol.close_rcvd else None)
                self._changed.notify_all()

    def _receive(self, crunch_id: str, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            logger.warning("local orchestrator: ignoring a frame that is not JSON: %.200r", message)
            return
        if not isinstance(frame, dict) or frame.get("event") != "report_failure":
            logger.warning("local orchestrator: ignoring %.200r", message)
            return
        with self._changed:
            for item in frame.get("data") or []:
                if not isinstance(item, dict):
                    continue
                self._reports.append(item)
                model = self._models.get(str(item.get("model_id")))
                if self.stop_reported and crunch_id == self.crunch_id and model and model.state == "RUNNING":
                    model.state = "STOPPED"
                    self._publish(model)
            self._changed.notify_all()
