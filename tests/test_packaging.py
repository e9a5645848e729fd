"""What a user of the PyPI package meets first: the command's version and help, and quiet logging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mrclient

pytestmark = pytest.mark.subprocess  # the command, the build and a fresh venv

RUN_TIMEOUT = 120.0


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args], capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=cwd)


def test_python_dash_m_mrclient_and_version() -> None:
    done = run(sys.executable, "-m", "mrclient", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"mrclient {mrclient.__version__}"


@pytest.mark.parametrize("command", [[], ["demo"], ["serve"], ["watch"], ["call"]], ids=["top", "demo", "serve", "watch", "call"])
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


# -- the built distributions ----------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 600.0


def _run_checked(*args: str, timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.timeout(1200)
@pytest.mark.xdist_group("writes mrclient.egg-info in the clone")  # so does test_beside_reference.py: not both at once
def test_build_then_install_the_wheel_in_a_fresh_venv_and_run_the_demo(tmp_path: Path) -> None:
    import tarfile
    import zipfile

    dist = tmp_path / "dist"
    _run_checked(sys.executable, "-m", "build", "--outdir", str(dist), str(REPO_ROOT))  # the wheel is built from the sdist
    [sdist] = dist.glob("mrclient-*.tar.gz")
    [wheel] = dist.glob("mrclient-*.whl")
    assert wheel.name == f"mrclient-{mrclient.__version__}-py3-none-any.whl", "the name README and the quickstart give"

    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    assert {"LICENSE", "CHANGELOG.rst", "README.rst", "protos/commons.proto", "docs/notebooks/quickstart.ipynb"} <= names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names), "the sdist ships no tests (MANIFEST.in)"

    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"mrclient-{mrclient.__version__}.dist-info/METADATA").decode()
        assert "mrclient/py.typed" in archive.namelist()
    for line in (
        "Classifier: Programming Language :: Python :: 3.10",
        "Classifier: Programming Language :: Python :: 3.13",
        "Classifier: Typing :: Typed",
        "Classifier: Topic :: Software Development :: Libraries :: Python Modules",
        "License-Expression: MIT",  # the SPDX expression (PEP 639), not a License classifier
        "Project-URL: Model node, https://pypi.org/project/crunch-model-runner/",
        "Requires-Dist: protobuf>=4.25.0",
        'Requires-Dist: matplotlib>=3.8.0; extra == "notebook"',
        "License-File: LICENSE",
    ):
        assert line in metadata
    assert "Classifier: License ::" not in metadata and "\nLicense: " not in metadata
    urls = [line for line in metadata.splitlines() if line.startswith(("Project-URL:", "Home-page:"))]
    assert all("pypi.org/project/" in url for url in urls), f"only pages that exist, no guessed home: {urls}"

    venv = tmp_path / "venv"
    _run_checked(sys.executable, "-m", "venv", str(venv))
    python, command = str(venv / "bin" / "python"), str(venv / "bin" / "mrclient")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-compile"]
    _run_checked(*pip, str(wheel))
    assert _run_checked(command, "--version").stdout.strip() == f"mrclient {mrclient.__version__}"
    without_extra = run(command, "demo", "--rounds", "1")
    assert without_extra.returncode == 1 and ".whl[testing]' with a wheel" in without_extra.stderr

    _run_checked(*pip, f"{wheel}[testing]")
    demo = _run_checked(command, "demo", "--rounds", "1", "--models", "3", timeout=RUN_TIMEOUT).stdout
    for status in ("SUCCESS", "FAILED", "TIMEOUT"):
        assert status in demo, demo
