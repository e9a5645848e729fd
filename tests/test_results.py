"""Round results, the runner and its statistics as people read them: dicts still, tables when shown.

Against real local nodes: a crunch of three models that answer (SUCCESS),
raise (FAILED) and miss the deadline (TIMEOUT). The HTML a notebook would
show is parsed back (tests/_html_tables.py) and checked against the round
that produced it. Also here: a round cut short by ``close()`` keeps the
failures that had already come back.
"""

from __future__ import annotations

import copy
import datetime
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _crunch_kit import Crunch
from _html_tables import tables, text_outside_tables
from mrclient import (
    LATENCY_BUCKETS,
    DynamicSubclassModelConcurrentRunner,
    DynamicSubclassModelRunner,
    MethodCounts,
    ModelPredictResult,
    ModelRunner,
    ModelStatsTable,
    RoundResults,
    RoundSummary,
)
from mrclient._support.tables import STATUS_COLOURS
from mrclient.runners import MODEL_LEFT
from mrclient.testing import LocalModelNode

SUCCESS = ModelPredictResult.Status.SUCCESS
FAILED = ModelPredictResult.Status.FAILED
TIMEOUT = ModelPredictResult.Status.TIMEOUT
WAIT = 10.0
DEADLINE = 0.5


class ShownBase:
    """The base class of this file's models: ``tick`` answers for all of them."""

    def tick(self, value: int) -> None:
        return None

    def predict(self) -> Any:
        return None


class Answers(ShownBase):
    def predict(self) -> Any:
        return {"location": 19.5, "note": "a long answer " * 10}


class Fails(ShownBase):
    def predict(self) -> Any:
        raise RuntimeError("no prediction today")


class Late(ShownBase):
    """Misses the round's deadline; released at teardown."""

    release = threading.Event()

    def predict(self) -> Any:
        Late.release.wait(WAIT)
        return "late"


class Held(ShownBase):
    """Holds its call until released: a round still under way."""

    started = threading.Event()
    release = threading.Event()

    def predict(self) -> Any:
        Held.started.set()
        Held.release.wait(WAIT)
        return "released"


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[Crunch]:
    Late.release.clear()
    Held.started.clear()
    Held.release.clear()
    with Crunch.running("shown", local_node, ShownBase, releases=(Late.release, Held.release), timeout=DEADLINE,
                      max_consecutive_failures=0, max_consecutive_timeouts=0) as kit:
        yield kit


def three_models(crunch: Crunch, **kwargs: Any) -> tuple[DynamicSubclassModelConcurrentRunner, dict[str, str]]:
    """A runner on a SUCCESS, a FAILED and a TIMEOUT model; ``{name: model_id}``."""
    ids = {cls.__name__: crunch.add(cls) for cls in (Answers, Fails, Late)}
    return crunch.runner(3, **kwargs), ids


def by_id(results: dict[ModelRunner, Any]) -> dict[str, Any]:
    return {model.model_id: value for model, value in results.items()}


# -- RoundResults: the dict it always was --------------------------------------------------------------


def test_round_results_are_the_plain_dict_of_the_round(crunch: Crunch) -> None:
    runner, ids = three_models(crunch)
    summaries: list[RoundSummary] = []
    delivered = threading.Event()
    runner.on_round(lambda summary: (summaries.append(summary), delivered.set()))
    started = time.time()
    results = runner.call("predict")

    assert type(results) is RoundResults and isinstance(results, dict)
    plain = dict(results.items())
    assert results == plain and plain == results and not (results != plain)
    assert list(results) == list(plain) and list(results.values()) == list(plain.values())
    assert {**results} == plain and copy.copy(results) == plain
    statuses = {model_id: result.status for model_id, result in by_id(results).items()}
    assert statuses == {ids["Answers"]: SUCCESS, ids["Fails"]: FAILED, ids["Late"]: TIMEOUT}
    assert by_id(results)[ids["Answers"]].result["location"] == 19.5

    summary = results.summary
    assert (summary.method, summary.called, summary.successes, summary.failures, summary.timeouts) == (
        "predict", 3, 1, 1, 1
    )
    assert started <= summary.started_at <= time.time() and summary.wall_time_s >= DEADLINE
    assert results.method == "predict" and results.wall_time_s == summary.wall_time_s
    assert delivered.wait(WAIT) and summaries == [summary], "the summary the on_round listeners got"

    for method in ("tick",):  # every kind of round returns it
        assert type(runner.call(method, args=[1])) is RoundResults


