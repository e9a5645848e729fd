"""Real peers on loopback for tests: a local orchestrator and local model nodes.

Coordinators use these in their own test suites instead of mocks. Each class is
imported on first use, so ``LocalModelNode`` works without the ``testing``
extra (``websockets``) that ``LocalOrchestrator`` needs, and without the
``secure`` extra that ``LocalCertificateAuthority`` and ``Cruncher`` (secure
mode on loopback, ``mrclient.testing.secure``) need.

Layer 4, beside ``runners``: the peers speak the wire and secure mode, and
share no code with the client that tests them. It may import ``errors``,
``_support``, ``wire`` and ``security``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .node import LocalModelNode
    from .orchestrator import LocalOrchestrator
    from .secure import Cruncher, LocalCertificateAuthority

__all__ = ["Cruncher", "LocalCertificateAuthority", "LocalModelNode", "LocalOrchestrator"]

_MODULE_OF = {
    "Cruncher": ".secure",
    "LocalCertificateAuthority": ".secure",
    "LocalModelNode": ".node",
    "LocalOrchestrator": ".orchestrator",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
