"""OrchestratorConnection and LocalOrchestrator, over real WebSockets on loopback."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import websocket
from tenacity import RetryCallState, Retrying
from tenacity.wait import wait_base

from _orchestrator_fixtures import CRUNCH, FAST, QUIET, WAIT, SilentServer, orchestrator, silent_server
from conftest import free_port
from mrclient.orchestrator.connection import OrchestratorConnection, OrchestratorSettings, reconnect_backoff
from mrclient.testing import LocalOrchestrator

__all__ = ["orchestrator", "silent_server"]  # fixtures used here


class Events:
    """A handler that records (event, entries) with bounded waits on them."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[Any]]] = []
        self.threads: set[str] = set()
        self._changed = threading.Condition()

    def __call__(self, event: str, entries: list[Any]) -> None:
        with self._changed:
            self.received.append((event, entries))
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def wait_count(self, count: int, timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.received) >= count, timeout)

    def names(self) -> list[str]:
        with self._changed:
            return [event for event, _ in self.received]


@pytest.fixture
def connect() -> Iterator[Callable[..., tuple[OrchestratorConnection, Events]]]:
    """Factory: ``connect(port, crunch_id=CRUNCH, settings=FAST)`` makes a connection; all closed afterwards."""
    made: list[OrchestratorConnection] = []

    def make(
        port: int, crunch_id: str = CRUNCH, settings: OrchestratorSettings = FAST
    ) -> tuple[OrchestratorConnection, Events]:
        events = Events()
        connection = OrchestratorConnection(crunch_id, "127.0.0.1", port, events, settings)
        made.append(connection)
        return connection, events

    yield make
    for connection in made:
        connection.close()


def report_items(orch: LocalOrchestrator) -> list[tuple[str, str]]:
    return [(r["model_id"], r["failure_code"]) for r in orch.reports]


# -- connecting -------------------------------------------------------------------------------


def test_connect_returns_once_the_init_was_handled(orchestrator: LocalOrchestrator, connect: Any) -> None:
    model_id = orchestrator.add_model(port=5555, name="alpha")
    connection, events = connect(orchestrator.port)
    assert connection.url == f"ws://127.0.0.1:{orchestrator.port}/{CRUNCH}"
    connection.connect(WAIT)
    assert connection.connected
    assert events.received == [("init", [orchestrator.model(model_id)])]
    assert events.threads == {f"mrclient-orchestrator-{CRUNCH}"}, "events are handled on the connection's thread"
    assert orchestrator.clients == 1


def test_updates_follow_the_init_in_order(orchestrator: LocalOrchestrator, connect: Any) -> None:
    connection, events = connect(orchestrator.port)
    connection.connect(WAIT)
    first = orchestrator.add_model(port=5555)
    orchestrator.stop_model(first)
    orchestrator.recover_model(first, port=5556)
    assert events.wait_count(5)
    seen = [(event, [(e["model_id"], e["state"], e["port"]) for e in entries]) for event, entries in events.received]
    assert seen == [
        ("init", []),
        ("update", [(first, "RUNNING", 5555)]),
        ("update", [(first, "STOPPED", 5555)]),
        ("update", [(first, "RECOVERING", 5555)]),
        ("update", [(first, "RUNNING", 5556)]),
    ]


@pytest.mark.serial
def test_connect_raises_a_connection_error_naming_the_url_when_nobody_listens(connect: Any) -> None:
    port = free_port()
    connection, _ = connect(port)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"ws://127.0.0.1:{port}/{CRUNCH}.*connection refused: nothing listens at 127.0.0.1:{port}"):
        connection.connect(0.5)
    assert time.monotonic() - started < 2.0
    assert not [t for t in threading.enumerate() if t.name.startswith("mrclient-orchestrator")], "the thread stopped"


def test_an_empty_crunch_id_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="crunch_id"):
        OrchestratorConnection("", "127.0.0.1", 1, lambda event, entries: None)


