"""What make relies on to split the suite: --forbid-processes fails a test that starts a process unmarked,
and .ci/check-passes fails when a test is in no pass or in two."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

CHECK_PASSES = REPO_ROOT / ".ci" / "check-passes"


def test_forbid_processes_fails_a_test_that_starts_a_process_and_names_the_mark(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(guard="from conftest import pytest_addoption, pytest_runtest_protocol  # the suite's own\n")
    pytester.syspathinsert()
    pytester.makepyfile(test_inner=(  # the refused process is never started: the guard raises first
        "import subprocess, sys\n"
        "def test_starts_one():\n"
        "    subprocess.run([sys.executable, '-c', ''])\n"
        "def test_starts_none():\n"
        "    assert sum([1, 2]) == 3\n"
    ))
    result = pytester.runpytest("-p", "guard", "-p", "no:cacheprovider", "-p", "no:xdist", "--forbid-processes", "test_inner.py")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_starts_one starts a process: mark it @pytest.mark.subprocess*"])


def _check(tmp_path: Path, *passes: tuple[list[str], list[str]]) -> subprocess.CompletedProcess[str]:
    paths = []
    for n, (selected, deselected) in enumerate(passes):
        path = tmp_path / f"pass-{n}.json"
        path.write_text(json.dumps({"selected": selected, "deselected": deselected}))
        paths.append(str(path))
    return subprocess.run([sys.executable, str(CHECK_PASSES), *paths], capture_output=True, text=True, timeout=60)


@pytest.mark.subprocess
def test_check_passes_fails_a_test_in_no_pass_or_in_two(tmp_path: Path) -> None:
    done = _check(tmp_path, (["a"], ["b", "c"]), (["b"], ["a", "c"]))
    assert done.returncode != 0 and "in no pass: c" in done.stderr, done.stderr
    done = _check(tmp_path, (["a", "b"], ["c"]), (["b", "c"], ["a"]))
    assert done.returncode != 0 and "in 2 passes: b" in done.stderr, done.stderr
    done = _check(tmp_path, (["a"], ["b", "c"]), (["b", "c", "d"], ["a"]))
    assert done.returncode != 0 and "collected other tests" in done.stderr, done.stderr
    done = _check(tmp_path, (["a", "c"], ["b"]), (["b"], ["a", "c"]))
    assert done.returncode == 0 and "2 passes ran each of the 3 tests once" in done.stdout, done.stderr