def test_a_round_not_recorded_still_has_its_summary(crunch: Crunch) -> None:
    runner, _ = three_models(crunch, keep_stats=False)
    results = runner.call("predict")
    summary = results.summary
    assert (summary.method, summary.called, summary.successes, summary.failures, summary.timeouts) == (
        "predict", 3, 1, 1, 1
    )
    assert summary.slowest[0][1] >= DEADLINE * 1000 * 0.9 and math.isfinite(summary.wall_time_s)
    assert runner.totals().rounds == {}, "nothing recorded"


def test_to_records_needs_no_pandas_and_to_frame_names_the_extra(
    crunch: Crunch, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, ids = three_models(crunch)
    results = runner.call("predict")
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError

    records = results.to_records()
    assert [record["model_id"] for record in records] == [model.model_id for model in results]
    rows = {record["model_id"]: record for record in records}
    for model, result in results.items():
        row = rows[model.model_id]
        assert (row["status"], row["result"], row["detail"]) == (result.status.value, result.result, result.detail)
        assert row["latency_ms"] == result.exec_time_us / 1000
        assert row["model_name"] == model.model_name and row["cruncher"] == model.infos["cruncher_name"]
        assert all(type(value) in (str, float, bool, dict, type(None)) for value in row.values())
    assert "no prediction today" in rows[ids["Fails"]]["detail"]

    for to_frame in (results.to_frame, runner.stats().to_frame, runner.totals().to_frame):
        with pytest.raises(ImportError, match=re.escape("pip install '.[notebook]'")):
            to_frame()


def test_to_frame_with_pandas(crunch: Crunch) -> None:
    pandas = pytest.importorskip("pandas")
    runner, ids = three_models(crunch)
    results = runner.call("predict")
    table = results.to_frame()
    assert isinstance(table, pandas.DataFrame) and table.index.name == "model_id"
    assert sorted(table.index) == sorted(ids.values())
    assert {model_id: table.loc[model_id, "status"] for model_id in table.index} == {
        model.model_id: result.status.value for model, result in results.items()
    }
    assert table.loc[ids["Late"], "latency_ms"] >= DEADLINE * 1000 * 0.9

    stats = runner.stats().to_frame()
    assert sorted(stats.index) == sorted(ids.values()) and stats.loc[ids["Fails"], "failures"] == 1
    assert isinstance(stats.loc[ids["Fails"], "joined"], (datetime.datetime, pandas.Timestamp))
    totals = runner.totals().to_frame()
    assert list(totals.index) == ["predict"] and totals.loc["predict", "TIMEOUT"] == 1


# -- what a notebook shows ------------------------------------------------------------------------------


def test_the_results_table_has_one_row_per_model_and_the_rounds_counts(crunch: Crunch) -> None:
    runner, ids = three_models(crunch)
    results = runner.call("predict")
    page = results._repr_html_()
    [table] = tables(page)

    assert table.header == ["model", "name", "cruncher", "status", "latency ms", "result", "detail"]
    assert table.column("model") == [ids["Fails"], ids["Late"], ids["Answers"]], "trouble first"
    rows = table.by("model")
    for model, result in results.items():
        row = rows[model.model_id]
        assert (row["status"], row["name"], row["cruncher"]) == (
            result.status.value, model.model_name, model.infos["cruncher_name"]
        )
        assert float(row["latency ms"]) == pytest.approx(result.exec_time_us / 1000, abs=1)
    assert "no prediction today" in rows[ids["Fails"]]["detail"]
    assert rows[ids["Answers"]]["result"].startswith("{'location': 19.5") and rows[ids["Answers"]]["result"].endswith("…")
    assert rows[ids["Late"]]["detail"].startswith("DEADLINE_EXCEEDED")
    wall_ms = round(results.wall_time_s * 1000)
    assert re.fullmatch(
        rf"predict at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d: 3 models, 1 SUCCESS, 1 FAILED, 1 TIMEOUT in {wall_ms} ms",
        table.caption,
    ), table.caption
    for status in ("SUCCESS", "FAILED", "TIMEOUT"):  # each status in its colour
        assert f"background:{STATUS_COLOURS[status]};color:#fff;" in page

    text = repr(results)
    assert text.startswith(f"<RoundResults {table.caption}>")
    for model_id, status in ((ids["Answers"], "SUCCESS"), (ids["Fails"], "FAILED"), (ids["Late"], "TIMEOUT")):
        assert re.search(rf"^  {model_id} .* {status} ", text, re.MULTILINE), text


def test_a_large_round_shows_its_trouble_first_and_counts_the_rest() -> None:
    models = [
        DynamicSubclassModelRunner(
            base_classname="a.B", deployment_id=f"d{n}", model_id=f"m{n}", model_name=None, ip="127.0.0.1", port=1
        )
        for n in range(250)
    ]
    results = RoundResults(
        ((model, ModelPredictResult(model, n, SUCCESS if n != 240 else FAILED, 1000, None)) for n, model in
         enumerate(models)),
        method="tick",
    )  # fmt: skip
    [table] = tables(results._repr_html_())
    assert len(table.rows) == 200 and table.rows[0]["model"] == "m240" and table.rows[0]["status"] == "FAILED"
    assert table.notes == ["… 50 more models (to_frame() has them all)"]
    assert table.caption == "tick: 250 models, 249 SUCCESS, 1 FAILED, 0 TIMEOUT", "no start, no wall time: not said"
    assert len(results.to_records()) == 250 and "… 230 more" in repr(results)


def test_the_runner_says_what_it_is(crunch: Crunch) -> None:
    ids = {cls.__name__: crunch.add(cls) for cls in (Answers, Fails, Late)}
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=DEADLINE, crunch_id="shown", host="127.0.0.1", port=crunch.orchestrator.port,
        base_classname="ShownBase", max_consecutive_failures=0, max_consecutive_timeouts=10,
    )  # fmt: skip
    crunch.runners.append(runner)
    url = f"ws://127.0.0.1:{crunch.orchestrator.port}"
    assert repr(runner) == f"<DynamicSubclassModelConcurrentRunner crunch='shown' {url} not started, 0 ready, 0 rounds>"
    runner.init(timeout=WAIT)
    assert runner.wait_for_models(3, WAIT)
    runner.call("tick", args=[1])
    runner.call("predict")
    assert repr(runner) == f"<DynamicSubclassModelConcurrentRunner crunch='shown' {url} connected, 3 ready, 2 rounds>"

    page = runner._repr_html_()
    head = text_outside_tables(page)
    assert repr(runner) in head and "last round: predict at" in head
    assert "3 called, 1 SUCCESS, 1 FAILED, 1 TIMEOUT in " in head
    [table] = tables(page)
    assert table.caption == "3 models ready"
    assert table.header == [
        "model", "name", "cruncher", "state", "p50 ms", "p90 ms", "calls", "ok", "failures in a row",
        "timeouts in a row", "last", "last error",
    ]  # fmt: skip
    rows = table.by("model")
    assert set(rows) == set(ids.values())
    models = {model.model_id: model for model in runner.models}
    for model_id, row in rows.items():
        stats = models[model_id].stats
        assert (row["calls"], row["ok"], row["last"]) == (str(stats.calls), str(stats.successes), stats.last_status)
        assert row["failures in a row"] == str(models[model_id].consecutive_failures)
        assert row["timeouts in a row"] == str(models[model_id].consecutive_timeouts)
    assert table.column("model")[0] == ids["Late"], "trouble first"
    late = rows[ids["Late"]]
    assert late["state"] == "resting" and late["timeouts in a row"] == "1", "a timeout makes a model rest"
    assert float(late["p90 ms"]) >= DEADLINE * 1000 * 0.9 and late["last error"].startswith("DEADLINE_EXCEEDED")
    fails = rows[ids["Fails"]]
    assert (fails["state"], fails["failures in a row"], fails["last"]) == ("ready", "1", "FAILED")
    assert fails["last error"].startswith("MODEL_FAILED: The model raised an exception: no prediction")
    assert rows[ids["Answers"]]["last error"] == "" and rows[ids["Answers"]]["last"] == "SUCCESS"

    runner.close()
    assert repr(runner) == f"<DynamicSubclassModelConcurrentRunner crunch='shown' {url} closed, 0 ready, 2 rounds>"


