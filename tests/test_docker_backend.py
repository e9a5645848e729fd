"""A crunch announced as the real orchestrator's Docker backend announces it, followed round by round.

String ports (Docker's host-port mapping), ``"ip": "localhost"``, two STOPPED
frames per stop, a replaced submission as RUNNING-new then STOPPED-old, and a
restart that closes with 1001: ``LocalOrchestrator(backend="docker")`` sends all
of it, to real nodes on loopback (gRPC resolves ``localhost`` to 127.0.0.1 and
::1 and tries both, so a node bound to 127.0.0.1 is reached). Every round's
statuses and results are checked model by model. The same with the real node
from PyPI: tests/test_real_node_docker.py.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _orchestrator_fixtures import Recorder
from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult
from mrclient.orchestrator.connection import OrchestratorSettings, reconnect_backoff
from mrclient.runners import DynamicSubclassModelRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.wire.codec import to_arguments

CRUNCH = "docker-crunch"
WAIT = 10.0
SUCCESS = ModelPredictResult.Status.SUCCESS
FAST = OrchestratorSettings(ping_interval=0.5, ping_timeout=0.5, open_timeout=2.0, close_timeout=0.5,
                            reconnect_wait=reconnect_backoff(initial=0.01, maximum=0.1, jitter=0.01))


class Base:
    """The participants' base class."""

    tag = "base"

    def predict(self, x: int) -> str:
        return f"{self.tag}:{x}"


def participant(tag: str) -> type[Base]:
    """A participant's class answering ``<tag>:<x>``, so each round's results name the node that answered."""
    return type(f"Model_{tag}", (Base,), {"tag": tag})


def results_of(runner: DynamicSubclassModelConcurrentRunner, x: int) -> dict[str, tuple[ModelPredictResult.Status, Any]]:
    return {model.model_id: (result.status, result.result) for model, result in runner.call("predict", args=[x]).items()}


@pytest.fixture
def orchestrator() -> Iterator[LocalOrchestrator]:
    with LocalOrchestrator(crunch_id=CRUNCH, backend="docker") as orch:
        yield orch


def test_three_nodes_announced_docker_style_through_joins_a_stop_a_replacement_and_a_restart(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mrclient")
    nodes = {tag: local_node(classes=[Base, participant(tag)]) for tag in ("a", "b", "c", "c2", "d")}
    a, b, c = (orchestrator.add_model(port=nodes[tag].port, name=tag) for tag in "abc")
    assert {e["port"] for e in orchestrator.running_models.values()} == {str(nodes[t].port) for t in "abc"}
    assert {e["ip"] for e in orchestrator.running_models.values()} == {"localhost"}
    recorder = Recorder()
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=5.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port,
        base_classname=f"{__name__}.Base", retry_backoff_factor=0.01, orchestrator_settings=FAST,
    )
    runner.on_model_joined(recorder.joined)
    runner.on_model_left(recorder.left)
    deployment = {model_id: orchestrator.model(model_id)["deployment_id"] for model_id in (a, b, c)}
    try:
        # Joins: the entries' string ports and host name make callable models.
        runner.init(timeout=WAIT)
        assert runner.wait_for_models(3, WAIT)
        assert sorted((m.ip, m.port) for m in runner.models) == sorted(("localhost", nodes[t].port) for t in "abc")
        assert results_of(runner, 1) == {a: (SUCCESS, "a:1"), b: (SUCCESS, "b:1"), c: (SUCCESS, "c:1")}

        # A stop: two STOPPED frames, the second with port 0 and an empty ip.
        orchestrator.stop_model(b)
        assert recorder.wait_for_events(("left", b, deployment[b]))
        assert results_of(runner, 2) == {a: (SUCCESS, "a:2"), c: (SUCCESS, "c:2")}

        # A replaced submission: RUNNING for the new deployment on another node, then the old one's two STOPPED.
        new_c = orchestrator.redeploy_model(c, port=nodes["c2"].port)
        assert recorder.wait_for_events(("left", c, deployment[c]), ("joined", c, new_c))
        assert results_of(runner, 3) == {a: (SUCCESS, "a:3"), c: (SUCCESS, "c2:3")}
        assert {m.model_id: m.deployment_id for m in runner.models} == {a: deployment[a], c: new_c}

        # An orchestrator restart (it closes with 1001, no STOPPED frames), with a different set once back.
        orchestrator.stop()
        orchestrator.remove_model(a)
        d = orchestrator.add_model(port=nodes["d"].port, name="d")
        assert results_of(runner, 4) == {a: (SUCCESS, "a:4"), c: (SUCCESS, "c2:4")}, "rounds go on while it is away"
        orchestrator.start()
        assert recorder.wait_for_events(("left", a, deployment[a]), ("joined", d, orchestrator.model(d)["deployment_id"]))
        assert results_of(runner, 5) == {c: (SUCCESS, "c2:5"), d: (SUCCESS, "d:5")}
        assert runner.connection_state.reconnects == 1
        assert any("code 1001" in r.getMessage() for r in caplog.records if r.name == "mrclient.orchestrator.connection")
    finally:
        runner.close()
    assert orchestrator.reports == []
    assert recorder.summary().count(("joined", c, new_c)) == 1, "the old deployment's STOPPED frames left the new one alone"
    noisy = [r.getMessage() for r in caplog.records if r.name == "mrclient.cluster.table" and r.levelno >= logging.WARNING]
    assert noisy == [], "the second STOPPED frames and the string ports are normal traffic"
    assert [t.name for t in threading.enumerate() if t.name.startswith("mrclient")] == [], "close() left nothing"


def test_a_reported_model_is_stopped_by_a_docker_orchestrator_because_the_report_carries_localhost(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode]
) -> None:
    """The report's ip is the announced one, verbatim: the orchestrator acts on it (two STOPPED frames)."""
    node = local_node(classes=[Base, participant("a")])
    model_id = orchestrator.add_model(port=node.port)
    with DynamicSubclassModelConcurrentRunner(
        timeout=5.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port, base_classname=f"{__name__}.Base",
        retry_backoff_factor=0.01, orchestrator_settings=FAST,
    ) as runner:
        assert runner.wait_for_models(1, WAIT)
        runner.report_failure(runner.models[0], "LOW_PERFORMANCE", "too slow")
        assert orchestrator.wait_for_reports(1, WAIT)
    assert [(r["model_id"], r["ip"]) for r in orchestrator.reports] == [(model_id, "localhost")]
    assert orchestrator.ignored_reports == [] and orchestrator.running_models == {}


def _can_bind(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("bound", ["127.0.0.1", "::1"])
def test_a_runner_for_localhost_reaches_a_node_bound_to_either_loopback(
    bound: str, local_node: Callable[..., LocalModelNode]
) -> None:
    """gRPC resolves ``localhost`` to both loopback addresses and tries them in turn."""
    if not _can_bind(bound):
        pytest.skip(f"{bound} is not available here")
    node = local_node(classes=[Base, participant("a")], host=bound)
    runner = DynamicSubclassModelRunner(base_classname=f"{__name__}.Base", deployment_id="d1", model_id="m1",
                                        model_name=None, ip="localhost", port=node.port, infos={},
                                        retry_backoff_factor=0.01)
    try:
        assert runner.init() == (True, None)
        assert runner.call("predict", (to_arguments([7]), []), timeout=WAIT) == ("a:7", None)
    finally:
        runner.close()
