"""ModelCluster against a LocalOrchestrator and real LocalModelNodes on loopback.

Frames are applied in order on one thread, so a "barrier" model added last and
seen joining proves every earlier frame has been applied.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _orchestrator_fixtures import (
    CRUNCH,
    FAST,
    QUIET,
    WAIT,
    ClusterKit,
    Recorder,
    kit,
    node,
    orchestrator,
)
from conftest import client_threads_since, free_port
from mrclient.cluster.table import ModelCluster
from mrclient.errors import InvalidCoordinatorUsageError
from mrclient.runners import ModelRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import EwmaTracker, TrackerBase

__all__ = ["kit", "node", "orchestrator"]  # fixtures used here


class GatedTracker(EwmaTracker):
    """Its constructor waits for the test's go-ahead: a setup that is still running."""

    entered = threading.Event()
    release = threading.Event()

    def __init__(self) -> None:
        type(self).entered.set()
        type(self).release.wait(WAIT)
        super().__init__()


class FailingTracker(TrackerBase):
    """Its constructor raises: the node answers SETUP_FAILED."""

    def __init__(self) -> None:
        raise RuntimeError("cannot start")


class Unrelated:
    """Not a TrackerBase: a node with only this has no implementation (BAD_IMPLEMENTATION)."""


@pytest.fixture
def gated_node(local_node: Callable[..., LocalModelNode]) -> Iterator[LocalModelNode]:
    """A node whose Setup blocks until the test ends (or ``GatedTracker.release`` is set)."""
    GatedTracker.entered, GatedTracker.release = threading.Event(), threading.Event()
    started = local_node(classes=[TrackerBase, GatedTracker])
    yield started
    GatedTracker.release.set()  # before the node stops: this fixture is torn down first


def table(cluster: ModelCluster) -> dict[str, tuple[str, str, int]]:
    return {r.model_id: (r.deployment_id, r.ip, r.port) for r in cluster.models}


def implied(orch: LocalOrchestrator) -> dict[str, tuple[str, str, int]]:
    return {mid: (e["deployment_id"], e["ip"], e["port"]) for mid, e in orch.running_models.items()}


def has_event(recorder: Recorder, kind: str, model_id: str, deployment_id: str | None = None) -> bool:
    return recorder.wait_for(
        lambda events: any(k == kind and r.model_id == model_id and deployment_id in (None, r.deployment_id)
                           for k, r in events)
    )


def barrier(orch: LocalOrchestrator, at: LocalModelNode, recorder: Recorder) -> str:
    """Add a model and wait until it joined: every frame sent before it has been applied."""
    model_id = orch.add_model(port=at.port, name="barrier")
    assert has_event(recorder, "joined", model_id), "the barrier model never joined"
    return model_id


def started(kit: ClusterKit, recorder: Recorder | None = None, **options: Any) -> ModelCluster:
    cluster = kit.cluster(recorder=recorder, **options)
    cluster.start(WAIT)
    return cluster


def one_model(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit
) -> tuple[str, Recorder, ModelCluster]:
    """A model announced on ``node``, and a started cluster whose joins and leaves the recorder keeps."""
    model_id = orchestrator.add_model(port=node.port)
    recorder = Recorder()
    return model_id, recorder, started(kit, recorder)


def assert_closed(runner: ModelRunner) -> None:
    assert runner.closed and runner.channel is None and runner.health_channel is None, runner


# -- starting ---------------------------------------------------------------------------------


def test_start_returns_with_the_initial_models_set_up(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                                     kit: ClusterKit) -> None:
    first, second = orchestrator.add_model(port=node.port), orchestrator.add_model(port=node.port, name="two")
    recorder = Recorder()
    cluster = started(kit, recorder)
    assert table(cluster) == implied(orchestrator) and set(table(cluster)) == {first, second}
    names = {orchestrator.model(first)["infos"]["model_name"], "two"}
    assert {r.model_name for r in cluster.models} == names
    assert cluster.connected and cluster.wait_for_models(2, 0)
    assert recorder.wait_count(2) and {k for k, _ in recorder.events} == {"joined"}