def test_the_crunch_id_is_quoted_into_the_path_and_selects_the_models(
    orchestrator: LocalOrchestrator, connect: Any
) -> None:
    orchestrator.add_model(port=5555)
    connection, events = connect(orchestrator.port, crunch_id="other crunch/2")
    assert connection.url.endswith("/other%20crunch%2F2")
    connection.connect(WAIT)
    orchestrator.add_model(port=5556)
    mine, my_events = connect(orchestrator.port)
    mine.connect(WAIT)
    orchestrator.add_model(port=5557)
    assert my_events.wait_count(2)
    assert events.received == [("init", [])], "another crunch's client hears nothing of this crunch's models"


# -- staying connected ----------------------------------------------------------------------


def test_it_reconnects_after_a_dropped_connection_and_rebuilds_from_the_new_init(
    orchestrator: LocalOrchestrator, connect: Any
) -> None:
    connection, events = connect(orchestrator.port)
    connection.connect(WAIT)
    orchestrator.drop_connections()
    assert orchestrator.wait_for_connections(2, WAIT)
    assert events.wait_count(2)
    assert events.names() == ["init", "init"]


def test_no_update_is_replayed_after_the_orchestrator_comes_back(orchestrator: LocalOrchestrator, connect: Any) -> None:
    connection, events = connect(orchestrator.port)
    connection.connect(WAIT)
    orchestrator.stop()
    added = orchestrator.add_model(port=5555)  # while the client is away
    orchestrator.start()
    assert events.wait_count(2)
    assert orchestrator.wait_for_connections(2, WAIT)
    assert not events.wait_count(3, QUIET), "nothing but the new init may arrive"
    assert events.received[1] == ("init", [orchestrator.model(added)])


class CountingWait(wait_base):
    """The fast reconnect policy, recording the attempt number of each wait."""

    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.changed = threading.Condition()
        self._wait = FAST.reconnect_wait

    def __call__(self, retry_state: RetryCallState) -> float:
        with self.changed:
            self.attempts.append(retry_state.attempt_number)
            self.changed.notify_all()
        return self._wait(retry_state)

    def wait_count(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.attempts) >= count, WAIT)


def test_reconnects_follow_the_policy_forever_and_restart_it_after_a_session(
    orchestrator: LocalOrchestrator, connect: Any
) -> None:
    policy = CountingWait()
    connection, events = connect(orchestrator.port, settings=replace(FAST, reconnect_wait=policy))
    connection.connect(WAIT)
    orchestrator.stop()
    assert policy.wait_count(6), "it keeps trying while the orchestrator is down"
    orchestrator.start()
    assert events.wait_count(2)
    with policy.changed:
        seen = len(policy.attempts)
    orchestrator.stop()
    assert policy.wait_count(seen + 1)
    assert policy.attempts[:6] == [1, 2, 3, 4, 5, 6]
    assert policy.attempts[seen] == 1, "a healthy session restarts the backoff"


