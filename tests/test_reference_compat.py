"""The async reference client's names that real coordinators use work here too.

``ModelPredictResult.of_*``, the concurrent runner's ``host``, ``port`` and
thresholds, ``ModelCluster.models_run``; and the constructors list their real
parameters instead of hiding them behind ``**kwargs``.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from mrclient import (
    DynamicSubclassModelConcurrentRunner,
    InvalidCoordinatorUsageError,
    ModelConcurrentRunner,
    ModelPredictResult,
    ModelRunner,
    TrainInferModelConcurrentRunner,
)
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

WAIT = 10.0


class _Runner(ModelRunner):
    """A runner that is never connected: only its identity matters here."""

    def setup(self, channel: Any, timeout: float) -> tuple[bool, ModelRunner.ErrorType | None]:
        raise AssertionError("not connected in these tests")

    def execute(self, request: Any, timeout: float) -> Any:
        raise AssertionError("not connected in these tests")


def test_the_reference_result_constructors() -> None:
    runner = _Runner(deployment_id="d", model_id="m", model_name=None, ip="127.0.0.1", port=1)
    Status = ModelPredictResult.Status
    assert ModelPredictResult.of_success(runner, {"x": 1}, 42) == ModelPredictResult(runner, {"x": 1}, Status.SUCCESS, 42)
    assert ModelPredictResult.of_failed(runner, 7, detail="MODEL_FAILED") == ModelPredictResult(
        runner, None, Status.FAILED, 7, "MODEL_FAILED"
    )
    assert ModelPredictResult.of_timeout(runner, 9) == ModelPredictResult(runner, None, Status.TIMEOUT, 9)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: DynamicSubclassModelConcurrentRunner(base_classname="a.B", **kw),
        lambda **kw: TrainInferModelConcurrentRunner(**kw),
    ],
    ids=["dynamic-subclass", "train-infer"],
)
def test_runner_attributes_of_the_reference(make: Callable[..., ModelConcurrentRunner]) -> None:
    runner = make(
        timeout=2, crunch_id="c", host="orchestrator.example", port=8123, max_consecutive_failures=5, max_consecutive_timeouts=0
    )
    try:
        assert (runner.host, runner.port) == ("orchestrator.example", 8123)
        assert (runner.max_consecutive_failures, runner.max_consecutive_timeouts) == (5, 0)
        assert (runner.policy.max_consecutive_failures, runner.policy.max_consecutive_timeouts) == (5, 0)
        with pytest.raises(AttributeError):
            runner.max_consecutive_failures = 1  # type: ignore[misc]
    finally:
        runner.close()


def test_defaults_are_the_reference_thresholds() -> None:
    runner = DynamicSubclassModelConcurrentRunner(timeout=1, crunch_id="c", host="h", port=1, base_classname="a.B")
    try:
        assert (runner.max_consecutive_failures, runner.max_consecutive_timeouts) == (3, 3)
    finally:
        runner.close()


COMMON = [
    "timeout", "crunch_id", "host", "port", "max_consecutive_failures", "max_consecutive_timeouts",
    "secure_credentials", "gateway_credentials", "report_failure", "retry_backoff_factor", "orchestrator_settings",
    "init_timeout", "round_switch_interval", "keep_stats", "shard",
]  # fmt: skip


@pytest.mark.parametrize(
    ("cls", "own"),
    [
        (ModelConcurrentRunner, []),
        (DynamicSubclassModelConcurrentRunner, ["base_classname", "instance_args", "instance_kwargs"]),
        (TrainInferModelConcurrentRunner, ["service_name"]),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_constructors_list_their_real_parameters(cls: type, own: list[str]) -> None:
    parameters = inspect.signature(cls).parameters
    kinds = {parameter.kind for parameter in parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds
    assert set(parameters) == set(COMMON) | set(own)
    assert list(parameters)[:4] == ["timeout", "crunch_id", "host", "port"]  # positional, as in the reference
    assert parameters["report_failure"].default is True
    # A kind documents its own arguments; the options every runner shares are documented once, by the base.
    documented = (inspect.getdoc(cls.__init__) or "") + (inspect.getdoc(ModelConcurrentRunner.__init__) or "")  # type: ignore[misc]
    assert all(f"{name}:" in documented for name in parameters), "every parameter is explained in the docstring"


def test_models_run_is_a_read_only_snapshot_keyed_by_model_id() -> None:
    with LocalOrchestrator(crunch_id="compat") as orchestrator, LocalModelNode(classes=[TrackerBase, EwmaTracker]) as node:
        model_id = orchestrator.add_model(host="127.0.0.1", port=node.port, name="ewma")
        with DynamicSubclassModelConcurrentRunner(
            timeout=5, crunch_id="compat", host="127.0.0.1", port=orchestrator.port, base_classname=BASE_CLASSNAME
        ) as runner:
            assert runner.model_cluster.wait_for_models(1, WAIT)
            models_run = runner.model_cluster.models_run
            assert dict(models_run) == {model_id: runner.models[0]}
            with pytest.raises(TypeError):
                models_run[model_id] = runner.models[0]  # type: ignore[index]
            left = threading.Event()
            runner.on_model_left(lambda _: left.set())
            orchestrator.stop_model(model_id)
            assert left.wait(WAIT)
            assert not runner.model_cluster.models_run
            assert list(models_run) == [model_id], "a snapshot: it does not change under the caller"


def test_a_port_read_from_the_environment_as_a_string_is_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """``port=os.environ["ORCHESTRATOR_PORT"]`` (the reference accepts ``"8000"``) connects like the number."""
    with LocalOrchestrator(crunch_id="compat") as orchestrator, LocalModelNode(classes=[TrackerBase, EwmaTracker]) as node:
        orchestrator.add_model(host="127.0.0.1", port=node.port, name="ewma")
        monkeypatch.setenv("ORCHESTRATOR_PORT", str(orchestrator.port))
        with DynamicSubclassModelConcurrentRunner(
            timeout=5, crunch_id="compat", host="127.0.0.1", port=os.environ["ORCHESTRATOR_PORT"],
            base_classname=BASE_CLASSNAME,
        ) as runner:
            assert runner.port == orchestrator.port and isinstance(runner.port, int)
            assert [r.status for r in runner.call("predict").values()] == [ModelPredictResult.Status.SUCCESS]
    for bad in ("80a", "", "8000.0"):
        with pytest.raises(InvalidCoordinatorUsageError, match=f"port must be a TCP port number .*, got {bad!r}"):
            DynamicSubclassModelConcurrentRunner(timeout=5, crunch_id="c", host="h", port=bad, base_classname="a.B")
