"""The ported coordinator (examples/coordinator) runs from a clone, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.subprocess  # the example coordinator, run as a process

RUN_TIMEOUT = 120.0


def example(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "examples.coordinator", *args],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_the_example_runs_its_steps_and_brings_every_joiner_up_to_date() -> None:
    process = example("--steps", "12", "--interval", "0")
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        process.kill()
        process.wait(RUN_TIMEOUT)
    assert process.returncode == 0, err
    assert err == "", "nothing logged: no model out of sync, no error"
    steps = out.split("\nstep ")
    assert len(steps) == 12
    for joiner in ("moving-average", "momentum", "last-price"):  # late, redeployed, recovered
        assert out.count(f"joined: {joiner} (sent ") == 1, out
    assert "left: momentum" in out and "left: last-price" in out
    assert "MODEL_FAILED" in out and "diverged" in out, "the buggy model's failures are shown per model"
    assert "OUT OF SYNC" not in out, "each joiner got the history once, then every tick"
    assert "TIMEOUT" not in out.split("after 12 steps:")[0], "no call collided with another"
    summary = out.split("after 12 steps:")[1].splitlines()
    assert [line.split()[0] for line in summary[2:6]] == ["flaky", "last-price", "momentum", "moving-average"]
    assert out.rstrip().endswith("stopped by the end of the prices; the runner is closed")


def test_sigterm_stops_the_example_mid_run_and_it_exits_cleanly() -> None:
    process = example("--steps", "0", "--interval", "0.05")
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    try:
        while not lines.get(timeout=RUN_TIMEOUT).startswith("step 3 "):
            pass
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(RUN_TIMEOUT) == 0
    finally:
        process.kill()
        process.wait(RUN_TIMEOUT)
        reader.join(RUN_TIMEOUT)
    rest = "".join(lines.queue)
    assert "stopped by a signal; the runner is closed" in rest
    assert "after " in rest and "steps:" in rest
