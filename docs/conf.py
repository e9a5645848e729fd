"""Sphinx configuration: ``make docs`` builds docs/ with warnings as errors.

The build is offline (CI reaches package registries only), so intersphinx reads
small inventories written here, naming the Python and gRPC objects these pages
and the API reference link to, instead of downloading the projects' own.
The notebook is executed during the build (myst-nb, nbclient): a cell that
raises fails the build.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

import mrclient  # noqa: E402  (after the path, so the docs describe this checkout)

project = "mrclient"
author = "the mrclient authors"
copyright = "2026, the mrclient authors"
release = version = mrclient.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = f"mrclient {release}"
pygments_style = "sphinx"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# The notebook runs on every build; it starts a local cluster, so it needs a few seconds.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 120
nb_execution_show_tb = True

# -- offline intersphinx --------------------------------------------------------------------

PYTHON_OBJECTS = {
    "py:module": {"logging": "library/logging.html#module-logging"},
    "py:class": {
        "logging.NullHandler": "library/logging.handlers.html#logging.NullHandler",
        "logging.Logger": "library/logging.html#logging.Logger",
        "concurrent.futures.ThreadPoolExecutor": (
            "library/concurrent.futures.html#concurrent.futures.ThreadPoolExecutor"
        ),
        "threading.Thread": "library/threading.html#threading.Thread",
        "pathlib.Path": "library/pathlib.html#pathlib.Path",
        "types.MappingProxyType": "library/types.html#types.MappingProxyType",
        "collections.abc.Callable": "library/collections.abc.html#collections.abc.Callable",
        "collections.abc.Iterable": "library/collections.abc.html#collections.abc.Iterable",
        "collections.abc.Mapping": "library/collections.abc.html#collections.abc.Mapping",
        "collections.abc.Sequence": "library/collections.abc.html#collections.abc.Sequence",
        "str": "library/stdtypes.html#str",
        "bytes": "library/stdtypes.html#bytes",
        "int": "library/functions.html#int",
        "float": "library/functions.html#float",
        "bool": "library/functions.html#bool",
        "dict": "library/stdtypes.html#dict",
        "list": "library/stdtypes.html#list",
        "tuple": "library/stdtypes.html#tuple",
    },
    "py:function": {
        "logging.basicConfig": "library/logging.html#logging.basicConfig",
        "logging.getLogger": "library/logging.html#logging.getLogger",
        "concurrent.futures.wait": "library/concurrent.futures.html#concurrent.futures.wait",
        "asyncio.run": "library/asyncio-runner.html#asyncio.run",
    },
    "py:data": {
        "None": "library/constants.html#None",
        "typing.Any": "library/typing.html#typing.Any",
    },
    "py:exception": {
        name: f"library/exceptions.html#{name}"
        for name in (
            "Exception", "ConnectionError", "RuntimeError", "TypeError", "ValueError",
            "ImportError", "NotImplementedError", "AttributeError", "KeyboardInterrupt",
        )
    },  # fmt: skip
}
GRPC_OBJECTS = {
    "py:module": {"grpc": "grpc.html#module-grpc"},
    "py:class": {
        name: f"grpc.html#{name}"
        for name in ("grpc.Channel", "grpc.StatusCode", "grpc.ChannelCredentials", "grpc.ServerCredentials")
    },
    "py:exception": {"grpc.RpcError": "grpc.html#grpc.RpcError"},
    "py:function": {"grpc.insecure_channel": "grpc.html#grpc.insecure_channel"},
}


def _inventory(name: str, objects: dict[str, dict[str, str]]) -> str:
    """Write a Sphinx inventory (format 2) of ``objects`` into the build tree; returns its path."""
    lines = [
        f"{target} {role} 1 {uri} -"
        for role, targets in objects.items()
        for target, uri in sorted(targets.items())
    ]
    header = (
        f"# Sphinx inventory version 2\n# Project: {name}\n# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path = DOCS / "_build" / "inventories" / f"{name}.inv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + zlib.compress("\n".join(lines).encode() + b"\n"))
    return str(path)


intersphinx_mapping = {
    "python": ("https://docs.python.org/3", _inventory("python", PYTHON_OBJECTS)),
    "grpc": ("https://grpc.github.io/grpc/python", _inventory("grpc", GRPC_OBJECTS)),
}
