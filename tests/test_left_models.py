"""Models that left stay in ``runner.stats()``, marked with why and when, until the coordinator forgets them.

The keeper's rules (one row per model, the bound, the close on top of it)
are checked with plain data first; then, against real local nodes, each way
a model leaves: reported, stopped (and recovered), moved, redeployed, closed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from _crunch_kit import Crunch
from _html_tables import tables
from mrclient import DynamicSubclassModelConcurrentRunner, ModelRunner, ModelStats
from mrclient.stats import LEFT_MODELS_KEPT, LeftModels
from mrclient.testing import LocalModelNode

WAIT = 10.0


# -- the keeper, with plain data -----------------------------------------------------------------


@dataclass(eq=False)
class _Runner:
    model_id: str


def test_one_row_per_model_the_oldest_go_past_the_bound_and_a_close_is_kept_whole() -> None:
    left: LeftModels[_Runner] = LeftModels(limit=3)
    first = _Runner("m1")
    for runner in (first, _Runner("m2"), _Runner("m3")):
        left.add(runner)
    again = _Runner("m1")
    left.add(again)  # the same model leaves again: one row, the latest, moved to the end
    assert [runner.model_id for runner in left.runners()] == ["m2", "m3", "m1"] and left.get("m1") is again
    left.add(_Runner("m4"))
    assert [runner.model_id for runner in left.runners()] == ["m3", "m1", "m4"], "the oldest went past the bound"
    left.add_closed([_Runner(f"c{n}") for n in range(5)])
    assert len(left) == 8, "the models a close left are kept on top of the bound: after a close, every model"
    left.discard("m4")
    assert left.get("m4") is None and len(left) == 7
    assert left.clear() == 7 and left.runners() == []
    assert LeftModels().limit == LEFT_MODELS_KEPT == 1000


# -- against real nodes ----------------------------------------------------------------------------


class LeftBase:
    """The base class of this file's models."""

    def work(self) -> str:
        return "base"


class Steady(LeftBase):
    def work(self) -> str:
        return "steady"


class Failing(LeftBase):
    def work(self) -> str:
        raise RuntimeError("boom")


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[Crunch]:
    with Crunch.running("left", local_node, LeftBase) as kit:
        yield kit


class Leaves:
    """Counts the models that left and joined, as the runner's listeners hear them; waits are bounded."""

    def __init__(self, runner: DynamicSubclassModelConcurrentRunner) -> None:
        self.left: list[str] = []
        self.joined: list[str] = []
        self._changed = threading.Condition()
        runner.on_model_left(lambda model: self._note(self.left, model))
        runner.on_model_joined(lambda model: self._note(self.joined, model), replay=False)

    def _note(self, events: list[str], model: ModelRunner) -> None:
        with self._changed:
            events.append(model.model_id)
            self._changed.notify_all()

    def wait(self, events: list[str], count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(events) >= count, WAIT)


def _by_id(runner: DynamicSubclassModelConcurrentRunner, **options: bool) -> dict[str, ModelStats]:
    return {stats.model_id: stats for stats in runner.stats(**options).values()}


def test_a_reported_model_stays_in_stats_marked_reported_with_its_calls_and_shows_so(crunch: Crunch) -> None:
    steady, failing = crunch.add(Steady), crunch.add(Failing)
    runner = crunch.runner(2, max_consecutive_failures=1)
    before = time.time()
    for _ in range(2):  # one failure is allowed, the second is reported
        runner.call("work")
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert [model.model_id for model in runner.models] == [steady]

    stats = _by_id(runner)
    gone = stats[failing]
    assert (gone.state, gone.left_reason) == ("left", "reported MULTIPLE_FAILED")
    assert gone.left_at is not None and before <= gone.left_at <= time.time()
    assert gone.left_datetime is not None and gone.left_datetime.timestamp() == pytest.approx(gone.left_at)
    assert (gone.calls, gone.failures) == (2, 2), "the round that led to the report is counted"
    assert "boom" in (gone.last_error or "")
    assert stats[steady].state == "ready" and list(stats) == [steady, failing], "the ready ones first"
    assert set(_by_id(runner, include_left=False)) == {steady}
    assert sum(s.calls for s in stats.values()) == sum(runner.totals().calls.values()) == 4

    table = runner.stats()
    [html] = tables(table._repr_html_())
    assert html.caption == "2 models, 1 left, 4 calls"
    assert html.by("model")[failing]["state"] == "left: reported MULTIPLE_FAILED"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", html.by("model")[failing]["left at"])
    assert html.by("model")[steady]["state"] == "ready" and html.by("model")[steady]["left at"] == ""
    text = repr(table)
    assert text.startswith("<ModelStatsTable: 2 models, 1 left, 4 calls>\n")
    assert re.search(rf"^  {failing} .* left: reported MULTIPLE_FAILED ", text, re.MULTILINE), text
    printed = repr(gone)
    assert printed.startswith(f"<ModelStats {failing} 'Failing' left: reported MULTIPLE_FAILED>\n"), printed
    assert re.search(r"^  left        \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: reported MULTIPLE_FAILED$", printed, re.MULTILINE)
    [record] = [record for record in table.to_records() if record["model_id"] == failing]
    assert (record["state"], record["left_reason"]) == ("left", "reported MULTIPLE_FAILED")
    assert record["left"] == gone.left_datetime

    [row] = tables(runner._repr_html_())[0].rows[:1]
    assert (row["model"], row["state"][:31]) == (failing, "left: reported MULTIPLE_FAILED "), "who left comes first"


