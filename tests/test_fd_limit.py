"""1,500 models against the common soft open-file limit of 1,024, in a subprocess that sets it.

The benchmark cluster serves the models from its own processes; the client
runs in a subprocess whose limits the test sets. Either the client raises the
soft limit to the hard one and every model becomes callable, or (hard limit
too low) it says so once, with the numbers and the fix, and reports nobody.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.cluster import BenchCluster

MODELS = 1500
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.subprocess  # the client runs in a process whose limits the test sets

CLIENT = f"""
import json, logging, resource, sys
port, soft, hard, wait = map(int, sys.argv[1:])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("mrclient.runners").setLevel(logging.ERROR)
from mrclient import DynamicSubclassModelConcurrentRunner
with DynamicSubclassModelConcurrentRunner(
    timeout=30, crunch_id="bench", host="127.0.0.1", port=port, base_classname="bench.Model",
    retry_backoff_factor=0.01, init_timeout=120,
) as runner:
    runner.wait_for_models({MODELS}, wait)
    statuses = [result.status.name for result in runner.call("tick", args=[{{"x": 1}}]).values()]
    print(json.dumps({{"ready": len(runner.models), "successes": statuses.count("SUCCESS"),
                      "limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}}))
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[BenchCluster]:
    with BenchCluster(MODELS, latency_ms=0) as started:
        yield started


def run_client(cluster: BenchCluster, soft: int, hard: int, wait: int) -> tuple[dict[str, int], str]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(cluster.orchestrator_port), str(soft), str(hard), str(wait)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_the_soft_limit_is_raised_to_the_hard_one_and_every_model_is_callable(cluster: BenchCluster) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2 * MODELS + 128:
        pytest.skip(f"this machine's hard open-file limit ({hard}) is below what {MODELS} models need")
    seen, log = run_client(cluster, 1024, hard, wait=60)
    assert seen == {"ready": MODELS, "successes": MODELS, "limit": hard}
    assert f"raised the open-file limit from 1024 to {hard} for {MODELS} models" in log
    assert cluster.orchestrator is not None and cluster.orchestrator.reports == []


def test_a_hard_limit_too_low_is_said_once_with_the_fix_and_costs_no_model_a_report(cluster: BenchCluster) -> None:
    seen, log = run_client(cluster, 1024, 1024, wait=1)  # all it can: init() returns once each tried
    errors = [line for line in log.splitlines() if line.startswith("ERROR mrclient._support.fdlimit")]
    assert len(errors) == 1, log[-3000:]
    assert f"{MODELS} models need up to {2 * MODELS + 128} open files" in errors[0] and "ulimit -n" in errors[0]
    assert 0 < seen["ready"] < MODELS and seen["successes"] == seen["ready"]  # those that could connect answer
    assert cluster.orchestrator is not None and cluster.orchestrator.reports == []
