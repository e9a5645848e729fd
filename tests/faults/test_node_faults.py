"""Faults on the model nodes' side: killed, restarted in place, silent, frozen, answering garbage;
and a coordinator that closes the client in the middle of a round.

Each test names the fault, the bound the client must keep and the outcome it
must reach; the outcome is asserted, so a change in behaviour fails the test.
docs/reliability.rst lists them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _fault_kit import (
    GARBAGE_VARIANTS,
    WAIT,
    FaultyProxy,
    GarbageNode,
    Progress,
    faulty_proxy,
    garbage_node,
)

from _orchestrator_fixtures import CRUNCH, FAST, Recorder, orchestrator
from conftest import TRACKER_BASE, RealNode
from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult, ModelRunner
from mrclient.runners import MODEL_LEFT
from mrclient.testing import LocalModelNode, LocalOrchestrator

__all__ = ["faulty_proxy", "garbage_node", "orchestrator"]  # fixtures used here

SUCCESS = ModelPredictResult.Status.SUCCESS
FAILED = ModelPredictResult.Status.FAILED
TIMEOUT = ModelPredictResult.Status.TIMEOUT


class TrackerBase:
    """Stands in for the participant package's ``trackers.base.TrackerBase`` (matched by bare name)."""


class Quick(TrackerBase):
    def predict(self) -> str:
        return "quick"

    def hold(self, port: int) -> str:
        return "quick"

    def work(self) -> str:
        return "quick"


class Gated(TrackerBase):
    """``work`` waits for the test: it can hold a call, or let the test act while the model works."""

    entered = threading.Event()
    proceed = threading.Event()

    def predict(self) -> str:
        return "gated"

    def work(self) -> str:
        Gated.entered.set()
        Gated.proceed.wait(WAIT)
        return "worked"


@pytest.fixture(autouse=True)
def reset_gates() -> Iterator[None]:
    Gated.entered.clear()
    Gated.proceed.clear()
    yield
    Gated.proceed.set()


@pytest.fixture
def runners(orchestrator: LocalOrchestrator) -> Iterator[Callable[..., DynamicSubclassModelConcurrentRunner]]:
    """Factory of concurrent runners on ``orchestrator`` (fast reconnects); all closed after the test."""
    made: list[DynamicSubclassModelConcurrentRunner] = []

    def make(cls: type[DynamicSubclassModelConcurrentRunner] = DynamicSubclassModelConcurrentRunner,
             **options: Any) -> DynamicSubclassModelConcurrentRunner:
        settings: dict[str, Any] = dict(
            timeout=5.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port, base_classname=TRACKER_BASE,
            retry_backoff_factor=0.05, orchestrator_settings=FAST,
        )
        settings.update(options)
        runner = cls(**settings)
        made.append(runner)
        return runner

    yield make
    Gated.proceed.set()
    for runner in made:
        runner.close()


def by_id(results: dict[ModelRunner, ModelPredictResult]) -> dict[str, ModelPredictResult]:
    return {runner.model_id: result for runner, result in results.items()}


def watch(runner: DynamicSubclassModelConcurrentRunner) -> Recorder:
    recorder = Recorder()
    runner.on_model_joined(recorder.joined)
    runner.on_model_left(recorder.left)
    return recorder


def joins_of(recorder: Recorder, model_id: str) -> int:
    with recorder._changed:
        return sum(1 for kind, r in recorder.events if kind == "joined" and r.model_id == model_id)


# -- the real node from PyPI, killed ---------------------------------------------------------------