def test_stats_and_totals_show_as_tables_with_counts_per_method(crunch: Crunch) -> None:
    failing = crunch.add(Fails)
    answering = crunch.add(Answers)
    runner = crunch.runner(2)
    for number in range(3):
        runner.call("tick", args=[number])
    for _ in range(4):
        runner.call("predict")

    stats = runner.stats()
    assert type(stats) is ModelStatsTable and stats == {model: model.stats for model in runner.models}
    mine = by_id(stats)[failing]
    assert (mine.calls, mine.successes, mine.failures) == (7, 3, 4), "in total"
    assert mine.by_method == {"tick": MethodCounts(3, 3, 0, 0, 0), "predict": MethodCounts(4, 0, 4, 0, 0)}
    assert by_id(stats)[answering].by_method == {"tick": MethodCounts(3, 3), "predict": MethodCounts(4, 4)}
    totals = runner.totals()
    assert totals.calls_by_method == {
        "tick": {"SUCCESS": 6, "FAILED": 0, "TIMEOUT": 0}, "predict": {"SUCCESS": 4, "FAILED": 4, "TIMEOUT": 0}
    }
    assert [summary.method for summary in totals.recent_rounds] == ["tick"] * 3 + ["predict"] * 4

    [table] = tables(stats._repr_html_())
    assert table.caption == "2 models, 14 calls"
    row = table.by("model")[failing]
    assert (row["calls"], row["ok"], row["failed"], row["by method"]) == ("7", "3", "4", "tick: 3 ok; predict: 4 failed")
    assert row["last"] == "FAILED" and row["last error"].startswith("MODEL_FAILED: The model raised an exception")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["joined"])
    assert "\n  by method   tick: 3 ok; predict: 4 failed\n" in repr(mine), repr(mine)
    assert [record["method"] for record in stats.to_records(by_method=True) if record["model_id"] == failing] == [
        "tick", "predict"
    ]

    by_method, histogram = tables(totals._repr_html_())
    assert by_method.caption == "7 rounds, 14 calls: 10 SUCCESS, 4 FAILED, 0 TIMEOUT; 0 rest skips, 0 left mid-round"
    assert by_method.by("method")["predict"] == {
        "method": "predict", "rounds": "4", "mean round ms": by_method.by("method")["predict"]["mean round ms"],
        "calls": "8", "SUCCESS": "4", "FAILED": "4", "TIMEOUT": "0",
    }
    assert sum(int(count) for count in histogram.column("calls")) == 14
    assert histogram.column("latency")[:3] == ["≤ 1 ms", "≤ 2.5 ms", "≤ 5 ms"]


