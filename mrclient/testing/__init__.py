"""Real peers on loopback for tests: a local orchestrator and local model nodes.

Coordinators use these in their own test suites instead of mocks. Each class is
imported on first use, so ``LocalModelNode`` works without the ``testing``
extra (``websockets``) that ``LocalOrchestrator`` needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .node import LocalModelNode
    from .orchestrator import LocalOrchestrator

__all__ = ["LocalModelNode", "LocalOrchestrator"]


def __getattr__(name: str) -> Any:
    if name == "LocalModelNode":
        from .node import LocalModelNode

        return LocalModelNode
    if name == "LocalOrchestrator":
        from .orchestrator import LocalOrchestrator

        return LocalOrchestrator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