@pytest.mark.serial
@pytest.mark.subprocess
def test_a_real_node_sigkilled_mid_call_then_redeployed_on_another_port(
    orchestrator: LocalOrchestrator, real_nodes: Callable[..., RealNode],
    local_node: Callable[..., LocalModelNode], runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: the node process is SIGKILLed while a model call runs on it; the orchestrator then
    redeploys the model on another port. Bound: the round returns within 5 s of the kill although
    its deadline is 30 s. Outcome: that model TIMEOUT (UNAVAILABLE), the other model SUCCESS in the
    same round; after the redeploy the model answers from its new node; nobody reported."""
    victim = real_nodes()
    victim_id = orchestrator.add_model(port=victim.port, name="victim")
    other_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Quick]).port, name="other")
    runner = runners(timeout=30.0)
    recorder = watch(runner)
    runner.init(WAIT)
    assert runner.wait_for_models(2, WAIT)

    with socket.create_server(("127.0.0.1", 0)) as gate:
        gate.settimeout(WAIT)
        results: dict[str, ModelPredictResult] = {}
        round_thread = threading.Thread(target=lambda: results.update(by_id(runner.call("hold", args=[gate.getsockname()[1]]))))
        round_thread.start()
        held, _ = gate.accept()  # the victim's model is inside `hold`
        with held:
            killed_at = time.monotonic()
            victim.process.kill()
            round_thread.join(WAIT)
            assert not round_thread.is_alive()
            assert time.monotonic() - killed_at < 5.0
    assert results[other_id].status is SUCCESS and results[other_id].result == "quick"
    assert results[victim_id].status is TIMEOUT and (results[victim_id].detail or "").startswith("UNAVAILABLE")

    redeployed = real_nodes()
    deployment = orchestrator.redeploy_model(victim_id, port=redeployed.port, stop_old=True)
    assert recorder.wait_for(lambda events: any(k == "joined" and r.deployment_id == deployment for k, r in events))
    results = by_id(runner.call("predict", timeout=WAIT))
    assert results[victim_id].status is SUCCESS and results[victim_id].result["ticks"] == 0
    assert results[other_id].status is SUCCESS
    assert orchestrator.reports == []


@pytest.mark.subprocess
def test_a_real_node_restarted_in_place_is_set_up_again(
    orchestrator: LocalOrchestrator, real_nodes: Callable[..., RealNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: the node process is killed and restarted at the same address (issue 11, fault 4: gRPC
    reconnects by itself, the new process has no instance, every call answered FAILED_PRECONDITION
    and, with one model, every call() raised InvalidCoordinatorUsageError). Bound: the model is
    back within 10 s. Outcome: one round reports it FAILED with a SETUP_LOST detail, the runner is
    set up again off the coordinator's thread, the next round succeeds from a fresh instance, and
    nothing is reported."""
    node = real_nodes()
    model_id = orchestrator.add_model(port=node.port)
    runner = runners()
    recorder = watch(runner)
    runner.init(WAIT)
    assert by_id(runner.call("tick", args=[{"x": 1}]))[model_id].status is SUCCESS
    assert by_id(runner.call("predict"))[model_id].result["ticks"] == 1

    node.process.kill()
    node.process.wait(WAIT)
    real_nodes(port=node.port)  # the same address, a new process: no instance

    lost = by_id(runner.call("predict"))[model_id]
    assert lost.status is FAILED
    assert lost.detail == (
        "SETUP_LOST: the node lost the model's instance (FAILED_PRECONDITION: Setup has not been called yet)"
    )
    assert recorder.wait_for(lambda _: joins_of(recorder, model_id) == 2), "set up again"
    back = by_id(runner.call("predict"))[model_id]
    assert back.status is SUCCESS and back.result["ticks"] == 0, "a fresh instance"
    assert orchestrator.reports == []
    assert runner.models[0].consecutive_failures == 0


# -- nodes that lose their instance, in-process -----------------------------------------------------


def test_a_node_that_keeps_losing_its_instance_is_reported_in_the_end(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: the node restarts in place before every round (a crash loop). Bound: one failure per
    restart. Outcome: each loss counts once and carries over to the runner set up again, so after
    max_consecutive_failures + 1 losses in a row the model is reported MULTIPLE_FAILED, once,
    instead of being set up again forever."""
    node = local_node(classes=[TrackerBase, Quick])
    model_id = orchestrator.add_model(port=node.port)
    runner = runners(max_consecutive_failures=2)
    recorder = watch(runner)
    runner.init(WAIT)
    details = []
    for loss in range(1, 4):
        node.stop()
        node.start()
        result = by_id(runner.call("predict"))[model_id]
        details.append((result.status, (result.detail or "").split(":")[0]))
        if loss < 3:
            assert recorder.wait_for(lambda _, loss=loss: joins_of(recorder, model_id) == loss + 1)
            assert runner.models[0].consecutive_failures == loss, "the count carried over"
    assert details == [(FAILED, "SETUP_LOST")] * 3
    assert orchestrator.wait_for_reports(1, WAIT)
    assert [(r["model_id"], r["failure_code"]) for r in orchestrator.reports] == [(model_id, "MULTIPLE_FAILED")]
    assert runner.models == []


def test_with_reporting_off_a_node_that_lost_its_instance_is_still_set_up_again(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: a restart in place while reporting is off. Outcome: set up again, never reported."""
    node = local_node(classes=[TrackerBase, Quick])
    model_id = orchestrator.add_model(port=node.port)
    runner = runners(report_failure=False, max_consecutive_failures=0)
    recorder = watch(runner)
    runner.init(WAIT)
    node.stop()
    node.start()
    assert by_id(runner.call("predict"))[model_id].detail.startswith("SETUP_LOST")  # type: ignore[union-attr]
    assert recorder.wait_for(lambda _: joins_of(recorder, model_id) == 2)
    assert by_id(runner.call("predict"))[model_id].status is SUCCESS
    assert orchestrator.reports == []


# -- nodes that do not speak, freeze, or answer garbage ---------------------------------------------


class TwoAttemptsRunner(DynamicSubclassModelConcurrentRunner):
    def create_model_runner(self, **kwargs: Any) -> Any:
        return super().create_model_runner(connect_attempts=2, **kwargs)


@pytest.mark.serial
def test_a_node_that_accepts_tcp_and_never_speaks_http2(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: a model's address accepts TCP connections and never says a word. Bound: init(2 s)
    returns within 3 s; the model is given up within 2 attempts of about 1 s each (plus one 1 s TLS
    probe). Outcome: the healthy model answers meanwhile; the silent one never joins and is
    reported CONNECTION_FAILED once."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            silent.settimeout(0.1)
            while not stop.is_set():
                try:
                    accepted.append(silent.accept()[0])
                except TimeoutError:
                    continue

        acceptor = threading.Thread(target=accept, name="silent-acceptor")
        acceptor.start()
        try:
            silent_id = orchestrator.add_model(port=silent.getsockname()[1], name="silent")
            good_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Quick]).port, name="good")
            runner = runners(TwoAttemptsRunner)
            started = time.monotonic()
            runner.init(2.0)
            assert time.monotonic() - started < 3.0
            assert by_id(runner.call("predict")).keys() == {good_id}
            assert orchestrator.wait_for_reports(1, WAIT)
            assert [(r["model_id"], r["failure_code"]) for r in orchestrator.reports] == [(silent_id, "CONNECTION_FAILED")]
            assert [m.model_id for m in runner.models] == [good_id]
        finally:
            stop.set()
            acceptor.join(WAIT)
            for connection in accepted:
                connection.close()
    assert accepted, "the client did connect to the silent node"