def test_times_read_as_datetimes_and_the_histogram_has_its_bounds(crunch: Crunch) -> None:
    crunch.add(Answers)
    runner = crunch.runner(1)
    runner.call("predict")
    (stats,) = runner.stats().values()
    assert stats.joined_at is not None and stats.last_call_at is not None
    joined = stats.joined_datetime
    assert joined is not None and joined.tzinfo is not None
    assert joined == datetime.datetime.fromtimestamp(stats.joined_at, datetime.timezone.utc)
    assert stats.last_error_datetime is None and stats.last_call_datetime is not None
    text = repr(stats)
    assert f"\n  joined      {joined.astimezone():%Y-%m-%d %H:%M:%S}, " in text and str(stats.joined_at) not in text

    totals = runner.totals()
    assert not re.search(r"\d\.\d{4,}", repr(totals)), repr(totals)
    assert [bound for bound, _ in totals.latency_histogram] == [*LATENCY_BUCKETS, math.inf]
    assert [count for _, count in totals.latency_histogram] == list(totals.latency_buckets)
    assert sum(count for _, count in totals.latency_histogram) == 1
    assert "\n  latency ≤ " in repr(totals), repr(totals)
    state = runner.connection_state
    assert state.since_datetime == datetime.datetime.fromtimestamp(state.since or 0, datetime.timezone.utc)
    summary = runner.call("predict").summary
    assert summary.started_datetime is not None and f"{summary.started_datetime:%H:%M:%S}" in str(summary)


