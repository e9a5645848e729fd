"""A coordinator's mistake never costs a participant: the misuse breaker and serialized rounds, on real nodes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mrclient import DynamicSubclassModelConcurrentRunner, InvalidCoordinatorUsageError, ModelPredictResult
from mrclient.testing import LocalModelNode, LocalOrchestrator

WAIT = 10.0
QUIET = 0.3
SUCCESS = ModelPredictResult.Status.SUCCESS


class Base:
    """The participants' base class."""


class Model(Base):
    def predict(self) -> str:
        return "ok"

    def busy(self, seconds: float) -> str:
        threading.Event().wait(seconds)  # the model's own work
        return "done"


class Crunch:
    def __init__(self, orchestrator: LocalOrchestrator, start_node: Callable[..., LocalModelNode]) -> None:
        self.orchestrator = orchestrator
        self.start_node = start_node
        self.runners: list[DynamicSubclassModelConcurrentRunner] = []

    def add_models(self, count: int) -> None:
        for _ in range(count):
            self.orchestrator.add_model(port=self.start_node(classes=[Base, Model]).port)

    def runner(self, init: bool = True, **options: Any) -> DynamicSubclassModelConcurrentRunner:
        settings: dict[str, Any] = dict(
            timeout=5.0, crunch_id=self.orchestrator.crunch_id, host="127.0.0.1", port=self.orchestrator.port,
            base_classname=f"{__name__}.Base", retry_backoff_factor=0.01,
        )
        settings.update(options)
        runner = DynamicSubclassModelConcurrentRunner(**settings)
        self.runners.append(runner)
        if init:
            runner.init(timeout=WAIT)
        return runner

    def no_report(self) -> bool:
        return not self.orchestrator.wait_for_reports(1, QUIET)


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[Crunch]:
    with LocalOrchestrator(crunch_id="mistakes") as orchestrator:
        kit = Crunch(orchestrator, local_node)
        try:
            yield kit
        finally:
            for runner in kit.runners:
                runner.close()


@pytest.mark.parametrize("models", [1, 3])
def test_a_typo_in_the_method_name_raises_and_costs_nobody_anything(crunch: Crunch, models: int) -> None:
    crunch.add_models(models)
    runner = crunch.runner()
    assert runner.wait_for_models(models, WAIT)
    table = runner.models

    with pytest.raises(InvalidCoordinatorUsageError) as raised:
        runner.call("predcit")
    message = str(raised.value)
    assert "method 'predcit'" in message and 'Method "predcit" not found' in message

    assert runner.models == table
    assert all(model.consecutive_failures == 0 and not model.closed for model in table)
    assert crunch.no_report()
    assert {result.status for result in runner.call("predict").values()} == {SUCCESS}


@pytest.mark.parametrize("models", [1, 3])
def test_a_typo_in_the_base_class_raises_at_init_and_reports_nobody(crunch: Crunch, models: int) -> None:
    crunch.add_models(models)
    runner = crunch.runner(init=False, base_classname=f"{__name__}.Bsae")
    with pytest.raises(InvalidCoordinatorUsageError) as raised:
        runner.init(timeout=WAIT)
    message = str(raised.value)
    assert "BAD_IMPLEMENTATION for the setup" in message and f"{__name__}.Bsae" in message
    assert crunch.no_report()


def test_two_threads_calling_at_once_take_turns(crunch: Crunch) -> None:
    crunch.add_models(3)
    runner = crunch.runner()
    assert runner.wait_for_models(3, WAIT)
    results: list[dict[Any, ModelPredictResult]] = []
    start = threading.Barrier(2)

    def round_() -> None:
        start.wait(WAIT)
        results.append(runner.call("busy", args=[0.2]))

    threads = [threading.Thread(target=round_) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(results) == 2
    # Each node serves one call at a time: overlapping rounds would get "Server busy" TIMEOUTs.
    assert [{result.status for result in round_results.values()} for round_results in results] == [{SUCCESS}] * 2
