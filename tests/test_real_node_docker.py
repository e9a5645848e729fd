"""The real node (crunch-model-runner from PyPI, in its own venv and process) in a crunch announced Docker-style.

``LocalOrchestrator(backend="docker")`` announces it at ``"ip": "localhost"``
with its port as a string, and stops it with two STOPPED frames. Apart from
tests/test_docker_backend.py because the pin venvs of ``make test`` run that
one and have no reference node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from _orchestrator_fixtures import Recorder
from conftest import TRACKER_BASE, RealNode
from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult
from mrclient.testing import LocalOrchestrator
from test_docker_backend import CRUNCH, FAST, WAIT

pytestmark = pytest.mark.subprocess  # the reference node, in its own venv

SUCCESS = ModelPredictResult.Status.SUCCESS


@pytest.fixture
def orchestrator() -> Iterator[LocalOrchestrator]:
    with LocalOrchestrator(crunch_id=CRUNCH, backend="docker") as orch:
        yield orch


@pytest.mark.timeout(900)  # covers building the model-runner virtualenv on a first run
def test_real_pypi_nodes_announced_docker_style_join_answer_and_leave(
    orchestrator: LocalOrchestrator, real_nodes: Callable[..., RealNode]
) -> None:
    """The real node (crunch-model-runner from PyPI, its own process) reached at ``localhost`` and a string port."""
    first, second = real_nodes(), real_nodes()
    kept, stopped = orchestrator.add_model(port=first.port), orchestrator.add_model(port=second.port)
    recorder = Recorder()
    with DynamicSubclassModelConcurrentRunner(
        timeout=30.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port, base_classname=TRACKER_BASE,
        instance_args=[2.0], retry_backoff_factor=0.01, orchestrator_settings=FAST,
    ) as runner:
        runner.on_model_left(recorder.left)
        assert runner.wait_for_models(2, WAIT)
        assert {m.ip for m in runner.models} == {"localhost"}
        ticks = runner.call("tick", args=[{"x": 1}])
        assert {m.model_id: r.status for m, r in ticks.items()} == {kept: SUCCESS, stopped: SUCCESS}
        expected = {"last": {"x": 1}, "ticks": 1, "scale": 2.0, "horizon": 0}
        predictions = {m.model_id: (r.status, r.result) for m, r in runner.call("predict").items()}
        assert predictions == {kept: (SUCCESS, expected), stopped: (SUCCESS, expected)}
        orchestrator.stop_model(stopped)
        assert recorder.wait_for_events(("left", stopped, orchestrator.model(stopped)["deployment_id"]))
        predictions = {m.model_id: (r.status, r.result) for m, r in runner.call("predict").items()}
        assert predictions == {kept: (SUCCESS, expected)}
    assert orchestrator.reports == []
