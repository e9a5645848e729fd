"""ModelConcurrentRunner against a LocalOrchestrator and LocalModelNodes on loopback."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _crunch_kit import Crunch
from conftest import client_threads_since
from mrclient import (
    Argument,
    DynamicSubclassModelConcurrentRunner,
    InvalidCoordinatorUsageError,
    KwArgument,
    ModelPredictResult,
    ModelRunner,
    TrainInferModelConcurrentRunner,
    Variant,
    VariantType,
    encode_data,
)
from mrclient.concurrent.rounds import switch_interval
from mrclient.testing import LocalModelNode, LocalOrchestrator

SUCCESS = ModelPredictResult.Status.SUCCESS
FAILED = ModelPredictResult.Status.FAILED
TIMEOUT = ModelPredictResult.Status.TIMEOUT
WAIT = 10.0  # bound of every wait for something the background threads do


class ConcurrentBase:
    """The base class the test models extend."""


class Echo(ConcurrentBase):
    def __init__(self, name: str = "anon") -> None:
        self.name = name

    def echo(self, value: Any, tag: Any = None) -> Any:
        return {"value": value, "tag": tag}

    def whoami(self) -> str:
        return self.name

    def work(self) -> str:
        return "done"


class Held(Echo):
    """``hold`` blocks until the test releases it: a model that hangs."""

    started = threading.Event()
    release = threading.Event()

    def hold(self) -> str:
        Held.started.set()
        Held.release.wait(WAIT)
        return "released"

    def work(self) -> str:
        return self.hold()


class Slow(Echo):
    """``slow`` takes longer than the tests' deadlines, then says it is done."""

    delay = 0.6
    done = threading.Event()
    interrupt = threading.Event()  # set at teardown so no slow call outlives its test

    def slow(self) -> str:
        Slow.done.clear()
        Slow.interrupt.wait(Slow.delay)  # the model's work: it takes `delay` seconds
        Slow.done.set()
        return "late"


class Extended(Echo):
    def extra(self) -> str:
        return "extra"


class Failing(Echo):
    def echo(self, value: Any, tag: Any = None) -> Any:
        raise RuntimeError("boom")


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[Crunch]:
    Held.started.clear()
    Held.release.clear()
    Slow.interrupt.clear()
    with Crunch.running("concurrent", local_node, ConcurrentBase, releases=(Held.release, Slow.interrupt)) as kit:
        yield kit


def by_model_id(results: dict[ModelRunner, ModelPredictResult]) -> dict[str, ModelPredictResult]:
    return {runner.model_id: result for runner, result in results.items()}


def json_argument(position: int, value: Any) -> Argument:
    return Argument(position=position, data=Variant(type=VariantType.JSON, value=encode_data(VariantType.JSON, value)))


# -- arguments -------------------------------------------------------------------------------


