"""Many rounds in a row: threads, file descriptors and memory stay flat.

``make test`` runs 2,000 rounds. The long soak (``make soak``, or
``MRCLIENT_SOAK=1``; ``MRCLIENT_SOAK_ROUNDS`` sets its length, 50,000 by
default) adds churn while it runs: orchestrator drops, redeploys, nodes
restarted in place, models stopped and recovered. Its figures are in
docs/reliability.rst.

Bounds, after a warm-up of 200 rounds (pools grown, caches filled):
* the client's threads other than the call pool's: the same ones at the end;
* call pool threads: never more than its capacity (2 per model + 16);
* file descriptors: at most 4 more (sockets being replaced at that moment);
* resident memory: at most 16 MiB more over 2,000 rounds, 32 MiB over the soak.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from _fault_kit import WAIT, Resources, on_linux

from _orchestrator_fixtures import CRUNCH, FAST, Recorder, orchestrator
from conftest import SERVER_THREAD_MARKS
from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult
from mrclient.concurrent import POOL_HEADROOM
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

__all__ = ["orchestrator"]  # fixtures used here

pytestmark = pytest.mark.skipif(not on_linux(), reason="reads /proc/self")

SUCCESS = ModelPredictResult.Status.SUCCESS
MODELS = 4
TIMEOUT = 2.0
WARM_UP = 200
SOAK_ROUNDS = int(os.environ.get("MRCLIENT_SOAK_ROUNDS", "50000"))


#: The in-process servers' threads (their pools grow lazily too); the rest are the client's.
SERVER_THREADS = (*SERVER_THREAD_MARKS, "(_serve)", "local-orchestrator")


def call_threads() -> int:
    return sum(t.name.startswith("mrclient-call") for t in threading.enumerate())


def other_client_threads() -> list[str]:
    """The client's threads outside the call pool (the orchestrator's, the listeners', setups...)."""
    return sorted(
        t.name for t in threading.enumerate()
        if not t.name.startswith("mrclient-call") and not any(mark in t.name for mark in SERVER_THREADS)
    )


class Soak:
    """A crunch of MODELS local nodes and a runner on it, with round statistics."""

    def __init__(self, orchestrator: LocalOrchestrator, start_node: Callable[[], LocalModelNode]) -> None:
        self.orchestrator = orchestrator
        self.nodes = [start_node() for _ in range(MODELS + 1)]  # one spare for redeploys
        self.ids = [orchestrator.add_model(port=node.port, name=f"soak-{n}") for n, node in enumerate(self.nodes[:MODELS])]
        self.runner = DynamicSubclassModelConcurrentRunner(
            timeout=TIMEOUT, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port,
            base_classname=BASE_CLASSNAME, retry_backoff_factor=0.05,
            orchestrator_settings=replace(FAST, ping_interval=1.0, ping_timeout=1.0),
        )
        self.recorder = Recorder()
        self.runner.on_model_joined(self.recorder.joined)
        self.runner.on_model_left(self.recorder.left)
        self.durations: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.max_call_threads = 0

    def rounds(self, count: int) -> None:
        for n in range(count):
            started = time.monotonic()
            results = self.runner.call("tick", args=[{"dove_location": float(n)}])
            self.durations.append(time.monotonic() - started)
            for result in results.values():
                key = result.status.name
                if result.detail:
                    key += " " + result.detail.split(":")[0]
                self.statuses[key] += 1
            self.max_call_threads = max(self.max_call_threads, call_threads())

    def close(self) -> None:
        self.runner.close()

    def figures(self, before: Resources, after: Resources) -> str:
        durations = sorted(self.durations)
        p99 = durations[int(len(durations) * 0.99)]
        return (
            f"{len(durations)} rounds of {MODELS} models, median {statistics.median(durations) * 1000:.2f} ms, "
            f"p99 {p99 * 1000:.2f} ms, max {durations[-1] * 1000:.1f} ms; results {dict(self.statuses)}; "
            f"after warm-up {before} -> end {after}; call threads at most {self.max_call_threads}"
        )


