"""Every public callable says what it is for: ``help()`` and the API reference are built from these."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest

import mrclient
from mrclient.orchestrator import OrchestratorSettings
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


# -- the runners' shared options: the base's signature is their one source ------------------------

RUNNERS = (mrclient.DynamicSubclassModelConcurrentRunner, mrclient.TrainInferModelConcurrentRunner)
BASE_OPTIONS = inspect.signature(mrclient.ModelConcurrentRunner.__init__).parameters


def _documented(function: Any) -> list[str]:
    """The argument names of a Google-style ``Args:`` section, in order."""
    lines = (inspect.getdoc(function) or "").splitlines()
    start = lines.index("Args:") + 1
    names = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the section ends at the next unindented line
        match = re.match(r"^ {4}(\w+): ", line)
        if match:
            names.append(match.group(1))
    return names


@pytest.mark.parametrize("runner", RUNNERS, ids=lambda runner: runner.__name__)
def test_each_runner_takes_the_base_options_as_the_base_declares_them(runner: type) -> None:
    own = inspect.signature(runner.__init__).parameters
    assert [name for name in own if name in BASE_OPTIONS] == list(BASE_OPTIONS), "every option, in the base's order"
    for name, option in BASE_OPTIONS.items():
        mine = own[name]
        assert (mine.kind, mine.default, mine.annotation) == (option.kind, option.default, option.annotation), name


@pytest.mark.parametrize("runner", RUNNERS, ids=lambda runner: runner.__name__)
def test_the_base_documents_every_option_and_a_runner_only_its_own(runner: type) -> None:
    assert _documented(mrclient.ModelConcurrentRunner.__init__) == [name for name in BASE_OPTIONS if name != "self"]
    own = [name for name in inspect.signature(runner.__init__).parameters if name not in BASE_OPTIONS]
    assert _documented(runner.__init__) == own
    assert "The other arguments are those of :class:`ModelConcurrentRunner`" in (inspect.getdoc(runner.__init__) or "")


@pytest.mark.parametrize("runner", RUNNERS, ids=lambda runner: runner.__name__)
def test_a_runner_hands_every_option_to_the_base(runner: type) -> None:
    """Non-default values of every option reach the base (``shared_arguments`` forwards them by name)."""
    settings = OrchestratorSettings(ping_interval=7.0)
    own = ["a.B"] if runner is mrclient.DynamicSubclassModelConcurrentRunner else []  # base_classname
    made = runner(2.5, "crunch", "127.0.0.1", "8001", *own, max_consecutive_failures=4, max_consecutive_timeouts=5,
                  report_failure=False, retry_backoff_factor=0.5, orchestrator_settings=settings, init_timeout=6.0,
                  round_switch_interval=0.01, keep_stats=False)
    try:
        assert (made.timeout, made.model_cluster.crunch_id, made.host, made.port) == (2.5, "crunch", "127.0.0.1", 8001)
        assert (made.max_consecutive_failures, made.max_consecutive_timeouts, made.retry_backoff_factor) == (4, 5, 0.5)
        assert (made.init_timeout, made.round_switch_interval, made.keep_stats) == (6.0, 0.01, False)
        assert made.model_cluster.reporting is False and made.model_cluster._settings is settings
    finally:
        made.close()
