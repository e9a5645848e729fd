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

from ..runners.base import ModelRunner

__all__ = ["FAILURE_CODES", "report_problem"]

#: The failure codes the orchestrator knows (PROTOCOL.md section 1).
FAILURE_CODES = ("BAD_IMPLEMENTATION", "CONNECTION_FAILED", "MULTIPLE_FAILED", "MULTIPLE_TIMEOUT", "LOW_PERFORMANCE")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def report_problem(runner: object, code: object, reason: object, created: Container[ModelRunner]) -> str | None:
    """What is wrong with reporting ``runner`` with ``code`` and ``reason``, or None when nothing is.

    ``created`` holds the runners this client made: a report about any other
    object (a dict, another client's runner) names no model of this crunch
    that the client knows the announced ip of.
    """
    if not isinstance(code, str) or code not in FAILURE_CODES:
        return f"unknown failure code {_show(code)}: use one of {', '.join(FAILURE_CODES)}"
    if reason is not None and not isinstance(reason, str):
        return f"the failure reason must be a string or None, not {type(reason).__name__} {_show(reason)}"
    if not isinstance(runner, ModelRunner):
        return (f"report_failure() needs a model runner of this runner (from runner.models or a round's "
                f"results), not {type(runner).__name__} {_show(runner)}")
    if runner not in created:
        return f"{runner!r} was not made by this runner: report a model runner of this runner"
    return None
