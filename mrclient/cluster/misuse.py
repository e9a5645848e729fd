"""The misuse breaker: when every model answers with the same refusal, the mistake is the coordinator's.

A model node cannot tell a coordinator's mistake from a participant's: it
answers a method name with a typo exactly as a model that lacks the method,
and refuses the coordinator's certificate the same way whoever is wrong. But
a client that sees *every* model give the same answer at once can tell. This module
decides, from the outcomes of one burst (one round, or the setups of
``init()``), whether that happened; callers then raise
``InvalidCoordinatorUsageError`` and report nobody, instead of reporting every
participant.

The rule: among the models that answered (no answer in time, no connection
and a closed runner say nothing either way), every one gave the same
coordinator-shaped refusal, and there were at least two of them, or the model
was the only one called.

A failed Setup (``SETUP_FAILED``) is the participant's as often as not (its
constructor raised), so it takes more: every answer the same *message*, from
at least two models, or a message that names the coordinator's own base class
as not found (the reference node's words when the module is right and the
class misspelt). Participants' constructors that raise say different things,
or name their own classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..runners.base import CallOutcome, ErrorType
from ..security import PLAINTEXT_NODE, REFUSED

__all__ = ["COORDINATOR_MISTAKES", "SETUP_FAILED", "coordinator_mistake", "names_missing_class"]

#: The reference node's status when Setup raised: the base class is not found, or the participant's constructor raised.
SETUP_FAILED = "SETUP_FAILED"

#: Outcomes that carry no answer from the node, so no evidence either way.
_NO_ANSWER = frozenset({ErrorType.TIMEOUT, ErrorType.ABORTED, ErrorType.GRPC_CONNECTION_FAILED})

#: Outcome codes that, from every model at once, are the coordinator's mistake: what to tell it
#: (``{subject}`` names what was called, e.g. "method 'predcit'").
COORDINATOR_MISTAKES = {
    REFUSED: (
        "every model node refused the coordinator: the coordinator's certificate or key is not accepted "
        "(is it the one registered for this crunch?)"
    ),
    PLAINTEXT_NODE: "the model nodes do not speak TLS: they are not in secure mode, so give no credentials",
    "BAD_IMPLEMENTATION": "every model answered BAD_IMPLEMENTATION for {subject}: is the name right?",
    "INVALID_ARGUMENT": "every model refused {subject} as invalid (INVALID_ARGUMENT)",
    "FAILED_PRECONDITION": "every model refused {subject}: it was not set up (FAILED_PRECONDITION)",
    SETUP_FAILED: "every model failed {subject} with the same message: are base_classname and the instance "
    "arguments right?",
}

#: How the reference node says the class a Setup names cannot be used (its ``resolve_class``).
_MISSING_CLASS = (
    re.compile(r"Class '(?P<cls>[^']*)' not found in module '(?P<module>[^']*)'"),
    re.compile(r"Object '(?P<cls>[^']*)' in module '(?P<module>[^']*)' is not a class"),
    re.compile(r"Invalid class name '(?P<cls>[^']*)'"),  # no module part at all
)


def names_missing_class(message: str | None, setup_class: str | None) -> bool:
    """Whether a node's ``message`` says that ``setup_class`` (the coordinator's base class) cannot be found."""
    if not message or not setup_class:
        return False
    for pattern in _MISSING_CLASS:
        for found in pattern.finditer(message):
            module = found.groupdict().get("module")
            if (f"{module}.{found['cls']}" if module is not None else found["cls"]) == setup_class:
                return True
    return False


def coordinator_mistake(
    outcomes: Iterable[CallOutcome], called: int, subject: str | None = None, setup_class: str | None = None
) -> str | None:
    """The coordinator's mistake that ``outcomes`` show, as a message; None when there is none.

    ``called`` is how many models the burst involved, answered or not;
    ``subject`` names what they were asked (default: "the call");
    ``setup_class`` is the class the setups named, for ``SETUP_FAILED``.
    """
    first: CallOutcome | None = None
    answered = 0
    for outcome in outcomes:  # stops at the first answer that rules a mistake out: in a round, a success
        if outcome.error in _NO_ANSWER:
            continue
        if outcome.code not in COORDINATOR_MISTAKES or (first is not None and not _same_refusal(first, outcome)):
            return None
        first = first or outcome
        answered += 1
    if first is None or first.code is None:
        return None
    if first.code == SETUP_FAILED:
        if names_missing_class(first.detail, setup_class):
            return (f"the model nodes cannot find the base class {setup_class!r}: is base_classname right "
                    f"(module and class)?; the node said: {first.detail}")
        if answered < 2:  # one constructor that raised: the participant's, as far as anyone can tell
            return None
    elif answered < 2 and called != 1:
        return None
    message = COORDINATOR_MISTAKES[first.code].format(subject=subject or "the call")
    return f"{message}; the node said: {first.detail}"


def _same_refusal(first: CallOutcome, other: CallOutcome) -> bool:
    """Whether two answers are the same refusal: the same code, and for a failed Setup the same words."""
    return other.code == first.code and (first.code != SETUP_FAILED or other.detail == first.detail)
