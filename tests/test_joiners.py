"""Models that join: the join-history pattern (``joined_since_last``), listener replay, decorators.

A joiner must get the history it missed exactly once and never collide with
the coordinator's rounds; a listener registered after ``init()`` must hear of
the models already there; the listener methods return the listener.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _orchestrator_fixtures import Recorder
from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult, ModelRunner
from mrclient.cluster.roster import RosterKeeper
from mrclient.testing import LocalModelNode, LocalOrchestrator

SUCCESS = ModelPredictResult.Status.SUCCESS
WAIT = 10.0
CRUNCH = "joiners"


class JoinBase:
    """The base class of the models here."""


class Ledger(JoinBase):
    """Records every observation it is fed, in order, under its class name (one subclass per node)."""

    fed: dict[str, list[int]] = {}
    hold_at: int | None = None  # ``tick(hold_at)`` waits for ``release``
    holding = threading.Event()
    release = threading.Event()

    def __init__(self) -> None:
        self.seen = Ledger.fed.setdefault(type(self).__name__, [])

    def catch_up(self, history: list[int]) -> int:
        self.seen.extend(history)
        return len(self.seen)

    def tick(self, value: int) -> int:
        if value == Ledger.hold_at and type(self).__name__ == "First":
            Ledger.holding.set()
            Ledger.release.wait(WAIT)
        self.seen.append(value)
        return len(self.seen)


class First(Ledger):
    pass


class Second(Ledger):
    pass


@pytest.fixture
def orchestrator() -> Iterator[LocalOrchestrator]:
    Ledger.fed.clear()
    Ledger.hold_at = None
    Ledger.holding.clear()
    Ledger.release.clear()
    with LocalOrchestrator(crunch_id=CRUNCH) as orchestrator:
        yield orchestrator
    Ledger.release.set()


@pytest.fixture
def runner(orchestrator: LocalOrchestrator) -> Iterator[Callable[..., DynamicSubclassModelConcurrentRunner]]:
    """Factory: a runner on ``orchestrator`` (not yet initialised); all closed after the test."""
    made: list[DynamicSubclassModelConcurrentRunner] = []

    def make(**options: Any) -> DynamicSubclassModelConcurrentRunner:
        settings: dict[str, Any] = dict(timeout=WAIT, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port,
                                        base_classname="JoinBase", retry_backoff_factor=0.01)
        settings.update(options)
        made.append(DynamicSubclassModelConcurrentRunner(**settings))
        return made[-1]

    yield make
    Ledger.release.set()
    for made_runner in made:
        made_runner.close()


def add(orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode], cls: type, name: str) -> str:
    return orchestrator.add_model(port=local_node(classes=[JoinBase, cls]).port, name=name)


def started_on_first(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runner: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> DynamicSubclassModelConcurrentRunner:
    """A runner, initialised on a crunch of one model, "first"."""
    add(orchestrator, local_node, First, "first")
    coordinator = runner()
    coordinator.init(timeout=WAIT)
    return coordinator


# -- the roster, from plain data ------------------------------------------------------------------


def fake_runners(count: int) -> list[ModelRunner]:
    return [cast(ModelRunner, object()) for _ in range(count)]


def test_the_first_roster_has_every_model_joined_and_the_next_only_the_new_ones() -> None:
    a, b, c = fake_runners(3)
    keeper = RosterKeeper()
    first = keeper.next([a, b])
    assert first.models == (a, b) and first.joined == (a, b)
    second = keeper.next([a, b, c])
    assert second.models == (a, b, c) and second.joined == (c,)
    assert keeper.next([b, c]).joined == ()
    assert keeper.next([a, b, c]).joined == (a,), "a runner that left and is back is a joiner again"


@pytest.mark.serial  # hypothesis' deadline: 200 ms an example, by the wall clock
@given(st.lists(st.sets(st.integers(0, 7)), max_size=30))
def test_each_stretch_of_presence_is_joined_exactly_once(snapshots: list[set[int]]) -> None:
    runners = fake_runners(8)
    keeper = RosterKeeper()
    previous: set[int] = set()
    for present in snapshots:
        ready = [runners[i] for i in sorted(present)]
        roster = keeper.next(ready)
        assert roster.models == tuple(ready)
        assert roster.joined == tuple(runners[i] for i in sorted(present - previous))
        previous = present


# -- the join-history pattern, live -----------------------------------------------------------------


def test_a_model_that_joins_mid_tick_gets_its_history_once_and_is_never_charged(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runner: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    coordinator = started_on_first(orchestrator, local_node, runner)
    Ledger.hold_at = 2

    def join_while_tick_2_runs() -> None:
        assert Ledger.holding.wait(WAIT)
        add(orchestrator, local_node, Second, "second")
        assert coordinator.wait_for_models(2, WAIT)  # ready now, in the middle of the round
        Ledger.release.set()

    joiner = threading.Thread(target=join_while_tick_2_runs)
    joiner.start()
    history: list[int] = []
    results: list[ModelPredictResult] = []
    caught_up: list[tuple[str | None, ...]] = []
    for step in range(5):
        roster = coordinator.joined_since_last()
        if roster.joined and history:
            catch_up = coordinator.call("catch_up", args=[history], model_runs=roster.joined)
            caught_up.append(tuple(m.model_name for m in catch_up))
            results += catch_up.values()
        results += coordinator.call("tick", args=[step], model_runs=roster.models).values()
        history.append(step)
    joiner.join(WAIT)

    assert caught_up == [("second",)], "one catch-up, for the joiner only"
    assert Ledger.fed == {"First": [0, 1, 2, 3, 4], "Second": [0, 1, 2, 3, 4]}, "every tick once, in order"
    assert [r.status for r in results] == [SUCCESS] * len(results), "no collision: nothing timed out"
    assert all(m.consecutive_timeouts == 0 and m.consecutive_failures == 0 for m in coordinator.models)
    assert orchestrator.reports == []


def test_a_model_ready_after_the_roster_waits_for_the_next_step(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runner: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    coordinator = started_on_first(orchestrator, local_node, runner)
    roster = coordinator.joined_since_last()
    add(orchestrator, local_node, Second, "second")
    assert coordinator.wait_for_models(2, WAIT)
    assert [m.model_name for m in coordinator.call("tick", args=[0], model_runs=roster.models)] == ["first"]
    assert [m.model_name for m in coordinator.joined_since_last().joined] == ["second"]


# -- listeners: replay and decorators ------------------------------------------------------------


def names(recorder: Recorder) -> list[tuple[str, str | None]]:
    return [(kind, runner.model_name) for kind, runner in recorder.events]


def test_a_listener_registered_after_init_first_hears_of_the_models_already_there(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runner: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    add(orchestrator, local_node, First, "first")
    add(orchestrator, local_node, Second, "second")
    coordinator = runner()
    coordinator.init(timeout=WAIT)
    ready = coordinator.models
    replayed, future_only = Recorder(), Recorder()
    coordinator.on_model_joined(replayed.joined)
    coordinator.on_model_left(replayed.left)
    coordinator.on_model_joined(future_only.joined, replay=False)
    coordinator.on_model_left(future_only.left)
    third = orchestrator.add_model(port=local_node(classes=[JoinBase, First]).port, name="third")
    assert coordinator.wait_for_models(3, WAIT)
    orchestrator.stop_model(third)
    assert replayed.wait_count(4) and future_only.wait_count(2)
    assert [runner for _, runner in replayed.events[:2]] == ready, "the models already there, in join order"
    assert names(replayed)[2:] == [("joined", "third"), ("left", "third")]
    assert names(future_only) == [("joined", "third"), ("left", "third")]


def test_listeners_registered_during_a_burst_of_joins_hear_each_model_once(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runner: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    coordinator = runner()
    coordinator.init(timeout=WAIT)
    ports = [local_node(classes=[JoinBase, First]).port for _ in range(8)]
    heard = [Recorder() for _ in ports]
    for port, listener in zip(ports, heard, strict=True):  # each registers while the previous models are still joining
        orchestrator.add_model(port=port)
        coordinator.on_model_joined(listener.joined)
    assert coordinator.wait_for_models(len(ports), WAIT)
    for listener in heard:
        assert listener.wait_count(len(ports))
        assert sorted(id(r) for _, r in listener.events) == sorted(id(r) for r in coordinator.models)


def test_the_listener_methods_work_as_decorators(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode],
    runner: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    coordinator = runner()
    heard = Recorder()

    @coordinator.on_model_joined
    def joined(model: ModelRunner) -> None:
        heard.joined(model)

    @coordinator.on_model_left
    def left(model: ModelRunner) -> None:
        heard.left(model)

    assert callable(joined) and callable(left), "the decorators give the function back"
    assert joined.__name__ == "joined" and left.__name__ == "left"
    model_id = add(orchestrator, local_node, First, "first")
    coordinator.init(timeout=WAIT)
    orchestrator.stop_model(model_id)
    assert heard.wait_count(2)
    assert names(heard) == [("joined", "first"), ("left", "first")], "registered before init: no double"
