"""Another commit's mrclient inside the A/B process, as the package ``mrclient_base``.

To tell whether a change costs a round anything, the code before it and the
code after it must run in the same process, alternated round by round against
the same cluster (``benchmarks.ab --variant code=base,current``): two runs
one after the other on a shared machine differ by more than the percent being
decided. So the parent (``benchmarks.ab``) extracts the ``mrclient/`` tree of
a git revision (``MRCLIENT_AB_BASE``, default ``HEAD``: the last commit
against the working tree) with ``git archive`` into the run's directory,
renamed ``mrclient_base``, and the A/B client imports it beside ``mrclient``.

Its generated protobuf modules are this checkout's (``mrclient.wire.proto``): the
wire code is the same in both (``make protos`` writes it), and protobuf's
descriptor pool would refuse a second copy of the same files. Everything else
is the base commit's own code, relative imports and all. Each variant then
gets its own runner, channels and call pool, in the same process.

Standard library only: it runs in the A/B processes.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

__all__ = ["BASE_ENV", "PACKAGE", "extract", "runner_class"]

#: The git revision whose mrclient is the ``base`` variant.
BASE_ENV = "MRCLIENT_AB_BASE"
#: The name the base commit's package is imported under.
PACKAGE = "mrclient_base"
REPO = Path(__file__).resolve().parent.parent


def extract(into: Path, revision: str | None = None) -> dict[str, str]:
    """Write ``revision``'s ``mrclient/`` as ``into/mrclient_base``; ``{"base_dir": ..., "base_commit": sha}``."""
    revision = revision or os.environ.get(BASE_ENV) or "HEAD"
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=REPO, capture_output=True, text=True,
        check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "mrclient"], cwd=REPO, capture_output=True, check=True, timeout=120
    ).stdout
    target = into / PACKAGE
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()) or not member.name.startswith("mrclient"):
                continue
            path = target / Path(member.name).relative_to("mrclient")
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            path.write_bytes(source.read())
    return {"base_dir": str(into), "base_commit": commit}


def _share_protos() -> None:
    """The base commit's generated modules are this checkout's: one copy of each in the descriptor pool.

    A base from before the layers (``mrclient_base.proto``) and one after them
    (``mrclient_base.wire.proto``) both find them.
    """
    import mrclient.wire.proto as protos

    for package in (f"{PACKAGE}.proto", f"{PACKAGE}.wire.proto"):
        sys.modules[package] = protos
        for module in pkgutil.iter_modules(protos.__path__):
            sys.modules[f"{package}.{module.name}"] = importlib.import_module(f"mrclient.wire.proto.{module.name}")


def runner_class(config: Mapping[str, Any]) -> type:
    """The base commit's ``DynamicSubclassModelConcurrentRunner``, imported from ``config["base_dir"]``."""
    if PACKAGE not in sys.modules:
        base_dir = config.get("base_dir")
        if not base_dir:
            raise RuntimeError("the code=base variant needs the base commit extracted (benchmarks.ab does it)")
        sys.path.insert(0, str(base_dir))
        _share_protos()
    package = importlib.import_module(PACKAGE)
    cls: type = package.DynamicSubclassModelConcurrentRunner
    return cls
