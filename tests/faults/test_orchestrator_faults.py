"""Faults on the orchestrator's side: hostile frames, floods, drops, restarts, a thread that dies.

Each test names the fault, the bound the client must keep and the outcome it
must reach; the outcome is asserted, so a change in behaviour fails the test.
docs/reliability.rst lists them.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from _fault_kit import (
    FaultyProxy,
    InstantConcurrentRunner,
    InstantRunner,
    Progress,
    Resources,
    faulty_proxy,
    instant_runner_factory,
    settle_threads,
)

from _orchestrator_fixtures import CRUNCH, FAST, QUIET, WAIT, ClusterKit, Recorder, kit, node, orchestrator
from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult
from mrclient.orchestrator.connection import OrchestratorConnection
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

__all__ = ["faulty_proxy", "kit", "node", "orchestrator"]  # fixtures used here

SUCCESS = ModelPredictResult.Status.SUCCESS


def joined_model(recorder: Recorder, model_id: str) -> bool:
    return recorder.wait_for(lambda events: any(k == "joined" and r.model_id == model_id for k, r in events))


# -- frames that used to kill the thread or the connection ------------------------------------------


HOSTILE_FRAMES: dict[str, tuple[str | bytes, bool, str]] = {
    # name: (payload, sent as a text frame, what the log says)
    "nested-json-1000-levels": ("[" * 1000 + "]" * 1000, True, "nested too deeply"),
    "invalid-utf8": (b'{"event": "update", "data": ["\xff\xfe"]}', True, "not UTF-8"),
    "binary": (b"\x00\x01binary frame\xff", False, "binary frame"),
    "object-nested-5000-levels": ('{"a":' * 5000 + "1" + "}" * 5000, True, "nested too deeply"),
    "not-json": ("<html>502 Bad Gateway</html>", True, "not JSON"),
}


@pytest.mark.parametrize("name", list(HOSTILE_FRAMES))
def test_a_hostile_frame_is_skipped_and_the_connection_goes_on(
    name: str, orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: one frame no parser accepts (issue 11, fault 1: a 2 KB frame nested 1,000 levels
    used to kill the thread for good; invalid UTF-8 used to drop the connection).
    Bound: the next update is applied within 10 s. Outcome: the frame is logged with its first
    bytes and skipped; same connection, the table keeps following, a report still arrives."""
    payload, as_text, logged = HOSTILE_FRAMES[name]
    recorder = Recorder()
    cluster = kit.cluster(recorder=recorder)
    cluster.start(WAIT)
    caplog.set_level(logging.WARNING, logger="mrclient.orchestrator.connection")

    orchestrator.send_raw(payload, text=as_text)
    model_id = orchestrator.add_model(port=node.port)

    assert joined_model(recorder, model_id), "the update after the hostile frame was applied"
    (runner,) = cluster.models
    cluster.report_failure(runner, "LOW_PERFORMANCE", "after the hostile frame")
    assert orchestrator.wait_for_reports(1, WAIT)
    assert orchestrator.connections == 1 and cluster.connected and cluster.sync_failure is None
    skipped = [r.getMessage() for r in caplog.records if logged in r.getMessage()]
    assert len(skipped) == 1, [r.getMessage() for r in caplog.records]
    first_bytes = payload[:20] if isinstance(payload, bytes) else payload[:20].encode()
    assert repr(first_bytes)[2:-1] in skipped[0], "the log shows the frame's first bytes"


