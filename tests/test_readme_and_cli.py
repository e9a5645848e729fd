"""The README's examples run as written, and the ``mrclient`` command works."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.rst"
RUN_TIMEOUT = 120.0


def python_examples() -> list[str]:
    """Every ``.. code-block:: python`` of README.rst marked as a complete program (``.. runs-as-is``), dedented."""
    blocks = re.findall(r"^\.\. runs-as-is\n\n\.\. code-block:: python\n\n((?:    .*\n|\n)+)", README.read_text(), re.MULTILINE)
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in blocks]


def test_the_readme_has_both_examples_and_the_two_commands() -> None:
    text = README.read_text()
    assert len(python_examples()) == 2
    assert text.index("make demo") < text.index("Usage") and text.index("make test") < text.index("Usage")


@pytest.mark.parametrize("index", [0, 1], ids=["shared-arguments", "per-model-arguments"])
def test_readme_example_runs_as_written(index: int, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(python_examples()[index])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all("SUCCESS" in line for line in lines), done.stdout


def mrclient(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mrclient.cli", *args], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def test_demo_shows_every_status_and_exits_zero() -> None:
    done = mrclient("demo", "--rounds", "2", "--models", "3")
    assert done.returncode == 0, done.stderr
    rows = done.stdout
    for status in ("SUCCESS", "FAILED", "TIMEOUT"):
        assert status in rows, rows
    assert rows.count("round ") == 2


@pytest.mark.parametrize("command", [[], ["demo"], ["watch"], ["call"]])
def test_help(command: list[str]) -> None:
    done = mrclient(*command, "--help")
    assert done.returncode == 0 and "usage: mrclient" in done.stdout


@pytest.mark.parametrize(
    "arguments, named",
    [(["{oops"], "the positional arguments (ARGS) is not valid JSON"), (["--kwargs", "[1"], "--kwargs is not valid JSON"),
     (["--kwargs", "[1]"], "--kwargs must be a JSON object")],
)
def test_call_names_the_argument_whose_json_is_bad(arguments: list[str], named: str) -> None:
    done = mrclient("call", "--host", "127.0.0.1", "--port", "1", "--crunch-id", "c", "--base-classname", "a.B",
                    "predict", *arguments)
    assert done.returncode == 1 and named in done.stderr, done.stderr


def test_call_against_an_unreachable_orchestrator_fails_clearly() -> None:
    done = mrclient("call", "--host", "127.0.0.1", "--port", "1", "--crunch-id", "c", "--base-classname", "a.B",
                    "--init-timeout", "1", "predict")
    assert done.returncode != 0
    assert "mrclient: error:" in done.stderr and "ws://127.0.0.1:1/c" in done.stderr


class LineReader:
    """Lines a process prints, read on a thread so that each wait is bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        self.thread = threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True)
        self.thread.start()

    def next(self, timeout: float = 30.0) -> str:
        return self.lines.get(timeout=timeout)


def test_watch_prints_models_as_they_join_until_interrupted(local_node: Any) -> None:
    from mrclient.testing import LocalOrchestrator
    from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

    with LocalOrchestrator(crunch_id="watched") as orchestrator:
        first = orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[TrackerBase, EwmaTracker]).port)
        process = subprocess.Popen(
            [sys.executable, "-m", "mrclient.cli", "watch", "--host", "127.0.0.1", "--port", str(orchestrator.port),
             "--crunch-id", "watched", "--base-classname", BASE_CLASSNAME],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        lines = LineReader(process)
        try:
            assert first in lines.next()  # already there: "ready"
            second = orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[TrackerBase, EwmaTracker]).port)
            line = lines.next()
            assert "joined" in line and second in line
            orchestrator.stop_model(first)
            line = lines.next()
            assert "left" in line and first in line
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=RUN_TIMEOUT) == 0
            lines.thread.join(RUN_TIMEOUT)
            assert lines.lines.empty(), lines.next()  # stopping is not every model leaving
        finally:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT)
            lines.thread.join(RUN_TIMEOUT)