def test_after_close_stats_has_every_model_marked_closed_and_totals_every_call(crunch: Crunch) -> None:
    ids = [crunch.add(Steady), crunch.add(Steady), crunch.add(Failing)]
    runner = crunch.runner(3, max_consecutive_failures=1)
    for _ in range(3):
        runner.call("work")
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    closing = time.time()
    runner.close()

    stats = _by_id(runner)
    assert set(stats) == set(ids), "every model that was ready, and the one reported before"
    reasons = {model_id: (s.state, s.left_reason) for model_id, s in stats.items()}
    assert reasons == {
        ids[0]: ("left", "closed"), ids[1]: ("left", "closed"), ids[2]: ("left", "reported MULTIPLE_FAILED")
    }, "a model reported before the close keeps its own reason"
    assert all(s.left_at is not None and s.left_at >= closing for s in (stats[ids[0]], stats[ids[1]]))
    assert [s.calls for s in stats.values()] != [0, 0, 0]
    assert sum(s.calls for s in stats.values()) == sum(runner.totals().calls.values()) == 3 + 3 + 2
    assert _by_id(runner, include_left=False) == {}

    [table] = tables(runner._repr_html_())
    assert table.caption == "2 models ready when the runner closed, 1 left"
    assert sorted(table.column("model")) == sorted(ids)


def test_a_stopped_model_is_marked_stopped_and_its_history_goes_on_when_it_recovers(crunch: Crunch) -> None:
    model_id = crunch.add(Steady)
    runner = crunch.runner(1)
    leaves = Leaves(runner)
    runner.call("work")
    history = _by_id(runner)[model_id]

    crunch.orchestrator.stop_model(model_id)
    assert leaves.wait(leaves.left, 1)
    stopped = _by_id(runner)[model_id]
    assert (stopped.state, stopped.left_reason, stopped.calls) == ("left", "stopped", 1)

    crunch.orchestrator.recover_model(model_id)  # the same deployment: its history goes on
    assert leaves.wait(leaves.joined, 1)
    runner.call("work")
    [back] = runner.stats().values()
    assert (back.state, back.left_reason, back.left_at) == ("ready", None, None)
    assert back.calls == 2 and back.joined_at == history.joined_at


def test_a_moved_model_keeps_its_history(crunch: Crunch) -> None:
    model_id = crunch.add(Steady)
    runner = crunch.runner(1)
    leaves = Leaves(runner)
    runner.call("work")
    elsewhere = crunch.start_node(classes=[LeftBase, Steady])
    crunch.orchestrator.move_model(model_id, port=elsewhere.port)
    assert leaves.wait(leaves.joined, 1)
    runner.call("work")
    [moved] = runner.stats().values()
    assert moved.state == "ready" and moved.calls == 2 and moved.address.endswith(f":{elsewhere.port}")


def test_a_redeployed_model_shows_redeployed_until_its_new_deployment_joins_then_a_new_history(
    crunch: Crunch, local_node: Callable[..., LocalModelNode]
) -> None:
    model_id = crunch.add(Steady)
    node = crunch.nodes[model_id]
    runner = crunch.runner(1, report_failure=False)
    leaves = Leaves(runner)
    runner.call("work")
    old = runner.models[0].deployment_id

    silent = local_node(classes=[LeftBase, Steady])
    silent_port = silent.port
    silent.stop()  # nothing listens there: the new deployment does not come up
    crunch.orchestrator.redeploy_model(model_id, port=silent_port)
    assert leaves.wait(leaves.left, 1)
    [waiting] = runner.stats().values()
    assert (waiting.state, waiting.left_reason, waiting.deployment_id, waiting.calls) == ("left", "redeployed", old, 1)

    new = crunch.orchestrator.redeploy_model(model_id, port=node.port)
    assert leaves.wait(leaves.joined, 1)
    [fresh] = runner.stats().values()
    assert (fresh.state, fresh.deployment_id, fresh.calls) == ("ready", new, 0), "a new deployment, a new history"
    assert sum(runner.totals().calls.values()) == 1, "the old deployment's call stays in the totals"


def test_forget_left_drops_them_from_stats_and_the_totals_keep_their_calls(crunch: Crunch) -> None:
    steady, failing = crunch.add(Steady), crunch.add(Failing)
    runner = crunch.runner(2, max_consecutive_failures=1)
    for _ in range(2):
        runner.call("work")
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert set(_by_id(runner)) == {steady, failing}
    assert runner.forget_left() == 1 and runner.forget_left() == 0
    assert set(_by_id(runner)) == {steady}
    assert sum(runner.totals().calls.values()) == 4
    runner.close()
    assert {s.left_reason for s in runner.stats().values()} == {"closed"}