@pytest.mark.serial
def test_a_proxy_that_freezes_bytes_mid_call(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner], faulty_proxy: Callable[[int], FaultyProxy],
) -> None:
    """Fault: the network path to a node stops delivering bytes while the model computes (its
    answer is held in flight), then delivers again. Bound: the round returns within its 1 s
    deadline (+0.5 s). Outcome: that model TIMEOUT, the others SUCCESS; once the path thaws the
    model rests one round, then answers; nobody reported."""
    proxy = faulty_proxy(local_node(classes=[TrackerBase, Gated]).port)
    frozen_id = orchestrator.add_model(port=proxy.port, name="behind-proxy")
    other_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Quick]).port, name="direct")
    runner = runners(timeout=1.0)
    runner.init(WAIT)
    assert runner.wait_for_models(2, WAIT)

    def freeze_while_working() -> None:
        if Gated.entered.wait(WAIT):
            proxy.freeze()
        Gated.proceed.set()  # the model answers into the frozen path

    freezer = threading.Thread(target=freeze_while_working, name="freezer")
    freezer.start()
    started = time.monotonic()
    results = by_id(runner.call("work", model_runs=runner.models))
    elapsed = time.monotonic() - started
    freezer.join(WAIT)
    assert elapsed < 1.0 + 0.5
    assert results[frozen_id].status is TIMEOUT and (results[frozen_id].detail or "").startswith("DEADLINE_EXCEEDED")
    assert results[other_id].status is SUCCESS
    proxy.heal()

    resting = by_id(runner.call("predict"))
    assert resting[frozen_id].status is TIMEOUT and (resting[frozen_id].detail or "").startswith("SKIPPED")
    back = by_id(runner.call("predict"))
    assert back[frozen_id].status is SUCCESS and back[frozen_id].result == "gated"
    assert back[other_id].status is SUCCESS
    assert orchestrator.reports == []


