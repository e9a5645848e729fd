"""Per-model statistics, round summaries and the connection's state, against real local nodes.

The recording rules themselves (what counts as what, the latency window, the
percentiles) are checked first with plain data and no sockets.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from _crunch_kit import Crunch
from mrclient import ModelPredictResult, ModelRunner, RoundSummary
from mrclient.orchestrator.outbox import Outbox
from mrclient.stats import LATENCY_WINDOW, RECENT_ROUNDS, MethodCounts, ModelCounters, StatsBook, summarize
from mrclient.testing import LocalModelNode

SUCCESS = ModelPredictResult.Status.SUCCESS
FAILED = ModelPredictResult.Status.FAILED
TIMEOUT = ModelPredictResult.Status.TIMEOUT
WAIT = 10.0
REST, LEFT = "SKIPPED: resting", "MODEL_LEFT: gone"


# -- the rules, with plain data ----------------------------------------------------------------


@dataclass(eq=False)
class _Model:
    """What the statistics read of a model runner; hashable by identity like one."""

    model_id: str
    model_name: str | None = None
    deployment_id: str = "d"
    target: str = "127.0.0.1:1"
    counters: ModelCounters = field(default_factory=ModelCounters)
    cooldown_calls_remaining: int = 0
    left_at: float | None = None
    left_reason: str | None = None


def _model(model_id: str) -> _Model:
    return _Model(model_id)


def _book() -> StatsBook:
    return StatsBook(success=SUCCESS, timeout=TIMEOUT, rest_detail=REST, left_detail=LEFT)


def _result(status: ModelPredictResult.Status, exec_us: int, detail: str | None = None) -> Any:
    return SimpleNamespace(status=status, exec_time_us=exec_us, detail=detail)


def test_percentiles_cover_the_recent_window_only() -> None:
    book, model = _book(), _model("m")
    for ms in range(1, 101):
        book.record("tick", {model: _result(SUCCESS, ms * 1000)}, 0.0, 0.001)
    stats = model.counters.snapshot(model)
    assert (stats.latency_p50_ms, stats.latency_p90_ms, stats.latency_p99_ms) == (50.0, 90.0, 99.0)
    assert stats.latency_samples == 100 and stats.calls == stats.successes == 100

    for _ in range(LATENCY_WINDOW):  # the window fills with 1 s calls: the old ones are gone
        book.record("tick", {model: _result(SUCCESS, 1_000_000)}, 0.0, 1.0)
    stats = model.counters.snapshot(model)
    assert stats.latency_p50_ms == stats.latency_p99_ms == 1000.0 and stats.latency_samples == LATENCY_WINDOW
    assert stats.calls == 100 + LATENCY_WINDOW


def _every_outcome() -> dict[Any, Any]:
    """One round of five models, one per outcome: ok, failing, slow (timed out), resting (skipped), gone (left)."""
    return {
        _model("ok"): _result(SUCCESS, 2_000),
        _model("failing"): _result(FAILED, 3_000, "FAILED: boom"),
        _model("slow"): _result(TIMEOUT, 500_000, "DEADLINE_EXCEEDED"),
        _model("resting"): _result(TIMEOUT, 0, REST),
        _model("gone"): _result(FAILED, 0, LEFT),
    }


def test_each_outcome_counts_where_it_belongs_and_the_counts_add_up() -> None:
    book = _book()
    results = _every_outcome()
    summary = book.record("predict", results, 123.0, 0.5)

    assert (summary.method, summary.started_at, summary.wall_time_s, summary.called) == ("predict", 123.0, 0.5, 5)
    assert (summary.successes, summary.failures, summary.timeouts) == (1, 2, 2)
    assert (summary.rest_skips, summary.left) == (1, 1)
    assert [model_id for model_id, _ in summary.slowest] == ["slow", "failing", "ok"]  # neither skip nor left
    assert summary.slowest[0] == ("slow", 500.0)

    snapshots = {model.model_id: model.counters.snapshot(model) for model in results}
    for stats in snapshots.values():
        assert stats.calls == 1 == stats.successes + stats.failures + stats.timeouts
    assert snapshots["failing"].last_error == "FAILED: boom" and snapshots["failing"].last_status == "FAILED"
    assert snapshots["slow"].last_error == "DEADLINE_EXCEEDED" and snapshots["slow"].latency_p90_ms == 500.0
    assert snapshots["resting"].rest_skips == 1 and snapshots["resting"].latency_samples == 0
    assert (snapshots["resting"].last_status, snapshots["resting"].last_error) == ("TIMEOUT", REST)  # as its result
    assert snapshots["gone"].latency_samples == 0 and snapshots["gone"].last_error == LEFT
    assert snapshots["ok"].last_error is None and snapshots["ok"].last_latency_ms == 2.0

    totals = book.totals()
    assert totals.rounds == {"predict": 1} and totals.round_seconds == {"predict": 0.5}
    assert totals.calls == {"SUCCESS": 1, "FAILED": 2, "TIMEOUT": 2}
    assert (totals.rest_skips, totals.left) == (1, 1)
    assert sum(totals.latency_buckets) == 3  # ok, failing, slow: the calls that reached a model
    assert totals.latency_sum_s == pytest.approx(0.505)


def test_counts_are_kept_per_method_and_add_up_to_the_models_totals() -> None:
    book, model = _book(), _model("m")
    for _ in range(3):
        book.record("tick", {model: _result(SUCCESS, 1_000)}, 0.0, 0.001)
    for _ in range(4):
        book.record("predict", {model: _result(FAILED, 2_000, "FAILED: boom")}, 0.0, 0.002)
    book.record("predict", {model: _result(TIMEOUT, 0, REST)}, 0.0, 0.0)
    stats = model.counters.snapshot(model)
    assert stats.by_method == {"tick": MethodCounts(3, 3, 0, 0, 0), "predict": MethodCounts(5, 0, 4, 1, 1)}
    assert (stats.calls, stats.successes, stats.failures, stats.timeouts, stats.rest_skips) == (8, 3, 4, 1, 1)
    assert str(stats.by_method["predict"]) == "4 failed, 1 timeout (1 rest)"
    totals = book.totals()
    assert totals.calls_by_method == {
        "tick": {"SUCCESS": 3, "FAILED": 0, "TIMEOUT": 0}, "predict": {"SUCCESS": 0, "FAILED": 4, "TIMEOUT": 1}
    }
    assert [(s.method, s.called) for s in totals.recent_rounds] == [("tick", 1)] * 3 + [("predict", 1)] * 5


def test_the_summary_of_an_unrecorded_round_is_the_recorded_ones() -> None:
    results = _every_outcome()
    made = summarize("predict", results, 123.0, 0.5, success=SUCCESS, timeout=TIMEOUT, rest_detail=REST, left_detail=LEFT)
    assert made == _book().record("predict", results, 123.0, 0.5)


def test_the_recent_rounds_are_the_last_ones_only() -> None:
    book, model = _book(), _model("m")
    for number in range(RECENT_ROUNDS + 5):
        book.record(f"r{number}", {model: _result(SUCCESS, 1_000)}, float(number), 0.001)
    recent = book.totals().recent_rounds
    assert len(recent) == RECENT_ROUNDS and recent[-1].method == f"r{RECENT_ROUNDS + 4}" and recent[0].started_at == 5.0


def test_outbox_counts_unsent_and_unconfirmed_together() -> None:
    outbox = Outbox()
    outbox.put("a")
    outbox.put("b")
    assert outbox.peek() == "a"
    outbox.mark_sent()
    assert outbox.counts() == (1, 1) and len(outbox) == 2


# -- against real nodes ------------------------------------------------------------------------


class StatsBase:
    """The base class of this file's models."""

    def work(self) -> str:
        return "base"

    def other(self) -> str:
        return "other"


