"""``mrclient[testing]`` installs beside the async reference client, and its LocalOrchestrator runs there.

A coordinator migrating step by step has both installed. The reference
(``model-runner-client==0.14.0``) pins ``websockets>=14.2,<15``; mrclient's
``testing`` extra accepts 14.2 and newer. One pip resolve installs both in a
venv of their own (``.venv-beside-reference``, made once and rebuilt when
setup.cfg changes; mrclient is installed editable, so the code under test is
the worktree's), then a script runs a round on a LocalOrchestrator with a
LocalModelNode and reports a model, on the websockets the reference chose.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from benchmarks import reference_venv
from conftest import REPO_ROOT

VENV = REPO_ROOT / ".venv-beside-reference"
RUN_TIMEOUT = 120.0

pytestmark = pytest.mark.subprocess  # a venv of its own (pip), and a script in it

SCRIPT = """
import importlib.metadata, json, websockets
import model_runner_client  # the reference, importable beside mrclient
from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

with LocalOrchestrator(crunch_id="beside") as orchestrator, LocalModelNode(classes=[TrackerBase, EwmaTracker]) as node:
    model_id = orchestrator.add_model(port=node.port)
    with DynamicSubclassModelConcurrentRunner(
        timeout=10, crunch_id="beside", host="127.0.0.1", port=orchestrator.port, base_classname=BASE_CLASSNAME,
    ) as runner:
        assert runner.wait_for_models(1, 10)
        runner.call("tick", args=[{"dove_location": 3.5}])
        results = {m.model_id: (r.status.name, r.result) for m, r in runner.call("predict").items()}
        runner.report_failure(runner.models[0], "LOW_PERFORMANCE", "beside")
        assert orchestrator.wait_for_reports(1, 10)
    print(json.dumps({
        "websockets": importlib.metadata.version("websockets"),
        "reference": importlib.metadata.version("model-runner-client"),
        "model_id": model_id,
        "results": results,
        "reports": [(r["model_id"], r["failure_code"]) for r in orchestrator.reports],
        "running": sorted(orchestrator.running_models),
    }))
"""


@pytest.mark.timeout(1200)  # the venv is built on the first run (pip; about a minute with a warm cache)
@pytest.mark.xdist_group("writes mrclient.egg-info in the clone")  # its editable install; so does test_packaging.py's build
def test_mrclient_testing_beside_the_reference_client_runs_a_round_on_websockets_14() -> None:
    digest = hashlib.sha256((REPO_ROOT / "setup.cfg").read_bytes()).hexdigest()[:16]
    python = reference_venv.ensure(VENV, also=("-e", f"{REPO_ROOT}[testing]"), key=f"setup.cfg {digest}")
    done = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          cwd=REPO_ROOT / "tests")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["reference"] == "0.14.0"
    assert report["websockets"].startswith("14."), "the reference's pin chose websockets 14"
    model_id = report["model_id"]
    assert report["results"] == {model_id: ["SUCCESS", {"location": 3.5, "ticks": 1, "performance_metrics": None}]}
    assert report["reports"] == [[model_id, "LOW_PERFORMANCE"]] and report["running"] == []
