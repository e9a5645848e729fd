"""Compile the .proto files beside this script into mrclient/wire/proto.

One command (``make protos``) so the generated code is reproducible; the test
suite runs it into a temporary directory and fails when the committed modules
differ. protoc writes absolute imports (``import commons_pb2``), which only work
when the modules sit at the top level, so they are rewritten as relative imports
to live inside the ``mrclient.wire.proto`` package.
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parent
DEFAULT_OUT = PROTOS.parent / "mrclient" / "wire" / "proto"
_ABSOLUTE_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)
_ABSOLUTE_FROM = re.compile(r"^from (\w+_pb2) import ", re.MULTILINE)
_HEADER = '"""Generated from protos/ by `make protos`; do not edit."""\n'


def generate(out: Path = DEFAULT_OUT) -> list[Path]:
    """Write the *_pb2.py, *_pb2.pyi and *_pb2_grpc.py modules into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(p.name for p in PROTOS.glob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    code = protoc.main(
        [
            "protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *sources,
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    written = []
    for path in sorted(out.glob("*_pb2*.py*")):
        text = _ABSOLUTE_IMPORT.sub(r"from . import \1 as \2", path.read_text())
        text = _ABSOLUTE_FROM.sub(r"from .\1 import ", text)
        path.write_text(text)
        written.append(path)
    (out / "__init__.py").write_text(_HEADER)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for path in generate(target):
        print(path)
