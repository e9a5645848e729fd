"""``runner.map`` against the reference model node (crunch-model-runner, in its own process and venv).

The busy-node case of tests/test_map.py, where it matters most: the real node
refuses a call that arrives while it computes (``RESOURCE_EXHAUSTED``). A
recording proxy in front of the slow model's node sees every call that reaches
it, and what the node answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from _rpc_recorder import RecordingProxy, recording_proxy_fixture  # noqa: F401 (the recording_proxy fixture)
from conftest import TRACKER_BASE, RealNode
from mrclient import Args, DynamicSubclassModelConcurrentRunner, ModelPredictResult, ModelRunner
from mrclient.testing import LocalOrchestrator

pytestmark = [pytest.mark.timeout(900), pytest.mark.subprocess]  # the real node: its own venv (built on a first run) and process

SUCCESS = ModelPredictResult.Status.SUCCESS
TIMEOUT = ModelPredictResult.Status.TIMEOUT
WAIT = 30.0
PACE = 0.08  # each input's work, in seconds, on every node
TIMEOUT_S = 0.5
STUCK = 0.9  # input 3 on the slow model: past the deadline


def test_a_timeout_on_input_3_of_20_is_charged_once_and_the_real_node_never_refuses_a_call(
    real_nodes: Callable[..., RealNode], recording_proxy: Callable[[str], RecordingProxy]
) -> None:
    slow_node, other_node = real_nodes(), real_nodes()
    proxy = recording_proxy(f"127.0.0.1:{slow_node.port}")
    with LocalOrchestrator(crunch_id="map-real") as orchestrator:
        slow_id = orchestrator.add_model(port=proxy.port, name="slow")
        orchestrator.add_model(port=other_node.port, name="other")
        with DynamicSubclassModelConcurrentRunner(
            timeout=TIMEOUT_S, crunch_id="map-real", host="127.0.0.1", port=orchestrator.port,
            base_classname=TRACKER_BASE, max_consecutive_timeouts=1, retry_backoff_factor=0.05, init_timeout=WAIT,
        ) as runner:  # fmt: skip
            assert runner.wait_for_models(2, WAIT)

            def work(index: int) -> Callable[[ModelRunner], Args]:
                return lambda model: Args(index, STUCK if model.model_id == slow_id and index == 3 else PACE)

            rows = [
                {model.model_name: result for model, result in results.items()}
                for results in runner.map("echo_after", (work(i) for i in range(20)))
            ]
            (slow,) = [model for model in runner.models if model.model_id == slow_id]
            stats = slow.stats
        assert not orchestrator.wait_for_reports(1, 0.5)

    def value(result: ModelPredictResult) -> Any:
        assert result.status is SUCCESS, result
        return result.result

    assert [value(row["other"]) for row in rows] == list(range(20))
    answers = [row["slow"] for row in rows]
    assert [value(result) for result in answers[:3]] == [0, 1, 2]
    assert answers[3].status is TIMEOUT and answers[3].detail == f"DEADLINE_EXCEEDED: no answer within {TIMEOUT_S:g}s"
    skipped = [i for i, result in enumerate(answers) if (result.detail or "").startswith("SKIPPED: busy with input 3")]
    assert skipped and skipped == list(range(4, 4 + len(skipped)))
    resumed = list(range(4 + len(skipped), 20))
    assert resumed and [value(answers[i]) for i in resumed] == resumed
    assert (stats.timeouts, stats.rest_skips) == (1 + len(skipped), len(skipped))  # one timeout charged

    calls = [rpc.code for rpc in proxy.recorded if rpc.method == "Call"]
    assert "RESOURCE_EXHAUSTED" not in calls
    assert calls == ["OK"] * (4 + len(resumed))  # the late answer to input 3 came back: the node was free
