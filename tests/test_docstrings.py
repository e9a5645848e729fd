"""Every public callable says what it is for: ``help()`` and the API reference are built from these."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import mrclient
from mrclient.testing import LocalModelNode, LocalOrchestrator


def _public() -> Iterator[tuple[str, Any]]:
    """``(name, object)`` for each public name, and each public method and property of the public classes."""
    names = [(name, getattr(mrclient, name)) for name in mrclient.__all__ if name != "__version__"]
    names += [("LocalModelNode", LocalModelNode), ("LocalOrchestrator", LocalOrchestrator)]
    for name, obj in names:
        yield name, obj
        if not inspect.isclass(obj):
            continue
        for attribute, value in vars(obj).items():
            if attribute.startswith("_") and attribute != "__init__":
                continue
            if isinstance(value, property):
                yield f"{name}.{attribute}", value.fget
            elif isinstance(value, (classmethod, staticmethod)):
                yield f"{name}.{attribute}", value.__func__
            elif inspect.isfunction(value) or inspect.isclass(value):
                yield f"{name}.{attribute}", getattr(obj, attribute)


def test_every_public_callable_has_a_docstring() -> None:
    public = dict(_public())
    assert len(public) > 90, "the walk found the public surface"
    missing = [name for name, obj in public.items() if not (inspect.getdoc(obj) or "").strip()]
    assert missing == []


def test_help_shows_the_runners_real_options() -> None:
    text = inspect.signature(mrclient.DynamicSubclassModelConcurrentRunner).__str__()
    for option in ("report_failure", "max_consecutive_failures", "max_consecutive_timeouts", "secure_credentials"):
        assert option in text
    assert "**kwargs" not in text