class Quick(StatsBase):
    def work(self) -> str:
        return "quick"


class Sluggish(StatsBase):
    """Answers within the deadline, but slowly."""

    delay = 0.3
    interrupt = threading.Event()

    def work(self) -> str:
        Sluggish.interrupt.wait(Sluggish.delay)
        return "sluggish"


class Failing(StatsBase):
    def work(self) -> str:
        raise RuntimeError("boom")


class Hanging(StatsBase):
    release = threading.Event()

    def work(self) -> str:
        Hanging.release.wait(WAIT)
        return "late"


class Summaries:
    """Collects round summaries; waits are bounded."""

    def __init__(self) -> None:
        self.items: list[RoundSummary] = []
        self.threads: set[str] = set()
        self._changed = threading.Condition()

    def add(self, summary: RoundSummary) -> None:
        with self._changed:
            self.items.append(summary)
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def wait_count(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.items) >= count, WAIT)


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[Crunch]:
    Sluggish.interrupt.clear()
    Hanging.release.clear()
    with Crunch.running("stats", local_node, StatsBase, releases=(Sluggish.interrupt, Hanging.release),
                      max_consecutive_failures=0) as kit:
        yield kit


def _by_id(stats: dict[ModelRunner, Any]) -> dict[str, Any]:
    return {model.model_id: value for model, value in stats.items()}