def test_start_raises_a_connection_error_naming_the_url_and_cleans_up(kit: ClusterKit) -> None:
    port = free_port()
    cluster = ModelCluster(CRUNCH, "127.0.0.1", port, kit.factory(), settings=FAST)
    for _ in range(2):  # a failed start is undone: the next one tries again
        with pytest.raises(ConnectionError, match=f"ws://127.0.0.1:{port}/{CRUNCH}"):
            cluster.start(0.3)
        assert not [t for t in threading.enumerate() if t.name.startswith("mrclient-")]
    cluster.close()
    with pytest.raises(RuntimeError, match="closed"):
        cluster.start(0.3)


def test_start_raises_the_coordinators_mistake_and_reports_nothing(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator.add_model(port=node.port)
    made = kit.factory()

    def rejected(**identity: Any) -> ModelRunner:
        runner = made(**identity)
        runner.base_classname = "  "  # the node answers INVALID_ARGUMENT (the constructor refuses it: set after)
        return runner

    cluster = kit.cluster(factory=rejected)
    with pytest.raises(InvalidCoordinatorUsageError, match="rejected"):
        cluster.start(WAIT)
    assert [r for r in caplog.records if r.name == "mrclient.cluster.table" and r.levelno == logging.ERROR]
    assert cluster.models == [] and not orchestrator.wait_for_reports(1, QUIET)
    assert orchestrator.wait_for_clients(0, WAIT), "a failed start closes the cluster"


@pytest.mark.serial
def test_start_waits_for_setups_only_until_its_timeout(orchestrator: LocalOrchestrator, gated_node: LocalModelNode,
                                                      kit: ClusterKit) -> None:
    model_id = orchestrator.add_model(port=gated_node.port)
    cluster = kit.cluster()
    began = time.monotonic()
    cluster.start(0.5)
    assert 0.4 < time.monotonic() - began < 2.0
    assert cluster.models == [] and GatedTracker.entered.is_set()
    GatedTracker.release.set()
    assert cluster.wait_for_models(1, WAIT), "the slow model joins later"
    assert [r.model_id for r in cluster.models] == [model_id]


# -- every rule of the event table ------------------------------------------------------------


def test_a_new_model_joins(orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit) -> None:
    recorder = Recorder()
    cluster = started(kit, recorder)
    model_id = orchestrator.add_model(port=node.port)
    assert cluster.wait_for_models(1, WAIT)
    assert table(cluster) == implied(orchestrator)
    deployment = orchestrator.model(model_id)["deployment_id"]
    assert recorder.wait_count(1) and recorder.summary() == [("joined", model_id, deployment)]


def test_same_address_keeps_the_runner_and_refreshes_its_infos(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                                             kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (runner,) = cluster.models
    orchestrator.set_infos(model_id, {"model_name": "renamed", "cruncher_name": "Ada", "new_key": [1]})
    barrier(orchestrator, node, recorder)
    assert model_id in table(cluster) and [r for r in cluster.models if r.model_id == model_id] == [runner]
    assert runner.model_name == "renamed"
    assert runner.infos["cruncher_name"] == "Ada" and runner.infos["new_key"] == [1]
    assert not runner.closed
    assert [k for k, r in recorder.events if r is runner] == ["joined"], "no leave, no second join"


def test_a_moved_model_is_replaced(orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
                                   kit: ClusterKit) -> None:
    first, second = (local_node(classes=[TrackerBase, EwmaTracker]) for _ in range(2))
    model_id = orchestrator.add_model(port=first.port)
    recorder = Recorder()
    cluster = started(kit, recorder)
    (old,) = cluster.models
    orchestrator.move_model(model_id, port=second.port)
    assert recorder.wait_count(3)
    (new,) = cluster.models
    assert [(k, r) for k, r in recorder.events] == [("joined", old), ("left", old), ("joined", new)]
    assert (new.deployment_id, new.port) == (old.deployment_id, second.port)
    assert_closed(old)


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same-address", "new-address"])
def test_a_redeploy_replaces_the_runner(orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
                                        kit: ClusterKit, elsewhere: bool) -> None:
    first, second = (local_node(classes=[TrackerBase, EwmaTracker]) for _ in range(2))
    model_id = orchestrator.add_model(port=first.port)
    recorder = Recorder()
    cluster = started(kit, recorder)
    (old,) = cluster.models
    deployment = orchestrator.redeploy_model(model_id, port=second.port if elsewhere else None)
    assert has_event(recorder, "joined", model_id, deployment)
    (new,) = cluster.models
    assert new.deployment_id == deployment != old.deployment_id
    assert new.port == (second.port if elsewhere else first.port)
    assert recorder.summary() == [("joined", model_id, old.deployment_id), ("left", model_id, old.deployment_id),
                                  ("joined", model_id, deployment)]
    assert_closed(old)


def test_a_stale_deployments_stopped_is_ignored(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                               kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    deployment = orchestrator.redeploy_model(model_id, stop_old=True)  # RUNNING new, then STOPPED old
    assert has_event(recorder, "joined", model_id, deployment)
    fence = barrier(orchestrator, node, recorder)
    assert table(cluster)[model_id] == (deployment, "127.0.0.1", node.port)
    assert [(k, mid) for k, mid, _ in recorder.summary()] == [
        ("joined", model_id), ("left", model_id), ("joined", model_id), ("joined", fence)
    ]


def test_stopped_removes_the_model(orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (runner,) = cluster.models
    orchestrator.stop_model(model_id)
    assert has_event(recorder, "left", model_id)
    assert cluster.models == []
    assert_closed(runner)


def test_recovering_then_running_brings_a_new_runner(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                                     kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (old,) = cluster.models
    orchestrator.set_state(model_id, "RECOVERING")
    assert has_event(recorder, "left", model_id)
    assert cluster.models == [], "a recovering model cannot be called"
    orchestrator.set_state(model_id, "RUNNING")
    assert recorder.wait_count(3)
    (new,) = cluster.models
    assert new is not old and new.deployment_id == old.deployment_id
    assert_closed(old)


def test_an_unknown_state_is_logged_and_ignored(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                               kit: ClusterKit, caplog: pytest.LogCaptureFixture) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (runner,) = cluster.models
    caplog.set_level(logging.WARNING, logger="mrclient.cluster.table")
    orchestrator.set_state(model_id, "HIBERNATING")
    barrier(orchestrator, node, recorder)
    assert runner in cluster.models and not runner.closed
    assert [r.getMessage() for r in caplog.records if "HIBERNATING" in r.getMessage()] == [
        f"update frame: entry 0 (model {model_id!r}) skipped: unknown state 'HIBERNATING'"
    ]


def test_a_new_init_removes_the_models_it_lacks_and_keeps_the_others(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit
) -> None:
    keep, drop, also_keep = (orchestrator.add_model(port=node.port) for _ in range(3))
    recorder = Recorder()
    cluster = started(kit, recorder)
    before = {r.model_id: r for r in cluster.models}
    assert recorder.wait_count(3)
    orchestrator.stop()
    orchestrator.remove_model(drop)  # while the client is away: only the next init can say so
    orchestrator.start()
    assert has_event(recorder, "left", drop)
    fence = barrier(orchestrator, node, recorder)
    assert {r.model_id: r for r in cluster.models} == {keep: before[keep], also_keep: before[also_keep],
                                                       fence: cluster.models[-1]}
    assert [(k, r.model_id) for k, r in recorder.events[3:]] == [("left", drop), ("joined", fence)]
    assert_closed(before[drop])


def test_an_orchestrator_restart_with_another_model_set_is_reconciled(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode], kit: ClusterKit
) -> None:
    nodes = [local_node(classes=[TrackerBase, EwmaTracker]) for _ in range(3)]
    a, b, c = (orchestrator.add_model(port=n.port) for n in nodes)
    recorder = Recorder()
    cluster = started(kit, recorder)
    orchestrator.stop()
    orchestrator.remove_model(a)
    orchestrator.redeploy_model(b, port=nodes[2].port)
    d = orchestrator.add_model(port=nodes[0].port)
    orchestrator.start()
    expected = implied(orchestrator)
    assert set(expected) == {b, c, d}
    assert recorder.wait_for(lambda _: table(cluster) == expected), (table(cluster), expected)
    assert orchestrator.connections == 2


# -- setups that are still running -----------------------------------------------------------


@pytest.mark.parametrize("how", ["stopped", "redeployed"])
def test_a_runner_removed_during_its_setup_never_joins(
    orchestrator: LocalOrchestrator, gated_node: LocalModelNode, node: LocalModelNode, kit: ClusterKit, how: str
) -> None:
    recorder = Recorder()
    cluster = started(kit, recorder, setup_workers=1)  # one setup at a time: the barrier waits for the gated one
    model_id = orchestrator.add_model(port=gated_node.port)
    assert GatedTracker.entered.wait(WAIT), "the setup is running"
    (gated,) = kit.runners
    if how == "stopped":
        orchestrator.stop_model(model_id)
    else:
        orchestrator.redeploy_model(model_id, port=node.port)
    fence = barrier(orchestrator, node, recorder)
    assert_closed(gated)
    assert all(r is not gated for _, r in recorder.events), "the aborted runner never joined"
    assert gated not in cluster.models
    if how == "redeployed":
        assert has_event(recorder, "joined", model_id)
        assert table(cluster)[model_id][2] == node.port
    else:
        assert set(table(cluster)) == {fence}


# -- reports ------------------------------------------------------------------------------------


def test_a_report_made_while_the_orchestrator_is_down_arrives_once_after_it_returns(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit
) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (runner,) = cluster.models
    orchestrator.stop()
    cluster.report_failure(runner, "LOW_PERFORMANCE", "too slow")
    assert cluster.models == [] and has_event(recorder, "left", model_id)
    assert_closed(runner)
    orchestrator.start()
    assert orchestrator.wait_for_reports(1, WAIT)
    assert not orchestrator.wait_for_reports(2, QUIET), "sent exactly once"
    assert orchestrator.reports == [
        {"model_id": model_id, "failure_code": "LOW_PERFORMANCE", "failure_reason": "too slow", "ip": "127.0.0.1"}
    ]


def test_report_failure_is_once_per_runner_and_drops_it(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                                        kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (runner,) = cluster.models
    cluster.report_failure(runner, "MULTIPLE_TIMEOUT", "3 timeouts")
    cluster.report_failure(runner, "MULTIPLE_TIMEOUT", "3 timeouts")
    assert orchestrator.wait_for_reports(1, WAIT) and not orchestrator.wait_for_reports(2, QUIET)
    assert has_event(recorder, "left", model_id)
    assert [k for k, r in recorder.events if r is runner] == ["joined", "left"]


def test_a_replaced_runner_is_not_reported(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                           kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (old,) = cluster.models
    deployment = orchestrator.redeploy_model(model_id)
    assert has_event(recorder, "joined", model_id, deployment)
    cluster.report_failure(old, "LOW_PERFORMANCE", "stale")
    assert not orchestrator.wait_for_reports(1, QUIET), "the new deployment must not be stopped for the old one"
    assert table(cluster)[model_id][0] == deployment


def test_with_reporting_off_nothing_is_reported_and_the_model_stays(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator.add_model(port=node.port)
    cluster = started(kit, report_failure=False)
    (runner,) = cluster.models
    cluster.report_failure(runner, "LOW_PERFORMANCE", "slow")
    assert cluster.models == [runner] and not runner.closed
    assert not orchestrator.wait_for_reports(1, QUIET)
    assert any("reporting is off" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("classes", "options", "code"),
    [
        ([Unrelated], {}, "BAD_IMPLEMENTATION"),
        ([TrackerBase, FailingTracker], {}, "MULTIPLE_FAILED"),
        (None, {"connect_attempts": 2}, "CONNECTION_FAILED"),  # nothing listens on the port
    ],
    ids=["bad-implementation", "setup-failed", "connection-failed"],
)
@pytest.mark.parametrize("reporting", [True, False], ids=["reporting", "reporting-off"])
def test_a_failed_setup_is_reported_unless_reporting_is_off(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode], node: LocalModelNode, kit: ClusterKit,
    caplog: pytest.LogCaptureFixture, classes: list[type] | None, options: dict[str, Any], code: str, reporting: bool,
) -> None:
    port = free_port() if classes is None else local_node(classes=classes).port
    recorder = Recorder()
    # One setup at a time: when the barrier joins, the failed setup has been dealt with.
    cluster = started(kit, recorder, factory=kit.factory(**options), report_failure=reporting, setup_workers=1)
    model_id = orchestrator.add_model(port=port)
    fence = barrier(orchestrator, node, recorder)
    if reporting:
        assert orchestrator.wait_for_reports(1, WAIT)
        assert [(r["model_id"], r["failure_code"], r["ip"]) for r in orchestrator.reports] == [
            (model_id, code, "127.0.0.1")
        ]
    else:
        warnings = [r.getMessage() for r in caplog.records if "reporting is off" in r.getMessage()]
        assert len(warnings) == 1 and code in warnings[0], warnings
        assert not orchestrator.wait_for_reports(1, QUIET)
    assert set(table(cluster)) == {fence}
    (failed,) = [r for r in kit.runners if r.model_id == model_id]
    assert_closed(failed)
    assert all(r is not failed for _, r in recorder.events)


# -- removing and reconnecting -------------------------------------------------------------


def test_remove_drops_without_reporting(orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (runner,) = cluster.models
    cluster.remove(runner)
    assert cluster.models == [] and has_event(recorder, "left", model_id)
    assert_closed(runner)
    assert not orchestrator.wait_for_reports(1, QUIET)


def test_reconnect_replaces_the_runner_with_a_fresh_one(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                                        kit: ClusterKit) -> None:
    model_id, recorder, cluster = one_model(orchestrator, node, kit)
    (old,) = cluster.models
    fresh = cluster.reconnect(old)
    assert fresh is not None and fresh is not old
    assert recorder.wait_count(3)
    assert cluster.models == [fresh]
    assert [(k, r) for k, r in recorder.events] == [("joined", old), ("left", old), ("joined", fresh)]
    assert (fresh.model_id, fresh.deployment_id, fresh.ip, fresh.port, fresh.infos) == (
        model_id, old.deployment_id, old.ip, old.port, old.infos)
    assert_closed(old)
    assert cluster.reconnect(old) is None, "a runner no longer in the table is not reconnected"


# -- bad input --------------------------------------------------------------------------------


def test_malformed_frames_are_logged_once_each_and_the_rest_applies(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    cluster = started(kit, recorder)
    caplog.set_level(logging.WARNING)
    good = {"model_id": "raw-1", "deployment_id": "raw-d1", "state": "RUNNING", "ip": "127.0.0.1", "port": node.port,
            "infos": {"model_name": "from-raw"}}
    frame = [
        {"model_id": "raw-2", "state": "RUNNING", "ip": "127.0.0.1", "port": node.port},
        {**good, "model_id": "raw-3", "port": "not-a-port"},
        {**good, "model_id": "raw-4", "state": "SLEEPING"},
        {**good, "model_id": "raw-5", "ip": None},
        42,
        good,
    ]
    orchestrator.send_raw("{not json")
    orchestrator.send_raw('{"event": "explode", "data": []}')
    orchestrator.send_raw('{"event": "update", "data": "nope"}')
    orchestrator.send_raw(json.dumps({"event": "update", "data": frame}))
    assert has_event(recorder, "joined", "raw-1")
    barrier(orchestrator, node, recorder)
    assert cluster.models[0].model_name == "from-raw"
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 5
    for fragment in ("deployment_id is missing", "port is 'not-a-port' (str), not a number",
                     "unknown state 'SLEEPING'", "ip is None (null)", "entry 4 skipped: not an object"):
        assert sum(fragment in m for m in skipped) == 1, (fragment, skipped)
    connection_warnings = [r.getMessage() for r in caplog.records if r.name == "mrclient.orchestrator.connection"]
    assert len(connection_warnings) == 3, connection_warnings
    assert orchestrator.connections == 1, "the connection was never dropped"


# -- listeners --------------------------------------------------------------------------------


def test_listeners_are_called_once_per_join_and_leave_off_the_websocket_thread(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit
) -> None:
    recorder = Recorder()
    cluster = kit.cluster()
    calls: list[str] = []

    def broken(runner: ModelRunner) -> None:
        calls.append(runner.model_id)
        raise RuntimeError("a listener bug")

    def reads_the_table(runner: ModelRunner) -> None:
        # Deadlocks (and the test times out waiting) if listeners ran under the table lock.
        cluster.wait_for_models(0, WAIT)
        assert isinstance(cluster.models, list)

    for listener in (broken, reads_the_table, recorder.joined):
        cluster.on_model_joined(listener)
    for listener in (broken, reads_the_table, recorder.left):
        cluster.on_model_left(listener)
    a = orchestrator.add_model(port=node.port)
    cluster.start(WAIT)
    b = orchestrator.add_model(port=node.port)
    assert has_event(recorder, "joined", b)
    deployment = orchestrator.redeploy_model(a)
    assert has_event(recorder, "joined", a, deployment)
    orchestrator.stop_model(b)
    assert has_event(recorder, "left", b)
    cluster.close()
    assert [(k, m) for k, m, _ in recorder.summary()] == [
        ("joined", a), ("joined", b), ("left", a), ("joined", a), ("left", b), ("left", a)
    ]
    assert len(calls) == 6, "the broken listener was called every time and broke nothing"
    assert recorder.threads == {"mrclient-listeners"}


# -- the snapshot and waiting -----------------------------------------------------------------


@pytest.mark.serial
def test_models_is_a_snapshot_and_wait_for_models_is_bounded(orchestrator: LocalOrchestrator, node: LocalModelNode,
                                                             kit: ClusterKit) -> None:
    orchestrator.add_model(port=node.port)
    cluster = started(kit)
    snapshot = cluster.models
    snapshot.clear()
    assert len(cluster.models) == 1, "callers cannot change the table through the snapshot"
    began = time.monotonic()
    assert not cluster.wait_for_models(2, 0.2)
    assert 0.15 < time.monotonic() - began < 1.0
    orchestrator.add_model(port=node.port)
    assert cluster.wait_for_models(2, WAIT)
    waiter_done = threading.Event()
    results: list[bool] = []

    def wait_long() -> None:
        results.append(cluster.wait_for_models(5, WAIT))
        waiter_done.set()

    waiter = threading.Thread(target=wait_long)
    waiter.start()
    cluster.close()
    assert waiter_done.wait(WAIT) and results == [False], "close() wakes waiters"
    waiter.join(WAIT)


# -- closing ----------------------------------------------------------------------------------


@pytest.mark.serial
def test_close_leaves_no_thread_and_the_orchestrator_sees_the_connection_close(
    orchestrator: LocalOrchestrator, node: LocalModelNode, kit: ClusterKit
) -> None:
    before = set(threading.enumerate())
    for _ in range(3):
        orchestrator.add_model(port=node.port)
    recorder = Recorder()
    cluster = started(kit, recorder)
    orchestrator.add_model(port=node.port)
    assert cluster.wait_for_models(4, WAIT)
    began = time.monotonic()
    cluster.close()
    assert time.monotonic() - began < 1.0
    ours = [t.name for t in threading.enumerate() if t not in before and t.name.startswith("mrclient")]
    assert ours == [], "close() returned with its own threads still running"
    assert orchestrator.wait_for_clients(0, WAIT)
    assert orchestrator.client_close_codes == [1000], "the client closed with a normal closing handshake"
    leftovers = client_threads_since(before)
    for thread in leftovers:  # gRPC's connectivity pollers end shortly after their channel closes
        thread.join(WAIT)
    assert [t.name for t in leftovers if t.is_alive()] == []
    for runner in kit.runners:
        assert_closed(runner)
    assert [k for k, _ in recorder.events].count("left") == 4, "every ready model left at close"
    cluster.close()  # idempotent


# -- churn --------------------------------------------------------------------------------------


def test_a_burst_of_200_events_while_the_table_is_read_ends_in_the_implied_table(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode], kit: ClusterKit
) -> None:
    nodes = [local_node(classes=[TrackerBase, EwmaTracker]) for _ in range(6)]
    fence_node = local_node(classes=[TrackerBase, EwmaTracker])
    recorder = Recorder()
    # nodes serve one call at a time: many runners on one node may find it busy for a while
    cluster = started(kit, recorder, factory=kit.factory(connect_attempts=30))
    errors: list[BaseException] = []
    stop_reading = threading.Event()

    def read() -> None:
        try:
            while not stop_reading.wait(0.001):
                snapshot = cluster.models
                ids = [r.model_id for r in snapshot]
                assert len(ids) == len(set(ids)), f"a model twice in the table: {ids}"
                cluster.wait_for_models(0, 0)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    readers = [threading.Thread(target=read, name=f"reader-{n}") for n in range(3)]
    for reader in readers:
        reader.start()
    rng = random.Random(20240601)
    try:
        for _ in range(200):
            models = orchestrator.running_models
            known = sorted(orchestrator.models)
            op = rng.choice(["add", "add", "stop", "recover", "redeploy", "redeploy", "move", "remove", "infos"])
            if op == "add" or not known:
                orchestrator.add_model(port=rng.choice(nodes).port)
            elif op == "stop" and models:
                orchestrator.stop_model(rng.choice(sorted(models)))
            elif op == "recover":
                orchestrator.recover_model(rng.choice(known), port=rng.choice(nodes).port)
            elif op == "redeploy":
                orchestrator.redeploy_model(rng.choice(known), port=rng.choice(nodes).port, stop_old=rng.random() < 0.5)
            elif op == "move" and models:
                orchestrator.move_model(rng.choice(sorted(models)), port=rng.choice(nodes).port)
            elif op == "remove":
                orchestrator.remove_model(rng.choice(known))
            else:
                orchestrator.set_infos(rng.choice(known), {"cruncher_name": f"name-{rng.random()}"})
        orchestrator.add_model(port=fence_node.port, name="fence")  # applied after every event above
        expected = implied(orchestrator)

        def settled(events: list[tuple[str, ModelRunner]]) -> bool:
            """The table is the implied one, and the listeners (their own thread) have heard every change."""
            if table(cluster) != expected:
                return False
            joined = {runner for kind, runner in events if kind == "joined"}
            return joined - {runner for kind, runner in events if kind == "left"} == set(cluster.models)

        assert recorder.wait_for(settled, timeout=30.0), (table(cluster), expected, recorder.summary())
    finally:
        stop_reading.set()
        for reader in readers:
            reader.join(WAIT)
    assert errors == []
    assert orchestrator.reports == [], "no setup failed"
    ready = set(cluster.models)
    for runner in kit.runners:
        if runner in ready:
            assert not runner.closed and runner.channel is not None
        else:
            assert_closed(runner)
    joined = [r for k, r in recorder.events if k == "joined"]
    left = [r for k, r in recorder.events if k == "left"]
    assert len(joined) == len(set(joined)) and len(left) == len(set(left)), "once per join and leave"
    assert set(left) <= set(joined) and set(joined) - set(left) == ready
    assert len(kit.runners) > 100, f"the burst really churned: {len(kit.runners)} runners"
