"""What the docs show runs as shown (the build itself is ``make docs``, warnings as errors)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

from conftest import REPO_ROOT
from mrclient.penalties import PenaltyPolicy, TimeoutVerdict

DOCS = REPO_ROOT / "docs"
RUN_TIMEOUT = 120.0


def python_blocks(page: str) -> list[str]:
    """Every ``.. code-block:: python`` of a docs page, dedented."""
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", (DOCS / page).read_text(), re.MULTILINE)
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in blocks]


def test_the_quickstarts_first_script_runs(tmp_path: Path) -> None:
    [script] = [block for block in python_blocks("quickstart.rst") if "LocalOrchestrator" in block]
    (tmp_path / "first.py").write_text(script)
    done = subprocess.run([sys.executable, "first.py"], capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6 and all("SUCCESS" in line for line in lines), done.stdout


def test_the_testing_pages_fixture_passes_under_pytest(tmp_path: Path) -> None:
    [example] = [block for block in python_blocks("testing.rst") if "def test_" in block]
    (tmp_path / "test_my_coordinator.py").write_text(example)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_coordinator.py"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def _calls_until_reported(max_consecutive_timeouts: int) -> tuple[list[int], int]:
    """(calls that really time out, call on which the model is reported) for a model that never answers."""

    class Runner:
        consecutive_failures = consecutive_timeouts = cooldown_calls_remaining = 0

    policy, runner, timed_out = PenaltyPolicy(max_consecutive_timeouts=max_consecutive_timeouts), Runner(), []
    for call in range(1, 100):
        if policy.resting(runner):  # type: ignore[arg-type]
            policy.record_rest(runner)  # type: ignore[arg-type]
            continue
        timed_out.append(call)
        if policy.record_timeout(runner) is TimeoutVerdict.REPORT:  # type: ignore[arg-type]
            return timed_out, call
    raise AssertionError("never reported")


def test_the_migration_pages_report_timing_is_the_policys() -> None:
    text = (DOCS / "migrating.rst").read_text()
    assert _calls_until_reported(3) == ([1, 3, 5, 8], 8)
    assert "times out on\ncalls 1, 3, 5 and 8 and is reported on call 8" in text
    assert _calls_until_reported(1)[1] == 3
    assert "(with ``1``, the report comes on call 3)" in text
    assert "and\n8 (resting in between) and is reported on call 8" in (DOCS / "concepts.rst").read_text()


@pytest.mark.parametrize(
    "title",
    [
        "A per-model arguments function that raises",
        "``model_runs=[]`` means none",
        "call()'s positional arguments",
        "sync() is not the reconnect loop",
        "When a model that always times out is reported",
    ],
)
def test_the_migration_page_shows_each_difference_with_the_mrclient_way(title: str) -> None:
    text = (DOCS / "migrating.rst").read_text()
    section = text[text.index(f"\n{title}\n") :]
    section = section[: section.find("\n---", len(title) + 4 + 10)]
    assert "*Reference*" in section and "*mrclient*" in section
    assert ".. code-block:: python" in section


def test_the_notebook_runs_headless_and_is_committed_without_outputs() -> None:
    path = DOCS / "notebooks" / "quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    nbclient.NotebookClient(notebook, timeout=RUN_TIMEOUT, kernel_name="python3").execute()  # raises on a cell error
    table = code[-2].outputs[0]["data"]["text/plain"]
    for status in ("SUCCESS", "FAILED", "TIMEOUT"):
        assert status in table
    assert code[-1].outputs[0]["data"]["text/plain"] == "[]", "after close() no model is left"
