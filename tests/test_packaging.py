"""What a user of the PyPI package meets first: the command's version and help, and quiet logging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mrclient

RUN_TIMEOUT = 120.0


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args], capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=cwd)


def test_python_dash_m_mrclient_and_version() -> None:
    done = run(sys.executable, "-m", "mrclient", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"mrclient {mrclient.__version__}"


@pytest.mark.parametrize("command", [[], ["demo"], ["watch"], ["call"]], ids=["top", "demo", "watch", "call"])
def test_help_has_no_markup(command: list[str]) -> None:
    done = run(sys.executable, "-m", "mrclient", *command, "--help")
    assert done.returncode == 0 and "usage: mrclient" in done.stdout
    for markup in ("``", ":class:", ":meth:", ".. "):
        assert markup not in done.stdout


def test_the_library_logs_nothing_until_the_application_configures_logging(tmp_path: Path) -> None:
    script = (
        "import logging, mrclient\n"
        "logging.getLogger('mrclient.cluster').warning('a warning nobody asked to see')\n"
        "logging.basicConfig(format='%(name)s %(levelname)s %(message)s')\n"
        "logging.getLogger('mrclient.cluster').warning('shown once configured')\n"
    )
    done = run(sys.executable, "-c", script, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr == "mrclient.cluster WARNING shown once configured\n"
