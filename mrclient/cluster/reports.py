"""Which failure reports a coordinator may make, decided with plain data.

The real orchestrator stops a reported model whatever the code: one it does
not know becomes ``UNKNOWN``, so a typo (``"LOW_PERF"``) stops a healthy model.
And a report names its model by id and by the ip the orchestrator announced,
which only a runner this client made carries. So ``report_problem`` refuses,
before anything is sent, a code outside the five of PROTOCOL.md, a reason
that is not text, and anything but a model runner this client made (a dict,
another client's runner); the caller raises ``InvalidCoordinatorUsageError``.
"""

from __future__ import annotations

from collections.abc import Container

from .._support.validation import shown
from ..runners.base import ModelRunner

__all__ = ["FAILURE_CODES", "report_problem", "runner_problem"]

#: The failure codes the orchestrator knows (PROTOCOL.md section 1).
FAILURE_CODES = ("BAD_IMPLEMENTATION", "CONNECTION_FAILED", "MULTIPLE_FAILED", "MULTIPLE_TIMEOUT", "LOW_PERFORMANCE")


def report_problem(runner: object, code: object, reason: object, created: Container[ModelRunner]) -> str | None:
    """What is wrong with reporting ``runner`` with ``code`` and ``reason``, or None when nothing is.

    ``created`` holds the runners this client made: a report about any other
    object (a dict, another client's runner) names no model of this crunch
    that the client knows the announced ip of. The message names the
    parameters as ``report_failure(model_runner, failure_code, failure_reason)``
    does, which contain the cluster's ``runner``, ``code`` and ``reason``.
    """
    if not isinstance(code, str) or code not in FAILURE_CODES:
        return f"failure_code must be one of {', '.join(FAILURE_CODES)}, got {shown(code)} (unknown failure code)"
    if reason is not None and not isinstance(reason, str):
        return f"failure_reason must be a string or None, got {type(reason).__name__} {shown(reason)}"
    return runner_problem(runner, created, "model_runner", "report")


def runner_problem(runner: object, created: Container[ModelRunner], name: str, action: str) -> str | None:
    """Why ``runner`` (the parameter ``name``) is not a runner of this client to ``action``, or None."""
    if not isinstance(runner, ModelRunner):
        return (f"{name} must be a model runner of this runner (from runner.models or a round's results), "
                f"got {type(runner).__name__} {shown(runner)}")
    if runner not in created:
        return f"{name} {runner!r} was not made by this runner: {action} a model runner of this runner"
    return None