def test_the_slow_model_the_failing_one_and_counts_that_add_up(crunch: Crunch) -> None:
    quick, sluggish, failing = crunch.add(Quick), crunch.add(Sluggish), crunch.add(Failing)
    before_init = time.time()
    runner = crunch.runner(3)
    summaries = Summaries()
    assert runner.on_round(summaries.add) == summaries.add  # returned: usable as a decorator

    rounds = 5
    seen: Counter[tuple[str, ModelPredictResult.Status]] = Counter()
    for _ in range(rounds):
        for model, result in runner.call("work").items():
            seen[model.model_id, result.status] += 1
    stats = _by_id(runner.stats())

    assert stats[sluggish].latency_p90_ms >= Sluggish.delay * 1000
    assert stats[quick].latency_p90_ms < stats[sluggish].latency_p90_ms
    assert stats[failing].last_status == "FAILED" and "boom" in stats[failing].last_error
    assert before_init <= stats[failing].last_error_at <= time.time()
    assert stats[quick].last_error is None and stats[quick].last_status == "SUCCESS"
    for model_id, model_stats in stats.items():
        assert model_stats.calls == rounds == model_stats.successes + model_stats.failures + model_stats.timeouts
        assert (model_stats.successes, model_stats.failures, model_stats.timeouts) == (
            seen[model_id, SUCCESS], seen[model_id, FAILED], seen[model_id, TIMEOUT]
        )
        assert model_stats.latency_samples == rounds
        assert before_init <= model_stats.joined_at <= time.time()
    model = next(m for m in runner.models if m.model_id == sluggish)
    assert model.stats == stats[sluggish]
    assert (model.stats.model_name, model.stats.address) == ("Sluggish", model.target)

    totals = runner.totals()
    assert totals.rounds == {"work": rounds}
    assert totals.calls == {"SUCCESS": 2 * rounds, "FAILED": rounds, "TIMEOUT": 0}
    assert sum(totals.latency_buckets) == 3 * rounds

    assert summaries.wait_count(rounds)
    assert summaries.threads == {"mrclient-rounds"}  # off the coordinator's thread
    for summary in summaries.items:
        assert (summary.method, summary.called, summary.successes, summary.failures, summary.timeouts) == (
            "work", 3, 2, 1, 0
        )
        assert summary.slowest[0][0] == sluggish and summary.wall_time_s >= Sluggish.delay
    assert [s.started_at for s in summaries.items] == sorted(s.started_at for s in summaries.items)