# -- a round cut short by close() ---------------------------------------------------------------------

#: Set once the named model's answer is back in the client (its runner's execute() returned).
ANSWERED: dict[str, threading.Event] = {}


class _AnswerSignallingRunner(DynamicSubclassModelRunner):
    def execute(self, request: Any, timeout: float | None) -> Any:
        outcome = super().execute(request, timeout)
        event = ANSWERED.get(self.model_name or "")
        if event is not None:
            event.set()
        return outcome


class _SignallingConcurrentRunner(DynamicSubclassModelConcurrentRunner):
    def create_model_runner(self, **kwargs: Any) -> DynamicSubclassModelRunner:
        return _AnswerSignallingRunner(
            base_classname=self.base_classname, instance_args=self.instance_args,
            instance_kwargs=self.instance_kwargs, **self.runner_options(), **kwargs,
        )  # fmt: skip


def test_a_round_cut_by_close_keeps_the_failure_that_had_come_back(crunch: Crunch) -> None:
    failing, held = crunch.add(Fails), crunch.add(Held)
    ANSWERED.clear()
    ANSWERED["Fails"] = threading.Event()
    runner = crunch.runner(2, runner_class=_SignallingConcurrentRunner, timeout=WAIT * 3)
    outcome: list[Any] = []
    caller = threading.Thread(target=lambda: outcome.append(runner.call("predict")), name="coordinator")
    caller.start()
    assert ANSWERED["Fails"].wait(WAIT) and Held.started.wait(WAIT), "the failure is back, the other call runs"
    runner.close()
    caller.join(WAIT)
    assert not caller.is_alive()
    (results,) = outcome
    got = {model_id: (result.status, result.detail) for model_id, result in by_id(results).items()}
    assert got[held] == (FAILED, MODEL_LEFT), "the call the close cut"
    status, detail = got[failing]
    assert status is FAILED and detail is not None and "no prediction today" in detail, got
    assert results.summary.left == 1 and results.summary.failures == 2


def test_a_table_of_many_models_shows_who_left_then_trouble_and_counts_the_rest() -> None:
    from mrclient.concurrent.overview import model_row, model_table_html, table_rows

    models = [
        DynamicSubclassModelRunner(
            base_classname="a.B", deployment_id=f"d{n}", model_id=f"m{n}", model_name=None, ip="127.0.0.1", port=1
        )
        for n in range(300)
    ]
    models[250].consecutive_failures = 2
    models[7].cooldown_calls_remaining = 1  # resting
    gone = model_row(models[0], state="left 10:00:00")
    rows, left_out = table_rows(models[1:], limit=50, first=[gone])
    assert [row["model_id"] for row in rows[:3]] == ["m0", "m7", "m250"] and len(rows) == 50
    assert left_out == 300 - 50
    [table] = tables(model_table_html(rows, left_out, caption="299 models ready"))
    assert [row["state"] for row in table.rows[:3]] == ["left 10:00:00", "resting", "ready"]
    assert table.rows[2]["failures in a row"] == "2" and table.notes == ["… 250 more models"]
