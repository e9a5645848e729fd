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
"""

from __future__ import annotations

from collections.abc import Iterable

from .runners.base import CallOutcome, ErrorType
from .security import PLAINTEXT_NODE, REFUSED

__all__ = ["COORDINATOR_MISTAKES", "coordinator_mistake"]

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
}


def coordinator_mistake(outcomes: Iterable[CallOutcome], called: int, subject: str | None = None) -> str | None:
    """The coordinator's mistake that ``outcomes`` show, as a message; None when there is none.

    ``called`` is how many models the burst involved, answered or not;
    ``subject`` names what they were asked (default: "the call").
    """
    first: CallOutcome | None = None
    answered = 0
    for outcome in outcomes:  # stops at the first answer that rules a mistake out: in a round, a success
        if outcome.error in _NO_ANSWER:
            continue
        if outcome.code not in COORDINATOR_MISTAKES or (first is not None and outcome.code != first.code):
            return None
        first = first or outcome
        answered += 1
    if first is None or first.code is None or (answered < 2 and called != 1):
        return None
    message = COORDINATOR_MISTAKES[first.code].format(subject=subject or "the call")
    return f"{message}; the node said: {first.detail}"
