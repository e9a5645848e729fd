"""A failed init() is undone and can be tried again; no round runs on a runner that is not running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import free_port
from mrclient import (
    DynamicSubclassModelConcurrentRunner,
    InvalidCoordinatorUsageError,
    ModelPredictResult,
    ModelRunner,
    MrclientError,
    TrainInferModelConcurrentRunner,
)
from mrclient.cluster.listeners import ListenerDispatcher
from mrclient.testing import LocalModelNode, LocalOrchestrator

WAIT = 10.0
QUIET = 0.3
CRUNCH = "retry"
SUCCESS = ModelPredictResult.Status.SUCCESS
NOT_INITIALIZED = r"init\(\) has not succeeded on this runner: call init\(\) first"


class RetryBase:
    """The participants' base class."""


class Model(RetryBase):
    def predict(self) -> str:
        return "ok"


def mrclient_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before and t.name.startswith("mrclient")]


@pytest.fixture
def runners() -> Iterator[Callable[..., DynamicSubclassModelConcurrentRunner]]:
    made: list[DynamicSubclassModelConcurrentRunner] = []

    def make(port: int, **options: Any) -> DynamicSubclassModelConcurrentRunner:
        settings: dict[str, Any] = dict(
            timeout=5.0, crunch_id=CRUNCH, host="127.0.0.1", port=port, base_classname=f"{__name__}.RetryBase",
            retry_backoff_factor=0.01,
        )
        settings.update(options)
        made.append(DynamicSubclassModelConcurrentRunner(**settings))
        return made[-1]

    yield make
    for runner in made:
        runner.close()


@pytest.mark.serial
def test_init_fails_with_the_orchestrator_down_and_succeeds_on_the_same_runner_once_it_is_up(
    runners: Callable[..., DynamicSubclassModelConcurrentRunner], local_node: Callable[..., LocalModelNode]
) -> None:
    port = free_port()
    runner = runners(port)
    joined: list[ModelRunner] = []
    runner.on_model_joined(joined.append)  # registered before init: kept through the failed attempts
    before = set(threading.enumerate())

    for _ in range(2):  # the orchestrator is not up yet: each init() fails, and leaves nothing behind
        with pytest.raises(ConnectionError, match=f"ws://127.0.0.1:{port}/{CRUNCH}"):
            runner.init(timeout=0.5)
        assert mrclient_threads(before) == []
        with pytest.raises(MrclientError, match=NOT_INITIALIZED):
            runner.call("predict")
        assert not runner.closed and not runner.connected

    with LocalOrchestrator(crunch_id=CRUNCH, port=port) as orchestrator:
        nodes = [local_node(classes=[RetryBase, Model]) for _ in range(2)]
        for node in nodes:
            orchestrator.add_model(port=node.port)
        runner.init(timeout=WAIT)
        assert runner.connected and len(runner.models) == 2
        for _ in range(3):
            results = runner.call("predict")
            assert [(r.status, r.result) for r in results.values()] == [(SUCCESS, "ok")] * 2
        deadline = time.monotonic() + WAIT
        while len(joined) < 2 and time.monotonic() < deadline:  # the listener runs on its own thread
            threading.Event().wait(0.01)
        assert sorted(m.model_id for m in joined) == sorted(m.model_id for m in runner.models)

        began = time.monotonic()
        runner.init(timeout=WAIT)  # after a success: returns at once, changes nothing
        assert time.monotonic() - began < 0.1 and len(runner.models) == 2
        assert orchestrator.wait_for_clients(1, WAIT) and not orchestrator.wait_for_reports(1, QUIET)
        runner.close()
    assert mrclient_threads(before) == []


def test_every_round_kind_refuses_a_runner_whose_init_has_not_succeeded() -> None:
    port = free_port()
    subclass = DynamicSubclassModelConcurrentRunner(
        timeout=5, crunch_id=CRUNCH, host="127.0.0.1", port=port, base_classname="a.B"
    )
    train_infer = TrainInferModelConcurrentRunner(timeout=5, crunch_id=CRUNCH, host="127.0.0.1", port=port)
    try:
        rounds: list[Callable[[], object]] = [
            lambda: subclass.call("predict"),
            lambda: subclass.call("predict", arguments=lambda model: ([], [])),
            lambda: subclass.call("predict", args=[1]),
            lambda: train_infer.predict(1),
            lambda: train_infer.reinitialize(),
        ]
        for call in rounds:
            with pytest.raises(InvalidCoordinatorUsageError, match=NOT_INITIALIZED):
                call()
    finally:
        subclass.close()
        train_infer.close()


def test_an_init_every_model_refused_can_be_tried_again_and_says_the_same(
    runners: Callable[..., DynamicSubclassModelConcurrentRunner], local_node: Callable[..., LocalModelNode]
) -> None:
    with LocalOrchestrator(crunch_id=CRUNCH) as orchestrator:
        for _ in range(2):
            orchestrator.add_model(port=local_node(classes=[RetryBase, Model]).port)
        runner = runners(orchestrator.port, base_classname=f"{__name__}.RetryBsae")  # a typo
        before = set(threading.enumerate())
        for _ in range(2):  # not "the model cluster is closed": the same judgement, made again
            with pytest.raises(InvalidCoordinatorUsageError, match="BAD_IMPLEMENTATION for the setup"):
                runner.init(timeout=WAIT)
            assert orchestrator.wait_for_clients(0, WAIT), "the failed attempt's connection is closed"
            assert mrclient_threads(before) == []
            with pytest.raises(MrclientError, match=NOT_INITIALIZED):
                runner.call("predict")
        assert not orchestrator.wait_for_reports(1, QUIET)
        runner.close()
        with pytest.raises(MrclientError, match="the runner is closed"):
            runner.init(timeout=WAIT)


def test_close_after_a_failed_init_leaves_nothing_and_refuses_the_next(
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    runner = runners(free_port())
    before = set(threading.enumerate())
    with pytest.raises(ConnectionError):
        runner.init(timeout=0.3)
    runner.close()
    assert runner.closed and mrclient_threads(before) == []
    with pytest.raises(MrclientError, match="the runner is closed"):
        runner.init(timeout=0.3)
    with pytest.raises(MrclientError, match="the runner is closed"):
        runner.call("predict")


def test_a_stopped_listener_thread_keeps_its_listeners_and_the_next_event_starts_another() -> None:
    dispatcher: ListenerDispatcher[int] = ListenerDispatcher("mrclient-test-listeners")
    heard: list[int] = []
    second = threading.Event()

    def listener(item: int) -> None:
        heard.append(item)
        if item == 2:
            second.set()

    dispatcher.add("joined", listener)
    dispatcher.post("joined", 1)
    dispatcher.stop_thread()  # delivers what was posted, then ends the thread
    assert heard == [1]
    assert [t for t in threading.enumerate() if t.name == "mrclient-test-listeners"] == []
    dispatcher.post("joined", 2)
    assert second.wait(WAIT) and heard == [1, 2]
    dispatcher.close()
    assert [t for t in threading.enumerate() if t.name == "mrclient-test-listeners"] == []