def test_a_node_answering_undecodable_variants(
    orchestrator: LocalOrchestrator, garbage_node: GarbageNode, local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: a node whose every answer carries a Variant nobody can decode (bad JSON, JSON nested
    100,000 levels, truncated numbers, invalid UTF-8, unknown types, garbage Parquet) or is no
    protobuf at all. Bound: each round within its deadline. Outcome: that model FAILED with an
    "undecodable" detail, counted as its failure; the other model unaffected in the same rounds;
    after max_consecutive_failures + 1 such answers it is reported MULTIPLE_FAILED once."""
    kinds = [*GARBAGE_VARIANTS, "not-protobuf"]
    garbage_id = orchestrator.add_model(port=garbage_node.port, name="garbage")
    good_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Quick]).port, name="good")
    runner = runners(max_consecutive_failures=len(kinds))
    runner.init(WAIT)
    assert runner.wait_for_models(2, WAIT)
    (garbage,) = [m for m in runner.models if m.model_id == garbage_id]
    details = {}
    for kind in kinds:
        result = by_id(runner.call(kind, model_runs=[garbage]))[garbage_id]
        assert result.status is FAILED, (kind, result)
        details[kind] = result.detail or ""
    assert all("undecodable" in d for k, d in details.items() if k != "not-protobuf"), details
    assert details["not-protobuf"].startswith("INTERNAL"), details["not-protobuf"]
    assert garbage.consecutive_failures == len(kinds) and orchestrator.reports == []

    both = by_id(runner.call("predict"))  # one more undecodable answer: over the limit
    assert both[good_id].status is SUCCESS and both[garbage_id].status is FAILED
    assert orchestrator.wait_for_reports(1, WAIT)
    assert [(r["model_id"], r["failure_code"]) for r in orchestrator.reports] == [(garbage_id, "MULTIPLE_FAILED")]


# -- models that leave during a round ---------------------------------------------------------------


@pytest.mark.serial
def test_close_from_another_thread_mid_round(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: close() from another thread while a round waits on a model that has already timed out
    once (issue 11, fault 3: the CANCELLED counted as a second timeout, scheduled a health check on
    the closed pool, and call() raised). Bound: the round returns within 2 s of close() although its
    deadline is 30 s. Outcome: no exception; the held model FAILED with the MODEL_LEFT detail, the
    quick one SUCCESS; no penalty counted, no report, no health check."""
    held_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Gated]).port, name="held")
    quick_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Quick]).port, name="quick")
    runner = runners(timeout=0.3)
    runner.init(WAIT)
    assert runner.wait_for_models(2, WAIT)
    (held,) = [m for m in runner.models if m.model_id == held_id]
    assert by_id(runner.call("work", model_runs=[held]))[held_id].status is TIMEOUT  # its first timeout
    Gated.proceed.set()
    runner.call("predict")  # its rest
    Gated.entered.clear()
    Gated.proceed.clear()
    assert held.consecutive_timeouts == 1 and held.cooldown_calls_remaining == 0

    outcome: list[Any] = []

    def round_() -> None:
        try:
            outcome.append(by_id(runner.call("work", timeout=30.0, model_runs=runner.models)))
        except BaseException as error:  # noqa: BLE001 - the test asserts there is none
            outcome.append(error)

    caller = threading.Thread(target=round_, name="coordinator")
    caller.start()
    assert Gated.entered.wait(WAIT)
    closed_at = time.monotonic()
    runner.close()
    caller.join(WAIT)
    assert not caller.is_alive() and time.monotonic() - closed_at < 2.0
    (results,) = outcome
    assert isinstance(results, dict), results
    assert (results[held_id].status, results[held_id].detail) == (FAILED, MODEL_LEFT)
    # the quick model answered, or was still answering when close() closed it too
    assert (results[quick_id].status, results[quick_id].result or results[quick_id].detail) in (
        (SUCCESS, "quick"), (FAILED, MODEL_LEFT)
    )
    assert held.consecutive_timeouts == 1 and held.consecutive_failures == 0, "no penalty"
    assert orchestrator.reports == []


@pytest.mark.serial
def test_a_model_stopped_by_the_orchestrator_mid_round(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """Fault: the orchestrator stops a model while its call runs. Bound: the round returns within 2 s
    of the stop (deadline 30 s). Outcome: FAILED with the MODEL_LEFT detail (not TIMEOUT
    "CANCELLED"), nothing counted, nothing reported; the round's other model SUCCESS."""
    held_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Gated]).port, name="held")
    quick_id = orchestrator.add_model(port=local_node(classes=[TrackerBase, Quick]).port, name="quick")
    other = Progress()
    runner = runners(timeout=30.0)
    runner.init(WAIT)
    assert runner.wait_for_models(2, WAIT)
    (held,) = [m for m in runner.models if m.model_id == held_id]
    outcome: list[dict[str, ModelPredictResult]] = []
    caller = threading.Thread(target=lambda: (outcome.append(by_id(runner.call("work"))), other.advance()))
    caller.start()
    assert Gated.entered.wait(WAIT)
    stopped_at = time.monotonic()
    orchestrator.stop_model(held_id)
    assert other.wait_for(1)
    caller.join(WAIT)
    assert time.monotonic() - stopped_at < 2.0
    assert (outcome[0][held_id].status, outcome[0][held_id].detail) == (FAILED, MODEL_LEFT)
    assert outcome[0][quick_id].status is SUCCESS
    assert held.consecutive_timeouts == 0 and held.consecutive_failures == 0
    assert orchestrator.reports == []