def test_an_error_in_the_loop_itself_reconnects_through_the_policy(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: a bug raises in the connection loop (injected: reading a frame raises once).
    Bound: reconnected within 10 s. Outcome: the connection ends, the reconnect policy brings a
    new one with its init, the thread lives on and the table follows updates again."""
    recorder = Recorder()
    cluster = kit.cluster(recorder=recorder)
    cluster.start(WAIT)
    original = OrchestratorConnection._receive
    failures: list[int] = []

    def receive_with_a_bug(self: OrchestratorConnection, ws: Any) -> Any:
        if not failures:
            failures.append(1)
            raise KeyError("a bug in the loop")
        return original(self, ws)

    monkeypatch.setattr(OrchestratorConnection, "_receive", receive_with_a_bug)
    orchestrator.send_raw(json.dumps({"event": "update", "data": []}))  # something to read

    assert orchestrator.wait_for_connections(2, WAIT), "the connection ended and was made again"
    model_id = orchestrator.add_model(port=node.port)
    assert joined_model(recorder, model_id)
    assert failures == [1] and cluster.connected and cluster.sync_failure is None


class Doomed(BaseException):
    """What no ``except Exception`` catches: stands for SystemExit and the like."""


def test_a_thread_that_dies_anyway_says_so_and_the_next_call_logs_it_once(
    orchestrator: LocalOrchestrator, node: LocalModelNode, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: a BaseException ends the orchestrator thread (the last resort: only close() should).
    Bound: seen at the next call(). Outcome: ``connected`` is False, ``model_cluster.sync_failure``
    says why, the next call() logs one ERROR (not one per call) and still answers from the table
    it has."""
    first = orchestrator.add_model(port=node.port)

    class FatalFactoryRunner(DynamicSubclassModelConcurrentRunner):
        def create_model_runner(self, **kwargs: Any) -> Any:
            if kwargs["model_name"] == "fatal":
                raise Doomed("the runner factory ended the thread")
            return super().create_model_runner(**kwargs)

    runner = FatalFactoryRunner(
        timeout=5.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port, base_classname=BASE_CLASSNAME,
        retry_backoff_factor=0.01, orchestrator_settings=FAST,
    )
    try:
        runner.init(WAIT)
        assert runner.connected
        orchestrator.add_model(port=node.port, name="fatal")
        assert orchestrator.wait_for_clients(0, WAIT), "the thread died and its socket closed"
        settle_threads("mrclient-orchestrator")  # it ended
        assert not runner.connected
        assert runner.model_cluster.sync_failure == "Doomed: the runner factory ended the thread"

        caplog.set_level(logging.ERROR, logger="mrclient.concurrent.base")
        for _ in range(3):
            results = runner.call("predict")
            assert [(r.model_id, res.status) for r, res in results.items()] == [(first, SUCCESS)]
        frozen = [r for r in caplog.records if r.name == "mrclient.concurrent.base" and "no longer updated" in r.getMessage()]
        assert len(frozen) == 1 and "Doomed" in frozen[0].getMessage()
    finally:
        runner.close()


# -- floods ------------------------------------------------------------------------------------------


@pytest.mark.serial
def test_an_init_of_5000_models(orchestrator: LocalOrchestrator) -> None:
    """Fault: the orchestrator announces 5,000 models at once (a 1.3 MB init frame).
    Bound: init() returns within 60 s on a 2-core machine; a round over every model within its
    10 s deadline. Outcome: all 5,000 ready and answering, and the connection never dropped (its
    pings were answered while the frame was applied).
    Runners are InstantRunner: 5,000 real nodes cannot run in CI; the frame, the table, the setup
    pool and the call pool are the real ones."""
    for n in range(5000):
        orchestrator.add_model(host="10.0.0.1", port=20000 + n)
    with InstantConcurrentRunner(
        timeout=10.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port, base_classname="instant.Base",
        orchestrator_settings=FAST,
    ) as runner:
        started = time.monotonic()
        runner.init(60.0)
        assert time.monotonic() - started < 60.0
        assert len(runner.models) == 5000
        started = time.monotonic()
        results = runner.call("predict")
        assert time.monotonic() - started < 10.0 + 0.5
        assert {res.status for res in results.values()} == {SUCCESS}
        assert sorted(res.result for res in results.values()) == sorted(orchestrator.running_models)
    assert orchestrator.connections == 1, "the big frame cost no connection"


def test_a_reconnect_with_5000_models_keeps_every_runner(
    orchestrator: LocalOrchestrator, kit: ClusterKit
) -> None:
    """Fault: the connection drops under a 5,000-model table. Bound: the new init applied within
    30 s. Outcome: no runner replaced, none closed, no setup redone."""
    for n in range(5000):
        orchestrator.add_model(host="10.0.0.1", port=20000 + n)
    made: list[InstantRunner] = []
    recorder = Recorder()
    cluster = kit.cluster(factory=instant_runner_factory(made), recorder=recorder)
    cluster.start(60.0)
    before = set(cluster.models)
    orchestrator.drop_connections()
    assert orchestrator.wait_for_connections(2, 30.0)
    fence = orchestrator.add_model(host="10.0.0.2", port=1)  # applied after the second init
    assert recorder.wait_for(lambda events: any(r.model_id == fence for _, r in events), timeout=30.0)
    assert set(cluster.models) - before == {r for r in cluster.models if r.model_id == fence}
    assert len(made) == 5001 and not any(r.closed for r in before)


def test_a_burst_of_10000_updates(orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit) -> None:
    """Fault: 10,000 update frames back to back (infos changes, stops, recoveries, redeploys over
    100 models). Bound: the table matches the orchestrator within 60 s of the last frame, and a
    report made mid-burst arrives. Outcome: the table is exactly the orchestrator's running set,
    one connection throughout, and no thread left over once the burst is absorbed."""
    ids = [orchestrator.add_model(host="10.0.0.1", port=20000 + n) for n in range(100)]
    recorder = Recorder()
    made: list[InstantRunner] = []
    cluster = kit.cluster(factory=instant_runner_factory(made), recorder=recorder)
    cluster.start(WAIT)
    settle_threads("mrclient-setup")
    baseline = Resources.now()
    rng = random.Random(11)
    reported = False
    for n in range(10_000):
        model_id = rng.choice(ids)
        op = rng.random()
        if op < 0.7:
            orchestrator.set_infos(model_id, {"cruncher_name": f"name-{n}"})
        elif op < 0.8:
            orchestrator.stop_model(model_id)
        elif op < 0.9:
            orchestrator.recover_model(model_id, port=rng.choice([20000, 20001]))  # 2 frames
        else:
            orchestrator.redeploy_model(model_id, stop_old=True)  # 2 frames
        if n >= 5000 and not reported:
            live = [r for r in cluster.models if r.model_id == model_id]
            if live:
                cluster.report_failure(live[0], "LOW_PERFORMANCE", "mid-burst")
                reported = True
    fence = orchestrator.add_model(port=node.port, name="fence")
    assert recorder.wait_for(lambda events: any(r.model_id == fence for _, r in events), timeout=60.0)

    def table() -> dict[str, tuple[str, str, int, str]]:
        return {r.model_id: (r.deployment_id, r.ip, r.port, r.infos["cruncher_name"]) for r in cluster.models}

    expected = {
        model_id: (e["deployment_id"], e["ip"], e["port"], e["infos"]["cruncher_name"])
        for model_id, e in orchestrator.running_models.items()
    }
    # every frame is applied once the fence joined; runners they started may still be joining
    assert recorder.wait_for(lambda _: table() == expected, timeout=60.0), (table(), expected)
    assert orchestrator.connections == 1
    if reported:
        assert orchestrator.wait_for_reports(1, WAIT)
        assert [r["failure_reason"] for r in orchestrator.reports] == ["mid-burst"]
    assert len(made) > 1000, f"the burst really churned: {len(made)} runners"
    settle_threads("mrclient-setup")  # setup threads leave once a burst is absorbed (BurstPool)
    assert Resources.now().threads <= baseline.threads + 1, "at most the listener thread was added"


# -- drops and restarts ------------------------------------------------------------------------------


@pytest.fixture
def connection(orchestrator: LocalOrchestrator) -> Iterator[OrchestratorConnection]:
    made = OrchestratorConnection(CRUNCH, "127.0.0.1", orchestrator.port, lambda event, entries: None, FAST)
    try:
        yield made
    finally:
        made.close()


@pytest.mark.serial  # it counts the reconnects a 0-20 ms drop schedule allows: a loaded machine makes fewer
def test_every_report_arrives_through_drops_every_0_to_20_ms(
    orchestrator: LocalOrchestrator, connection: OrchestratorConnection, record_property: Callable[[str, object], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault: the orchestrator cuts the TCP connection every 0-20 ms (no closing handshake) while
    500 reports are made (issue 11, fault 2: 35 of 500 used to be lost). Bound: all arrive within
    30 s of the last drop. Outcome: every report at least once, first arrivals in the order made;
    the duplicates are counted and shown (docs/reliability.rst records them)."""
    for n in range(500):  # listed at the reports' ip, so a report not yet delivered is sent again
        orchestrator.add_model(host="10.0.0.1", port=5000, model_id=f"model-{n}")
    connection.connect(WAIT)
    rng = random.Random(500)
    reported, stop = threading.Event(), threading.Event()
    drops = 0

    def drop() -> None:  # until every report is made, and at least 50 times
        nonlocal drops
        while not stop.is_set() and not (reported.is_set() and drops >= 50):
            orchestrator.drop_connections()
            drops += 1
            stop.wait(rng.uniform(0.0, 0.020))

    dropper = threading.Thread(target=drop, name="dropper")
    dropper.start()
    try:
        pause = threading.Event()  # never set: a bounded pause between reports, as rounds make them
        for n in range(500):
            connection.report_failure(f"model-{n}", "MULTIPLE_FAILED", f"report {n}", "10.0.0.1")
            pause.wait(rng.uniform(0.0, 0.002))
        reported.set()
        dropper.join(30.0)
    finally:
        stop.set()
        dropper.join(WAIT)

    deadline = time.monotonic() + 30.0
    while len({r["model_id"] for r in orchestrator.reports}) < 500 and time.monotonic() < deadline:
        orchestrator.wait_for_reports(len(orchestrator.reports) + 1, max(0.0, deadline - time.monotonic()))
    reports = orchestrator.reports
    arrived = {r["model_id"] for r in reports}
    missing = sorted({f"model-{n}" for n in range(500)} - arrived)
    first_seen = list(dict.fromkeys(r["model_id"] for r in reports))
    duplicates = len(reports) - len(arrived)
    record_property("figures", f"[reports through drops] made 500, arrived {len(arrived)}, duplicates {duplicates}, "
                               f"drops {drops}, connections {orchestrator.connections}")
    assert missing == [], f"{len(missing)} reports never arrived: {missing[:10]}"
    assert first_seen == [f"model-{n}" for n in range(500)], "first arrivals in the order the reports were made"
    assert orchestrator.connections >= 20, "the connection really was cut, again and again"
    caplog.set_level(logging.ERROR, logger="mrclient.orchestrator.connection")
    connection.close()
    assert not [r for r in caplog.records if "may not have received" in r.getMessage()]


def test_reports_written_into_a_dead_path_are_sent_again(
    orchestrator: LocalOrchestrator, faulty_proxy: Callable[[int], FaultyProxy]
) -> None:
    """Fault: the path to the orchestrator silently loses every byte (a black hole: the client's
    writes succeed) while 20 reports are made, then the connection is cut (issue 11, fault 2 made
    certain: a report used to leave the outbox once written, so all 20 were lost). Bound: all
    arrive within 10 s of the cut. Outcome: all 20, in order, once each (none had arrived)."""
    for n in range(20):  # listed at the reports' ip, so the reports are sent again after the cut
        orchestrator.add_model(host="10.0.0.1", port=5000, model_id=f"model-{n}")
    proxy = faulty_proxy(orchestrator.port)
    patient = replace(FAST, ping_interval=None, ping_timeout=WAIT)  # it must not give up before the cut
    with OrchestratorConnection(CRUNCH, "127.0.0.1", proxy.port, lambda event, entries: None, patient) as connection:
        connection.connect(WAIT)
        proxy.swallow()
        frames = 0
        for n in range(20):
            connection.report_failure(f"model-{n}", "BAD_IMPLEMENTATION", f"report {n}", "10.0.0.1")
            item = {"model_id": f"model-{n}", "failure_code": "BAD_IMPLEMENTATION",
                    "failure_reason": f"report {n}", "ip": "10.0.0.1"}
            frames += len(json.dumps({"event": "report_failure", "data": [item]})) + 8  # + masked frame header
        assert proxy.wait_swallowed(frames), "the client wrote the 20 reports into the black hole"
        assert orchestrator.reports == []
        proxy.cut()  # still swallowing: nothing of the old connection gets through
        proxy.heal()
        assert orchestrator.wait_for_reports(20, WAIT)
        assert not orchestrator.wait_for_reports(21, QUIET)
        assert [r["model_id"] for r in orchestrator.reports] == [f"model-{n}" for n in range(20)]
        assert orchestrator.connections == 2


def _report_into_a_dead_path(
    orchestrator: LocalOrchestrator, proxy: FaultyProxy, connection: OrchestratorConnection, model_ids: list[str]
) -> None:
    """Make one report per model while the path swallows every byte: each stays unconfirmed."""
    proxy.swallow()
    size = 0
    for model_id in model_ids:
        connection.report_failure(model_id, "MULTIPLE_FAILED", "broken", "10.0.0.1")
        item = {"model_id": model_id, "failure_code": "MULTIPLE_FAILED", "failure_reason": "broken", "ip": "10.0.0.1"}
        size += len(json.dumps({"event": "report_failure", "data": [item]})) + 8
    assert proxy.wait_swallowed(size), "the client wrote the reports into the black hole"
    assert connection.pending == len(model_ids) and orchestrator.reports == [], "none is known delivered"


def test_a_report_unconfirmed_at_a_drop_is_sent_again_once_the_new_init_lists_its_model(
    orchestrator: LocalOrchestrator, faulty_proxy: Callable[[int], FaultyProxy]
) -> None:
    """Fault: a report is lost on the way, then the connection is cut. Bound: it arrives within 10 s
    of the cut, and not before the new connection's init was applied. Outcome: the model, still
    listed at the report's ip, gets its report (once) and is stopped."""
    model_id = orchestrator.add_model(host="10.0.0.1", port=5000)
    proxy = faulty_proxy(orchestrator.port)
    inits = 0
    init_applied, let_init_finish = threading.Event(), threading.Event()

    def handler(event: str, entries: list[Any]) -> None:
        nonlocal inits
        if event == "init":
            inits += 1
            if inits == 2:  # the reconnect's init: hold it, to see that nothing goes out meanwhile
                init_applied.set()
                let_init_finish.wait(WAIT)

    patient = replace(FAST, ping_interval=None, ping_timeout=WAIT)
    with OrchestratorConnection(CRUNCH, "127.0.0.1", proxy.port, handler, patient) as connection:
        connection.connect(WAIT)
        _report_into_a_dead_path(orchestrator, proxy, connection, [model_id])
        proxy.cut()
        proxy.heal()
        assert init_applied.wait(WAIT)
        assert not orchestrator.wait_for_reports(1, QUIET), "nothing is re-sent before the new init is applied"
        let_init_finish.set()
        assert orchestrator.wait_for_reports(1, WAIT)
        assert not orchestrator.wait_for_reports(2, QUIET)
        assert [(r["model_id"], r["ip"]) for r in orchestrator.reports] == [(model_id, "10.0.0.1")]
        assert orchestrator.ignored_reports == [] and orchestrator.running_models == {}


def test_a_report_unconfirmed_at_a_drop_is_dropped_when_the_new_init_no_longer_lists_its_model(
    orchestrator: LocalOrchestrator, faulty_proxy: Callable[[int], FaultyProxy], caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: reports are lost on the way; meanwhile one model stops and another moves; then the
    connection is cut. Bound: 10 s. Outcome: only the report of the model still listed at its ip is
    sent again (the orchestrator would drop its whole cycle on the others); each one dropped is
    logged at INFO, and nothing is left to be named as lost at close."""
    stopped, moved, kept = (orchestrator.add_model(host="10.0.0.1", port=5000 + n) for n in range(3))
    proxy = faulty_proxy(orchestrator.port)
    patient = replace(FAST, ping_interval=None, ping_timeout=WAIT)
    caplog.set_level(logging.INFO, logger="mrclient.orchestrator.connection")
    with OrchestratorConnection(CRUNCH, "127.0.0.1", proxy.port, lambda event, entries: None, patient) as connection:
        connection.connect(WAIT)
        _report_into_a_dead_path(orchestrator, proxy, connection, [stopped, moved, kept])
        orchestrator.stop_model(stopped)
        orchestrator.move_model(moved, host="10.0.0.2")
        proxy.cut()
        proxy.heal()
        assert orchestrator.wait_for_reports(1, WAIT)
        assert not orchestrator.wait_for_reports(2, QUIET)
        assert [r["model_id"] for r in orchestrator.reports] == [kept]
        assert orchestrator.ignored_reports == [], "nothing the orchestrator could not place was sent"
        assert connection.pending == 0
    dropped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not sending again")]
    assert [r.levelno for r in caplog.records if r.getMessage().startswith("not sending again")] == [logging.INFO] * 2
    assert f"model {stopped} at 10.0.0.1" in dropped[0] and "does not list" in dropped[0]
    assert f"model {moved} at 10.0.0.1" in dropped[1] and "at '10.0.0.2', not at '10.0.0.1'" in dropped[1]
    assert not [r for r in caplog.records if "may not have received" in r.getMessage()]


@pytest.mark.serial
def test_the_orchestrator_killed_and_restarted_during_rounds(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode]
) -> None:
    """Fault: the orchestrator dies (connections cut without a closing handshake, then it is gone)
    while rounds run; models change while it is down; it comes back on the same port.
    Bound: every round returns within its 2 s deadline (+0.5 s); the table converges within 10 s of
    the restart. Outcome: rounds go on with the table they had while it is down; after the restart
    the stopped model is gone, the new one answers, and nobody was reported."""
    nodes = [local_node(classes=[TrackerBase, EwmaTracker]) for _ in range(4)]
    ids = [orchestrator.add_model(port=n.port, name=f"m{i}") for i, n in enumerate(nodes[:3])]
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=2.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port, base_classname=BASE_CLASSNAME,
        retry_backoff_factor=0.01, orchestrator_settings=replace(FAST, ping_interval=0.2, ping_timeout=0.2),
    )
    recorder = Recorder()
    runner.on_model_joined(recorder.joined)
    runner.on_model_left(recorder.left)
    rounds: list[tuple[float, bool, dict[str, ModelPredictResult.Status]]] = []
    progress, disconnected = Progress(), Progress()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run_rounds() -> None:
        try:
            while not stop.is_set():
                started = time.monotonic()
                results = runner.call("predict")
                connected = runner.connected
                rounds.append((time.monotonic() - started, connected,
                               {r.model_id: res.status for r, res in results.items()}))
                progress.advance()
                if not connected:
                    disconnected.advance()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    try:
        runner.init(WAIT)
        assert runner.wait_for_models(3, WAIT)
        caller = threading.Thread(target=run_rounds, name="coordinator")
        caller.start()
        orchestrator.drop_connections()
        orchestrator.stop()
        orchestrator.stop_model(ids[0])  # while it is down: no client hears of it
        added = orchestrator.add_model(port=nodes[3].port, name="m3")
        assert disconnected.wait_for(10), "rounds go on while the orchestrator is down"
        orchestrator.start()
        assert recorder.wait_for(
            lambda events: ("joined", added) in [(k, r.model_id) for k, r in events]
            and ("left", ids[0]) in [(k, r.model_id) for k, r in events]
        ), "the table converged after the restart"
        assert progress.wait_for(len(rounds) + 5)
    finally:
        stop.set()
        caller.join(WAIT)
        runner.close()
    assert errors == []
    assert max(duration for duration, _, _ in rounds) < 2.0 + 0.5
    while_down = [statuses for _, connected, statuses in rounds if not connected]
    assert len(while_down) >= 10
    assert all(statuses == {i: SUCCESS for i in ids} for statuses in while_down[:10]), "the table was kept"
    assert rounds[-1][2] == {ids[1]: SUCCESS, ids[2]: SUCCESS, added: SUCCESS}
    assert orchestrator.reports == []


def test_close_sends_the_outbox_and_waits_for_its_proof(orchestrator: LocalOrchestrator,
                                                         connection: OrchestratorConnection) -> None:
    """Fault: close() right after reports are made. Bound: close_timeout. Outcome: they arrive,
    once each, and none is logged as possibly lost."""
    connection.connect(WAIT)
    for n in range(50):
        connection.report_failure(f"model-{n}", "LOW_PERFORMANCE", None, "10.0.0.1")
    connection.close()
    assert orchestrator.wait_for_reports(50, WAIT)
    assert [r["model_id"] for r in orchestrator.reports] == [f"model-{n}" for n in range(50)]
    assert connection.pending == 0


def test_a_report_made_after_close_is_logged_as_an_error(
    connection: OrchestratorConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: a report made once the connection is closed. Outcome: never dropped silently."""
    connection.connect(WAIT)
    connection.close()
    caplog.set_level(logging.ERROR, logger="mrclient.orchestrator.connection")
    connection.report_failure("late", "LOW_PERFORMANCE", None, "10.0.0.1")
    assert any("not sending" in r.getMessage() and "late" in r.getMessage() for r in caplog.records)


def test_reports_made_while_the_orchestrator_is_unreachable_are_named_at_close(
    orchestrator: LocalOrchestrator, connection: OrchestratorConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: close() while the orchestrator is down and reports wait. Outcome: each is logged as
    an ERROR naming the model (a coordinator can resend it), none dropped silently."""
    connection.connect(WAIT)
    orchestrator.stop()
    for n in range(3):
        connection.report_failure(f"model-{n}", "MULTIPLE_FAILED", None, "10.0.0.1")
    caplog.set_level(logging.ERROR, logger="mrclient.orchestrator.connection")
    connection.close()
    named = [r.getMessage() for r in caplog.records if "may not have received" in r.getMessage()]
    assert [json.loads(m.split("received: ", 1)[1])["data"][0]["model_id"] for m in named] == [
        "model-0", "model-1", "model-2"
    ]