@pytest.fixture
def soak(orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode]) -> Iterator[Soak]:
    made = Soak(orchestrator, lambda: local_node(classes=[TrackerBase, EwmaTracker]))
    try:
        made.runner.init(WAIT)
        assert made.runner.wait_for_models(MODELS, WAIT)
        yield made
    finally:
        made.close()


def assert_flat(soak: Soak, before: Resources, before_others: list[str], after: Resources, memory_mib: float) -> None:
    assert other_client_threads() == before_others, "no client thread outside the call pool was added"
    assert soak.max_call_threads <= 2 * MODELS + POOL_HEADROOM, "the call pool stays within its capacity"
    assert after.fds - before.fds <= 4
    assert after.rss_mib - before.rss_mib <= memory_mib


def test_2000_rounds_hold_threads_fds_and_memory_flat(soak: Soak, record_property: Callable[[str, object], None]) -> None:
    """Fault: none but time: 2,000 rounds back to back. Bound: the module docstring's. Outcome:
    every round within its deadline, every answer a success, resources flat."""
    soak.rounds(WARM_UP)
    before, before_others = Resources.now(), other_client_threads()
    soak.durations.clear()
    soak.statuses.clear()
    soak.rounds(2000)
    after = Resources.now()
    record_property("figures", f"[2,000 rounds] {soak.figures(before, after)}")
    assert max(soak.durations) < TIMEOUT + 0.5
    assert soak.statuses == Counter({"SUCCESS": 2000 * MODELS})
    assert_flat(soak, before, before_others, after, memory_mib=16.0)


@pytest.mark.skipif(not os.environ.get("MRCLIENT_SOAK"), reason="the long soak is opt-in: make soak")
@pytest.mark.timeout(3600)
def test_soak_with_churn(soak: Soak, record_property: Callable[[str, object], None]) -> None:
    """Fault: every 500 rounds one of: the orchestrator drops the connection, a model is redeployed
    to another node, a node restarts in place (losing its instance), a model is stopped and
    recovered. Bound: the module docstring's; every round within its deadline. Outcome: the table
    ends equal to the orchestrator's, resources flat, and nobody reported."""
    rng = random.Random(11)
    soak.rounds(WARM_UP)
    before, before_others = Resources.now(), other_client_threads()
    soak.durations.clear()
    soak.statuses.clear()
    events: Counter[str] = Counter()
    started = time.monotonic()
    for _ in range(SOAK_ROUNDS // 500):
        soak.rounds(500)
        fault = rng.choice(["drop", "redeploy", "restart-in-place", "stop-recover"])
        events[fault] += 1
        model_id = rng.choice(soak.ids)
        if fault == "drop":
            soak.orchestrator.drop_connections()
        elif fault == "redeploy":
            used = {e["port"] for e in soak.orchestrator.running_models.values()}
            spare = next(node for node in soak.nodes if node.port not in used)
            soak.orchestrator.redeploy_model(model_id, port=spare.port, stop_old=True)
        elif fault == "restart-in-place":
            node = next(n for n in soak.nodes if n.port == soak.orchestrator.model(model_id)["port"])
            node.stop()
            node.start()
        else:
            soak.orchestrator.stop_model(model_id)
            soak.orchestrator.recover_model(model_id)
        assert soak.runner.wait_for_models(MODELS, WAIT), f"the table recovered from {fault}"
    soak.rounds(500)
    elapsed = time.monotonic() - started
    after = Resources.now()
    table = {r.model_id: (r.deployment_id, r.port) for r in soak.runner.models}
    expected = {i: (e["deployment_id"], e["port"]) for i, e in soak.orchestrator.running_models.items()}
    record_property("figures", f"[soak] {elapsed:.0f} s, faults {dict(events)}; {soak.figures(before, after)}")
    assert table == expected
    assert max(soak.durations) < TIMEOUT + 0.5
    assert soak.orchestrator.reports == []
    assert_flat(soak, before, before_others, after, memory_mib=32.0)