def test_the_reconnect_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = reconnect_backoff(initial=0.5, maximum=30.0, jitter=1.0)
    state = RetryCallState(Retrying(), None, (), {})
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (20, 30.0)]:
        state.attempt_number = attempt
        waits = [policy(state) for _ in range(50)]
        assert all(base <= w <= base + 1.0 for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > 0.1, "jitter spreads the reconnects"


def test_it_answers_the_orchestrators_pings(connect: Any) -> None:
    with LocalOrchestrator(crunch_id=CRUNCH, ping_interval=0.05, ping_timeout=0.1) as orch:
        connection, _ = connect(orch.port, settings=replace(FAST, ping_interval=None))
        connection.connect(WAIT)
        assert not orch.wait_for_connections(2, 10 * 0.1), "a missed pong would have closed the connection"
        assert orch.clients == 1 and connection.connected


@pytest.mark.serial
def test_a_peer_that_stops_answering_is_noticed_by_its_pings(
    connect: Any, silent_server: Callable[..., SilentServer]
) -> None:
    server = silent_server()
    settings = replace(FAST, ping_interval=0.2, ping_timeout=0.2)
    connection, events = connect(server.port, settings=settings)
    connection.connect(WAIT)
    started = time.monotonic()
    assert server.wait_accepted(2, WAIT), "a dead peer must be noticed and the client reconnect"
    assert time.monotonic() - started < 2.0
    assert events.wait_count(2)
    assert events.names()[:2] == ["init", "init"]


def test_a_connection_without_init_is_a_failed_attempt(
    connect: Any, silent_server: Callable[..., SilentServer]
) -> None:
    server = silent_server(mute=True)  # accepts, never completes the handshake
    connection, _ = connect(server.port, settings=replace(FAST, open_timeout=0.2))
    with pytest.raises(ConnectionError, match="no answer from .* within 0.2s|no init"):
        connection.connect(1.0)
    assert server.accepted >= 2, "the attempt was retried"


# -- the outbox -----------------------------------------------------------------------------


def test_reports_made_while_the_orchestrator_is_down_arrive_once_in_order(
    orchestrator: LocalOrchestrator, connect: Any
) -> None:
    for n in range(20):  # the init after the restart lists them at the reports' ip: they are all sent
        orchestrator.add_model(host="10.0.0.1", port=5000 + n, model_id=f"m{n}")
    connection, _ = connect(orchestrator.port)
    connection.connect(WAIT)
    orchestrator.stop()
    for n in range(20):
        connection.report_failure(f"m{n}", "LOW_PERFORMANCE", f"reason {n}", "10.0.0.1")
    assert connection.pending == 20, "nothing can be sent while the orchestrator is down"
    orchestrator.start()
    assert orchestrator.wait_for_reports(20, WAIT)
    assert not orchestrator.wait_for_reports(21, QUIET), "nothing is sent twice"
    assert orchestrator.reports == [
        {"model_id": f"m{n}", "failure_code": "LOW_PERFORMANCE", "failure_reason": f"reason {n}", "ip": "10.0.0.1"}
        for n in range(20)
    ]
    assert connection.pending == 0


def test_a_report_while_connected_is_sent_at_once(orchestrator: LocalOrchestrator, connect: Any) -> None:
    connection, _ = connect(orchestrator.port)
    connection.connect(WAIT)
    connection.report_failure("m1", "BAD_IMPLEMENTATION", None, "10.0.0.9")
    assert orchestrator.wait_for_reports(1, WAIT)
    assert orchestrator.reports == [
        {"model_id": "m1", "failure_code": "BAD_IMPLEMENTATION", "failure_reason": None, "ip": "10.0.0.9"}
    ]


def test_close_sends_what_is_left_in_the_outbox(orchestrator: LocalOrchestrator, connect: Any) -> None:
    connection, _ = connect(orchestrator.port)
    connection.connect(WAIT)
    connection.report_failure("m1", "LOW_PERFORMANCE", "slow", "10.0.0.1")
    connection.close()
    assert orchestrator.wait_for_reports(1, WAIT)
    assert report_items(orchestrator) == [("m1", "LOW_PERFORMANCE")]


# -- bad input ------------------------------------------------------------------------------


def test_malformed_frames_are_logged_and_the_connection_goes_on(
    orchestrator: LocalOrchestrator, connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    connection, events = connect(orchestrator.port)
    connection.connect(WAIT)
    caplog.set_level(logging.WARNING, logger="mrclient.orchestrator.connection")
    bad = [
        "this is not json",
        "[1, 2, 3]",
        json.dumps({"event": "party", "data": []}),
        json.dumps({"event": "update", "data": {"model_id": "m1"}}),
        json.dumps({"error": "something is wrong"}),
        json.dumps({"data": []}),
    ]
    for text in bad:
        orchestrator.send_raw(text)
    orchestrator.send_raw(json.dumps({"event": "update", "data": []}))
    assert events.wait_count(2)
    assert events.names() == ["init", "update"], "only the well-formed frame reached the handler"
    messages = [r.getMessage() for r in caplog.records if r.name == "mrclient.orchestrator.connection"]
    expected = [
        "not JSON", "not a JSON object", "unknown event 'party'", "data is not a list", "says: something is wrong",
        "unknown event None",
    ]
    for fragment in expected:
        assert sum(fragment in m for m in messages) == 1, (fragment, messages)
    assert orchestrator.connections == 1 and connection.connected


def test_a_handler_that_raises_does_not_stop_the_thread(orchestrator: LocalOrchestrator) -> None:
    calls: list[str] = []
    seen = threading.Event()

    def handler(event: str, entries: list[Any]) -> None:
        calls.append(event)
        if len(calls) == 3:
            seen.set()
        raise RuntimeError("handler bug")

    with OrchestratorConnection(CRUNCH, "127.0.0.1", orchestrator.port, handler, FAST) as connection:
        connection.connect(WAIT)
        orchestrator.add_model(port=5555)
        orchestrator.add_model(port=5556)
        assert seen.wait(WAIT)
        assert calls == ["init", "update", "update"] and orchestrator.connections == 1


# -- closing --------------------------------------------------------------------------------


@pytest.mark.serial
def test_close_is_prompt_stops_the_thread_and_the_orchestrator_sees_a_normal_close(
    orchestrator: LocalOrchestrator, connect: Any
) -> None:
    connection, _ = connect(orchestrator.port)
    connection.connect(WAIT)
    started = time.monotonic()
    connection.close()
    assert time.monotonic() - started < 0.5
    assert not [t for t in threading.enumerate() if t.name.startswith("mrclient-orchestrator")]
    assert orchestrator.wait_for_clients(0, WAIT)
    assert orchestrator.client_close_codes == [1000]
    connection.close()  # idempotent


@pytest.mark.serial
def test_close_is_prompt_while_waiting_to_reconnect(connect: Any) -> None:
    slow = replace(FAST, reconnect_wait=OrchestratorSettings().reconnect_wait)  # production backoff
    connection, _ = connect(free_port(), settings=slow)
    connection.start()
    started = time.monotonic()
    connection.close()
    assert time.monotonic() - started < 0.5
    assert not [t for t in threading.enumerate() if t.name.startswith("mrclient-orchestrator")]


@pytest.mark.serial
def test_close_is_prompt_during_a_handshake_that_never_ends(
    connect: Any, silent_server: Callable[..., SilentServer]
) -> None:
    server = silent_server(mute=True)
    connection, _ = connect(server.port, settings=replace(FAST, open_timeout=30.0))
    connection.start()
    assert server.wait_accepted(1)
    started = time.monotonic()
    connection.close()
    assert time.monotonic() - started < 0.5
    assert not [t for t in threading.enumerate() if t.name.startswith("mrclient-orchestrator")]


# -- LocalOrchestrator itself -----------------------------------------------------------------


def test_a_connection_without_crunch_id_gets_one_error_object_and_is_closed(orchestrator: LocalOrchestrator) -> None:
    raw = websocket.create_connection(f"ws://127.0.0.1:{orchestrator.port}/", timeout=WAIT)
    try:
        assert "error" in json.loads(raw.recv())
        opcode, frame = raw.recv_data_frame()
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1008
    finally:
        raw.shutdown()  # type: ignore[no-untyped-call]


def test_restart_keeps_the_port_and_the_models(orchestrator: LocalOrchestrator) -> None:
    port = orchestrator.port
    model_id = orchestrator.add_model(port=5555)
    orchestrator.restart()
    assert orchestrator.port == port
    raw = websocket.create_connection(orchestrator.url, timeout=WAIT)
    try:
        init = json.loads(raw.recv())
    finally:
        raw.close()
    assert init == {"event": "init", "data": [orchestrator.model(model_id)]}


def test_a_report_stops_the_model_as_production_does(orchestrator: LocalOrchestrator) -> None:
    model_id = orchestrator.add_model(port=5555)
    raw = websocket.create_connection(orchestrator.url, timeout=WAIT)
    try:
        raw.recv()  # init
        raw.send(json.dumps({"event": "report_failure", "data": [
            {"model_id": model_id, "failure_code": "BAD_IMPLEMENTATION", "failure_reason": "x", "ip": "127.0.0.1"}]}))
        update = json.loads(raw.recv())
    finally:
        raw.close()
    assert update["event"] == "update" and update["data"][0]["state"] == "STOPPED"
    assert report_items(orchestrator) == [(model_id, "BAD_IMPLEMENTATION")]
    assert orchestrator.running_models == {}


def test_a_client_that_does_not_answer_pings_is_closed_with_1011() -> None:
    """The handlers ping by themselves (websockets 14 has no server keepalive): a silent client is dropped."""
    with LocalOrchestrator(crunch_id=CRUNCH, ping_interval=0.05, ping_timeout=0.1) as orch:
        raw = websocket.create_connection(orch.url, timeout=WAIT)
        try:
            assert orch.wait_for_clients(0, WAIT), "no pong: the orchestrator closed the connection"
            assert close_code(raw) == 1011
        finally:
            raw.shutdown()  # type: ignore[no-untyped-call]


# -- LocalOrchestrator as the real one: the Docker backend, close codes, reports ------------------


def close_code(raw: websocket.WebSocket) -> int | None:
    """Read frames, answering nothing, until the closing one; its code (None if the connection ended without one)."""
    while True:
        try:
            frame = raw.recv_frame()
        except (websocket.WebSocketConnectionClosedException, OSError):
            return None
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None


def frames(raw: websocket.WebSocket, count: int) -> list[dict[str, Any]]:
    return [json.loads(raw.recv()) for _ in range(count)]


def entries(received: list[dict[str, Any]]) -> list[tuple[str, str, str, Any, Any]]:
    """(event, deployment, state, ip, port) per frame of one entry."""
    rows = []
    for frame in received:
        [entry] = frame["data"]
        rows.append((frame["event"], entry["deployment_id"], entry["state"], entry["ip"], entry["port"]))
    return rows


def test_the_docker_backend_announces_string_ports_localhost_two_frame_stops_and_replacements() -> None:
    with LocalOrchestrator(crunch_id=CRUNCH, backend="docker") as orch:
        first = orch.add_model(port=32768)
        raw = websocket.create_connection(orch.url, timeout=WAIT)
        try:
            [init] = frames(raw, 1)
            assert init["event"] == "init" and [(e["ip"], e["port"]) for e in init["data"]] == [("localhost", "32768")]
            old = orch.model(first)["deployment_id"]
            new = orch.redeploy_model(first, port=32769)
            orch.stop_model(first)
            assert entries(frames(raw, 5)) == [
                ("update", new, "RUNNING", "localhost", "32769"),  # the replacement: RUNNING new, then
                ("update", old, "STOPPED", "localhost", "32768"),  # the old one stopped, in two frames
                ("update", old, "STOPPED", "", 0),
                ("update", new, "STOPPED", "localhost", "32769"),  # a normal stop: two frames
                ("update", new, "STOPPED", "", 0),
            ]
        finally:
            raw.close()


def test_the_plain_backend_keeps_integer_ports_and_one_stop_frame(orchestrator: LocalOrchestrator) -> None:
    model_id = orchestrator.add_model(port=5555)
    raw = websocket.create_connection(orchestrator.url, timeout=WAIT)
    try:
        frames(raw, 1)
        orchestrator.stop_model(model_id)
        orchestrator.add_model(port=5556)
        rows = entries(frames(raw, 2))
        assert [(state, ip, port) for _, _, state, ip, port in rows] == [
            ("STOPPED", "127.0.0.1", 5555), ("RUNNING", "127.0.0.1", 5556)
        ]
    finally:
        raw.close()


def test_an_unknown_crunch_gets_an_empty_init(orchestrator: LocalOrchestrator) -> None:
    orchestrator.add_model(port=5555)
    raw = websocket.create_connection(f"ws://127.0.0.1:{orchestrator.port}/no-such-crunch", timeout=WAIT)
    try:
        assert frames(raw, 1) == [{"event": "init", "data": []}]
    finally:
        raw.close()


def test_it_closes_with_1001_when_it_stops_and_sends_no_stopped_frames_first() -> None:
    with LocalOrchestrator(crunch_id=CRUNCH, backend="docker") as orch:
        orch.add_model(port=32768)
        raw = websocket.create_connection(orch.url, timeout=WAIT)
        try:
            frames(raw, 1)
            orch.stop()
            opcode, frame = raw.recv_data_frame(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE, f"a {opcode} frame came first"
            assert int.from_bytes(frame.data[:2], "big") == 1001
        finally:
            raw.shutdown()  # type: ignore[no-untyped-call]


REPORT = {"model_id": "m1", "failure_code": "MULTIPLE_FAILED", "failure_reason": None, "ip": "127.0.0.1"}
CHOKES = {
    "invalid-json": "{not json",
    "no-data": json.dumps({"event": "report_failure"}),
    "no-ip": json.dumps({"event": "report_failure", "data": [{k: v for k, v in REPORT.items() if k != "ip"}]}),
    "a-number": "5",
    "data-not-a-list": json.dumps({"event": "report_failure", "data": REPORT}),
}


@pytest.mark.parametrize("message", list(CHOKES.values()), ids=list(CHOKES))
def test_it_closes_with_1011_on_what_the_real_one_chokes_on(orchestrator: LocalOrchestrator, message: str) -> None:
    raw = websocket.create_connection(orchestrator.url, timeout=WAIT)
    try:
        frames(raw, 1)
        raw.send(message)
        assert close_code(raw) == 1011
    finally:
        raw.shutdown()  # type: ignore[no-untyped-call]
    assert len(orchestrator.unhandled_messages) == 1 and orchestrator.reports == []


def test_messages_it_does_not_know_are_ignored_and_the_connection_goes_on(orchestrator: LocalOrchestrator) -> None:
    raw = websocket.create_connection(orchestrator.url, timeout=WAIT)
    try:
        frames(raw, 1)
        for message in ("[1, 2]", json.dumps({"event": "hello", "data": []})):
            raw.send(message)
        orchestrator.add_model(port=5555)
        assert frames(raw, 1)[0]["event"] == "update", "still connected"
    finally:
        raw.close()
    assert orchestrator.unhandled_messages == []


def test_a_report_is_acted_on_only_at_the_announced_ip_and_the_others_are_recorded() -> None:
    with LocalOrchestrator(crunch_id=CRUNCH, backend="docker") as orch:
        model_id = orch.add_model(port=32768)
        raw = websocket.create_connection(orch.url, timeout=WAIT)
        try:
            frames(raw, 1)
            for ip in ("127.0.0.1", "localhost"):
                raw.send(json.dumps({"event": "report_failure", "data": [{**REPORT, "model_id": model_id, "ip": ip}]}))
            assert [e[2:] for e in entries(frames(raw, 2))] == [("STOPPED", "localhost", "32768"), ("STOPPED", "", 0)]
        finally:
            raw.close()
        assert [r["ip"] for r in orch.reports] == ["127.0.0.1", "localhost"], "both received"
        [(ignored, why)] = orch.ignored_reports
        assert ignored["ip"] == "127.0.0.1" and why == f"no model {model_id!r} at ip '127.0.0.1' (announced at 'localhost')"


def test_with_report_cycles_a_report_it_cannot_place_drops_the_rest_of_its_cycle() -> None:
    with LocalOrchestrator(crunch_id=CRUNCH, report_cycle=0.2) as orch:
        first, second = orch.add_model(port=5555), orch.add_model(port=5556)
        raw = websocket.create_connection(orch.url, timeout=WAIT)
        try:
            frames(raw, 1)
            raw.send(json.dumps({"event": "report_failure", "data": [
                {**REPORT, "model_id": "gone"}, {**REPORT, "model_id": first}]}))
            assert orch.wait_for_ignored_reports(2, WAIT)
            assert [(r["model_id"], why.split(" ")[0]) for r, why in orch.ignored_reports] == [
                ("gone", "no"), (first, "dropped:")]
            raw.send(json.dumps({"event": "report_failure", "data": [{**REPORT, "model_id": second}]}))
            assert entries(frames(raw, 1))[0][2] == "STOPPED", "the next cycle acts on a report it can place"
        finally:
            raw.close()
        assert set(orch.running_models) == {first}