def test_a_hanging_model_times_out_then_rests(crunch: Crunch) -> None:
    hanging = crunch.add(Hanging)
    crunch.add(Quick)
    runner = crunch.runner(2, timeout=0.5, max_consecutive_timeouts=0)
    summaries = Summaries()
    runner.on_round(summaries.add)

    runner.call("work")
    runner.call("work")  # the hanging model rests: answered TIMEOUT without a call

    stats = _by_id(runner.stats())[hanging]
    assert (stats.calls, stats.timeouts, stats.rest_skips, stats.latency_samples) == (2, 2, 1, 1)
    # The timeout counts as the time the call waited: what was left of the round's 500 ms when it started,
    # a few hundred microseconds after the round did (gRPC's deadline may end it just before the round's).
    assert 450 <= stats.latency_p50_ms < 1500
    assert (stats.last_status, stats.last_latency_ms) == ("TIMEOUT", 0.0) and stats.last_error.startswith("SKIPPED")
    assert summaries.wait_count(2)
    assert [(s.timeouts, s.rest_skips) for s in summaries.items] == [(1, 0), (1, 1)]
    assert summaries.items[0].slowest[0][0] == hanging
    assert runner.totals().rest_skips == 1


def test_keep_stats_off_records_nothing_and_can_be_turned_on_between_rounds(crunch: Crunch) -> None:
    crunch.add(Quick)
    runner = crunch.runner(1, keep_stats=False)
    summaries = Summaries()
    runner.on_round(summaries.add)

    runner.call("work")
    (stats,) = runner.stats().values()
    assert stats.calls == 0 and stats.latency_p50_ms is None and runner.totals().rounds == {}
    assert stats.joined_at is not None  # the table is kept all the same

    runner.keep_stats = True
    runner.call("other")
    assert summaries.wait_count(1)
    assert [s.method for s in summaries.items] == ["other"]  # none for the round with statistics off
    (stats,) = runner.stats().values()
    assert stats.calls == 1 and runner.totals().rounds == {"other": 1}


def test_a_reconnected_model_keeps_its_history(crunch: Crunch) -> None:
    model_id = crunch.add(Quick)
    runner = crunch.runner(1)
    for _ in range(3):
        runner.call("work")
    (old,) = runner.models
    history = old.stats

    joined = threading.Event()
    runner.on_model_joined(lambda model: joined.set(), replay=False)
    fresh = runner.model_cluster.reconnect(old)
    assert fresh is not None and joined.wait(WAIT)
    runner.call("work")
    stats = _by_id(runner.stats())[model_id]
    assert stats.calls == history.calls + 1 and stats.joined_at == history.joined_at


def test_connection_state_counts_reconnects_and_reports(crunch: Crunch) -> None:
    crunch.add(Quick)
    started = time.time()
    runner = crunch.runner(1)
    state = runner.connection_state
    assert state.connected and state.reconnects == 0 and state.since is not None and state.since >= started
    assert (state.reports_pending, state.reports_unconfirmed, dict(state.reports_sent)) == (0, 0, {})

    dropped_at = time.time()
    crunch.orchestrator.drop_connections()
    assert crunch.orchestrator.wait_for_connections(2, WAIT)
    crunch.add(Quick)  # announced after the new init: once it joins, that init was applied
    assert runner.wait_for_models(2, WAIT)
    state = runner.connection_state
    assert state.connected and state.reconnects == 1 and state.since is not None and state.since >= dropped_at

    model = runner.models[0]
    runner.report_failure(model, "LOW_PERFORMANCE", "too slow")
    assert dict(runner.connection_state.reports_sent) == {"LOW_PERFORMANCE": 1}
    assert crunch.orchestrator.wait_for_reports(1, WAIT)

    runner.close()
    state = runner.connection_state
    assert not state.connected and state.since is not None and state.since >= dropped_at
