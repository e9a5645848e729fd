"""The supported dependency range is what is tested.

setup.cfg's floors are the oldest pins (.ci/pins-oldest.txt), a pin venv of
``make test`` really runs its pins, and the committed generated code carries no
version gate that would stop it importing on the oldest protobuf or grpcio.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from conftest import REPO_ROOT, read_pins

OLDEST = REPO_ROOT / ".ci" / "pins-oldest.txt"
#: Pinned in the oldest venv without being a requirement of ours.
TOOLS = {"grpcio-tools", "numpy"}


def _floors() -> dict[str, str]:
    """``name -> floor`` of every requirement and extra a user installs."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in ("parquet", "secure", "testing", "metrics", "watch", "notebook"):
        lines += config["options.extras_require"][extra].splitlines()
    floors = {}
    for line in filter(None, (line.strip() for line in lines)):
        requirement = Requirement(line)
        [floor] = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        floors[requirement.name.lower()] = floor
    return floors


def test_the_floors_are_the_oldest_pins() -> None:
    pins = read_pins(OLDEST)
    floors = _floors()
    assert floors == {name: version for name, version in pins.items() if name not in TOOLS}


def test_a_pin_venv_runs_its_pins() -> None:
    pins_file = os.environ.get("MRCLIENT_PINS")
    if not pins_file:
        pytest.skip("only in the pin venvs of make test (MRCLIENT_PINS names their pins)")
    pins = read_pins(REPO_ROOT / pins_file)
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert installed == pins


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "mrclient" / "wire" / "proto").glob("*_pb2*.py")), ids=lambda p: p.name)
def test_the_generated_code_has_no_version_gate(path: Path) -> None:
    """Newer protoc writes checks that refuse an older protobuf or grpcio at import time."""
    text = path.read_text()
    assert "_runtime_version" not in text, "regenerate with make protos (an older grpcio-tools)"
    assert "GRPC_GENERATED_VERSION" not in text, "regenerate with make protos (an older grpcio-tools)"