def test_the_three_argument_forms(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner()
    (model,) = runner.models

    tag = KwArgument(keyword="tag", data=Variant(type=VariantType.STRING, value=b"t"))
    protobuf = runner.call("echo", arguments=([json_argument(1, {"a": 1})], [tag]))
    per_model = runner.call("echo", arguments=lambda m: ([json_argument(1, m.model_id)], []))
    plain = runner.call("echo", args=[[1, 2.5]], kwargs={"tag": None})

    assert protobuf[model].status is SUCCESS and protobuf[model].result == {"value": {"a": 1}, "tag": "t"}
    assert per_model[model].result == {"value": model.model_id, "tag": None}
    assert plain[model].result == {"value": [1, 2.5], "tag": None}
    assert plain[model].exec_time_us > 0 and plain[model].detail is None


def test_per_model_arguments_reach_the_right_model(crunch: Crunch) -> None:
    ids = [crunch.add(Echo, name=f"model-{i}") for i in range(4)]
    runner = crunch.runner()
    assert runner.wait_for_models(4, WAIT)

    seen: list[str] = []

    def arguments(model: ModelRunner) -> tuple[list[Argument], list[KwArgument]]:
        seen.append(model.model_id)
        return [json_argument(1, f"for {model.model_id}")], []

    results = by_model_id(runner.call("echo", arguments=arguments))
    assert sorted(seen) == sorted(ids)
    assert {model_id: result.result["value"] for model_id, result in results.items()} == {
        model_id: f"for {model_id}" for model_id in ids
    }


def test_misuse_raises_and_reports_nothing(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner()
    with pytest.raises(InvalidCoordinatorUsageError):
        runner.call("")
    with pytest.raises(InvalidCoordinatorUsageError):
        runner.call("echo", arguments=([], []), args=[1])
    assert crunch.orchestrator.reports == []


@pytest.mark.serial
def test_model_subset_and_per_call_timeout(crunch: Crunch) -> None:
    first = crunch.add(Echo, name="first")
    crunch.add(Held, name="held")
    runner = crunch.runner(timeout=60.0)
    assert runner.wait_for_models(2, WAIT)
    only_first = [model for model in runner.models if model.model_id == first]

    results = runner.call("echo", args=[1], model_runs=only_first)
    assert list(by_model_id(results)) == [first]

    started = time.monotonic()
    results = runner.call("hold", timeout=0.5)
    assert time.monotonic() - started < 0.5 + 0.5
    assert {r.status for r in results.values()} == {TIMEOUT, FAILED}  # Echo has no `hold`: BAD_IMPLEMENTATION


# -- deadlines -------------------------------------------------------------------------------


@pytest.mark.serial
def test_a_hanging_model_does_not_delay_the_round(crunch: Crunch) -> None:
    held = crunch.add(Held, name="held")
    echo_ids = [crunch.add(Echo, name=f"echo-{i}") for i in range(3)]
    runner = crunch.runner(timeout=1.0)
    assert runner.wait_for_models(4, WAIT)

    started = time.monotonic()
    results = by_model_id(runner.call("work"))
    elapsed = time.monotonic() - started

    assert Held.started.is_set()
    assert elapsed < 1.0 + 0.5
    assert results[held].status is TIMEOUT and "DEADLINE_EXCEEDED" in (results[held].detail or "")
    assert {model_id: (r.status, r.result) for model_id, r in results.items() if model_id != held} == {
        model_id: (SUCCESS, "done") for model_id in echo_ids
    }


@pytest.mark.serial
def test_a_previous_rounds_straggler_does_not_delay_the_next_round(crunch: Crunch) -> None:
    held = crunch.add(Held, name="held")
    echo_ids = [crunch.add(Echo, name=f"echo-{i}") for i in range(3)]
    runner = crunch.runner(timeout=0.5, max_consecutive_timeouts=10)
    assert runner.wait_for_models(4, WAIT)
    assert by_model_id(runner.call("work"))[held].status is TIMEOUT  # its node is still computing

    for _ in range(3):  # round after round while the held call is still running on the node
        started = time.monotonic()
        results = by_model_id(runner.call("work", timeout=0.5))
        assert time.monotonic() - started < 0.5 + 0.5
        assert [results[model_id].status for model_id in echo_ids] == [SUCCESS] * 3
        assert results[held].status is TIMEOUT  # skipped while resting, or refused as busy


def test_a_node_killed_mid_call(crunch: Crunch) -> None:
    held = crunch.add(Held)
    node = crunch.nodes[held]
    runner = crunch.runner(timeout=30.0, report_failure=False)
    results: dict[str, ModelPredictResult] = {}
    thread = threading.Thread(target=lambda: results.update(by_model_id(runner.call("hold"))))
    started = time.monotonic()
    thread.start()
    assert Held.started.wait(WAIT)
    stopper = threading.Thread(target=node.stop)
    stopper.start()
    thread.join(WAIT)
    Held.release.set()
    stopper.join(WAIT)
    assert not thread.is_alive(), "the round waited for a dead node"
    assert time.monotonic() - started < 30.0
    assert results[held].status is TIMEOUT
    assert results[held].detail and results[held].detail.split(":")[0] in {"UNAVAILABLE", "CANCELLED"}


# -- penalties -------------------------------------------------------------------------------


def test_rest_skips_and_counters(crunch: Crunch) -> None:
    crunch.add(Slow)
    runner = crunch.runner(timeout=0.2, max_consecutive_timeouts=10, max_consecutive_failures=10)
    (model,) = runner.models

    first = runner.call("slow")[model]
    assert first.status is TIMEOUT and model.consecutive_timeouts == 1
    skipped = runner.call("echo", args=[1])[model]
    assert skipped.status is TIMEOUT and skipped.detail and skipped.detail.startswith("SKIPPED")
    assert model.consecutive_timeouts == 1  # a rest skip counts nothing
    assert Slow.done.wait(WAIT)  # the node is free again
    chance = runner.call("echo", args=[2])[model]
    assert chance.status is SUCCESS and chance.result["value"] == 2
    assert model.consecutive_timeouts == 0 and model.consecutive_failures == 0

    assert runner.call("missing_method_is_bad", model_runs=[]) == {}
    runner.call("whoami", args=["unexpected"])  # TypeError in the model: a failure, counted
    assert model.consecutive_failures == 1
    runner.call("whoami", args=["unexpected"])
    assert model.consecutive_failures == 2
    assert runner.call("whoami")[model].status is SUCCESS
    assert model.consecutive_failures == 0


def test_busy_node_counts_as_a_timeout(crunch: Crunch) -> None:
    crunch.add(Held)
    runner = crunch.runner(timeout=0.3, max_consecutive_timeouts=10, max_consecutive_failures=0)
    (model,) = runner.models
    assert runner.call("hold")[model].status is TIMEOUT  # the node keeps computing
    assert runner.call("echo", args=[1])[model].detail.startswith("SKIPPED")  # type: ignore[union-attr]
    busy = runner.call("echo", args=[1])[model]
    assert busy.status is TIMEOUT and busy.detail and busy.detail.startswith("RESOURCE_EXHAUSTED")
    assert model.consecutive_timeouts == 2 and model.consecutive_failures == 0


def test_health_checks_keep_a_serving_node_and_reconnect_another(crunch: Crunch) -> None:
    model_id = crunch.add(Slow)
    node = crunch.nodes[model_id]
    # Backoff long enough that the reconnect's Setup outlasts the node's busy `slow` call.
    runner = crunch.runner(timeout=0.1, max_consecutive_timeouts=10, retry_backoff_factor=0.2)
    joined: list[ModelRunner] = []
    left: list[ModelRunner] = []
    rejoined = threading.Event()
    runner.on_model_left(left.append)
    runner.on_model_joined(lambda m: (joined.append(m), rejoined.set()), replay=False)
    (model,) = runner.models

    def two_timeouts() -> None:
        assert runner.call("slow")[model].status is TIMEOUT
        assert Slow.done.wait(WAIT)
        runner.call("echo", args=[0])  # rest skip
        assert runner.call("slow")[model].status is TIMEOUT  # repeated: a health check follows
        assert Slow.done.wait(WAIT)

    two_timeouts()  # the node is SERVING: the model stays
    assert not rejoined.wait(1.0)
    assert runner.models == [model] and model.consecutive_timeouts == 2

    runner.call("echo", args=[0])  # rest skip
    node.set_serving(False)
    assert runner.call("slow")[model].status is TIMEOUT
    assert rejoined.wait(WAIT), "a node that is not serving must be reconnected"
    assert left == [model] and joined[0].model_id == model_id and joined[0] is not model
    assert joined[0].consecutive_timeouts == 0
    assert crunch.orchestrator.reports == []


def _reports_for(orchestrator: LocalOrchestrator, model_id: str) -> list[str]:
    return [r["failure_code"] for r in orchestrator.reports if r["model_id"] == model_id]


def test_bad_implementation_is_reported_once_and_removed(crunch: Crunch) -> None:
    model_id = crunch.add(Echo)
    complete_id = crunch.add(Extended)  # has the method the other lacks: not the coordinator's typo
    runner = crunch.runner()
    assert runner.wait_for_models(2, WAIT)
    (model,) = [model for model in runner.models if model.model_id == model_id]
    results = by_model_id(runner.call("extra"))
    assert results[complete_id].status is SUCCESS
    assert results[model_id].status is FAILED and "BAD_IMPLEMENTATION" in (results[model_id].detail or "")
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert [m.model_id for m in runner.models] == [complete_id] and model.closed
    assert list(by_model_id(runner.call("extra"))) == [complete_id]
    assert _reports_for(crunch.orchestrator, model_id) == ["BAD_IMPLEMENTATION"]
    assert crunch.orchestrator.reports[0]["ip"] == "127.0.0.1"


def test_multiple_failed_is_reported_once_and_removed(crunch: Crunch) -> None:
    model_id = crunch.add(Failing)
    runner = crunch.runner(max_consecutive_failures=2)
    (model,) = runner.models
    statuses = [runner.call("echo", args=[i]).get(model) for i in range(3)]
    assert [s.status for s in statuses if s] == [FAILED] * 3
    assert "boom" in (statuses[0].detail or "")  # type: ignore[union-attr]
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert runner.models == []
    assert runner.call("echo", args=[9]) == {}
    assert _reports_for(crunch.orchestrator, model_id) == ["MULTIPLE_FAILED"]


def test_multiple_timeout_is_reported_once_and_removed(crunch: Crunch) -> None:
    model_id = crunch.add(Slow)
    runner = crunch.runner(timeout=0.1, max_consecutive_timeouts=1)
    (model,) = runner.models
    assert runner.call("slow")[model].status is TIMEOUT
    assert Slow.done.wait(WAIT)
    assert runner.call("slow")[model].detail.startswith("SKIPPED")  # type: ignore[union-attr]
    assert runner.call("slow")[model].status is TIMEOUT
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert runner.models == []
    assert _reports_for(crunch.orchestrator, model_id) == ["MULTIPLE_TIMEOUT"]
    assert Slow.done.wait(WAIT)


def test_connection_failed_is_reported_once(crunch: Crunch) -> None:
    good = crunch.add(Echo)
    runner = crunch.runner()
    dead = crunch.orchestrator.add_model(host="127.0.0.1", port=1, name="dead")
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert _reports_for(crunch.orchestrator, dead) == ["CONNECTION_FAILED"]
    assert [m.model_id for m in runner.models] == [good]


def test_reporting_off_keeps_every_model(crunch: Crunch) -> None:
    crunch.add(Failing)
    crunch.add(Extended, name="echo")
    runner = crunch.runner(report_failure=False, max_consecutive_failures=1)
    assert runner.wait_for_models(2, WAIT)
    for _ in range(4):
        runner.call("echo", args=[1])
    runner.call("extra")  # BAD_IMPLEMENTATION for Failing only
    runner.report_failure(runner.models[0], "LOW_PERFORMANCE", "slow")
    assert len(runner.models) == 2
    assert crunch.orchestrator.reports == []


def test_coordinator_reports_low_performance(crunch: Crunch) -> None:
    model_id = crunch.add(Echo)
    runner = crunch.runner()
    (model,) = runner.models
    runner.report_failure(model, "LOW_PERFORMANCE", "below the baseline")
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert crunch.orchestrator.reports == [
        {"model_id": model_id, "failure_code": "LOW_PERFORMANCE", "failure_reason": "below the baseline", "ip": "127.0.0.1"}
    ]
    assert runner.models == []


# -- the model table -------------------------------------------------------------------------


def test_a_model_joining_between_rounds_is_in_the_next(crunch: Crunch) -> None:
    first = crunch.add(Echo)
    runner = crunch.runner()
    assert set(by_model_id(runner.call("echo", args=[1]))) == {first}
    second = crunch.add(Echo, name="second")
    assert runner.wait_for_models(2, WAIT)
    assert set(by_model_id(runner.call("echo", args=[2]))) == {first, second}


def test_works_inside_a_running_event_loop(crunch: Crunch) -> None:
    """A Jupyter cell runs inside an asyncio loop: the blocking API must still work there."""
    model_id = crunch.add(Echo)

    async def cell() -> dict[str, ModelPredictResult]:
        runner = crunch.runner()
        return by_model_id(runner.call("echo", args=["from a loop"]))

    results = asyncio.run(cell())
    assert results[model_id].status is SUCCESS and results[model_id].result["value"] == "from a loop"


def test_close_leaves_no_thread(crunch: Crunch) -> None:
    crunch.add(Echo)
    crunch.add(Held)
    before = set(threading.enumerate())
    with DynamicSubclassModelConcurrentRunner(
        timeout=0.3, crunch_id="concurrent", host="127.0.0.1", port=crunch.orchestrator.port,
        base_classname="ConcurrentBase", retry_backoff_factor=0.01,
    ) as runner:
        assert runner.wait_for_models(2, WAIT)
        runner.call("hold")  # leaves a straggler behind until its deadline
        runner.close()
        runner.close()  # idempotent
    Held.release.set()
    leftover = client_threads_since(before)
    assert leftover == [], leftover
    assert crunch.orchestrator.wait_for_clients(0, WAIT)


def test_sync_blocks_until_close(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner()
    syncing = threading.Thread(target=runner.sync)
    syncing.start()
    syncing.join(0.2)
    assert syncing.is_alive()
    runner.close()
    syncing.join(WAIT)
    assert not syncing.is_alive()


# -- train / infer ---------------------------------------------------------------------------


def running_sum(stream: Any) -> Any:
    total = 0.0
    yield  # the node primes the generator
    for value in stream:
        total += value
        yield total


def test_train_infer_predict_and_reinitialize(local_node: Callable[..., LocalModelNode]) -> None:
    with LocalOrchestrator(crunch_id="infer") as orchestrator:
        ids = [orchestrator.add_model(host="127.0.0.1", port=local_node(infer=running_sum).port) for _ in range(2)]
        with TrainInferModelConcurrentRunner(
            timeout=5.0, crunch_id="infer", host="127.0.0.1", port=orchestrator.port, retry_backoff_factor=0.01
        ) as runner:
            assert runner.wait_for_models(2, WAIT)
            assert {r.result for r in runner.predict(1.5).values()} == {1.5}
            results = by_model_id(runner.predict(2.0))
            assert {model_id: r.result for model_id, r in results.items()} == {model_id: 3.5 for model_id in ids}
            assert all(r.status is SUCCESS for r in runner.reinitialize().values())
            assert {r.result for r in runner.predict(1.0).values()} == {1.0}


# -- the round's switch interval -----------------------------------------------------------------


class Interval(ConcurrentBase):
    def interval(self) -> float:
        return sys.getswitchinterval()  # the node runs in this process: what the round set


def test_a_round_runs_with_a_longer_switch_interval_and_restores_it(crunch: Crunch) -> None:
    crunch.add(Interval)
    before = sys.getswitchinterval()
    default = crunch.runner()
    off = crunch.runner(round_switch_interval=None)
    assert [r.result for r in default.call("interval").values()] == [0.02]
    assert sys.getswitchinterval() == before
    assert [r.result for r in off.call("interval").values()] == [before]


def test_overlapping_rounds_restore_the_interval_in_force_before_the_first() -> None:
    before = sys.getswitchinterval()
    with switch_interval(0.02):
        with switch_interval(0.02):
            assert sys.getswitchinterval() == 0.02
        assert sys.getswitchinterval() == 0.02  # the outer round still runs
    assert sys.getswitchinterval() == before
