"""The async reference client's own virtual environment, made on first use.

``model-runner-client==0.14.0`` pins ``websockets<15`` and pandas, which
mrclient's environment does not share, so it lives in ``.venv-bench-reference``
(ignored by git, removed by ``make clean``). ``benchmarks.run`` calls
``ensure()`` when the reference client is part of a run; a stamp naming the
requirement marks the venv complete and a file lock keeps two runs (a
benchmark and the smoke test) from building it at once.

    python -m benchmarks.reference_venv     # make it now; prints its interpreter
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REQUIREMENT = "model-runner-client==0.14.0"
VENV = Path(__file__).resolve().parent.parent / ".venv-bench-reference"
INSTALL_TIMEOUT = 900.0


def _base_python() -> str:
    """A python >= 3.11 (the reference client's floor): ours, or one on PATH."""
    if sys.version_info >= (3, 11):
        return str(getattr(sys, "_base_executable", sys.executable))
    for name in ("python3.13", "python3.12", "python3.11"):
        path = shutil.which(name)
        if path is not None:
            return path
    raise RuntimeError(f"{REQUIREMENT} needs python >= 3.11 and none is on PATH")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")


def ensure(venv: Path = VENV, also: Sequence[str] = (), key: str = "") -> Path:
    """The interpreter of a venv holding the reference client; built first if needed.

    ``also``: more pip arguments, installed with the reference client in one
    resolve (tests/test_beside_reference.py adds ``-e .[testing]``); ``key``:
    more text for the stamp, so that a change to what ``also`` installs (a
    digest of setup.cfg, say) rebuilds the venv.
    """
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = "\n".join([REQUIREMENT, *also, key]).strip()
    venv.mkdir(parents=True, exist_ok=True)
    with open(venv / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if stamp.exists() and stamp.read_text() == wanted and python.exists():
                return python
            print(f"creating {venv} with {REQUIREMENT} {' '.join(also)} (once)", file=sys.stderr, flush=True)
            _run([_base_python(), "-m", "venv", str(venv)])  # keeps .lock
            pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-compile"]
            _run([*pip, REQUIREMENT, *also])
            stamp.write_text(wanted)
            return python
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


if __name__ == "__main__":
    print(ensure())
