"""What happens to a model that fails or times out: one small policy object.

The counters live on each ``ModelRunner``; this policy is the only code that
changes them, and it only decides. The concurrent runner carries out what it
returns (report, health check) so every rule of PROTOCOL.md section 3 is in
this one place:

* a success resets both counters and ends any rest;
* a failure counts; more than ``max_consecutive_failures`` in a row gives
  ``MULTIPLE_FAILED`` (0 disables);
* a timeout counts; more than ``max_consecutive_timeouts`` in a row gives
  ``MULTIPLE_TIMEOUT`` (0 disables); otherwise the model rests for
  ``ceil(consecutive_timeouts / 2)`` calls, then gets one real chance, and a
  repeated timeout asks for a health check;
* a rest skip is answered TIMEOUT without contacting the model and counts
  nothing: only the model's own timeouts count against it;
* a node that lost the model's instance (restarted in place) counts one
  failure, and the runner set up again in its place keeps that count, so a
  node that keeps losing it is reported in the end;
* a model that left the table during a round (``MODEL_LEFT``) counts nothing;
* an answer that shows the coordinator's mistake (``NO_PENALTY_CODES``: the
  node refused the call as malformed, or the result cannot be received or
  decoded here) counts nothing.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from ..runners import ModelRunner
from ..runners.base import MISSING_EXTRA, MISUSE_CODES, RESULT_TOO_LARGE

#: Outcome codes that are the coordinator's doing, not the model's: never a penalty.
NO_PENALTY_CODES = MISUSE_CODES | {RESULT_TOO_LARGE, MISSING_EXTRA}


class TimeoutVerdict(enum.Enum):
    """What to do after a model's timeout."""

    KEEP = "KEEP"
    CHECK_HEALTH = "CHECK_HEALTH"
    REPORT = "MULTIPLE_TIMEOUT"


@dataclass(frozen=True)
class PenaltyPolicy:
    """Failure and timeout thresholds, and the rest and health-check rules."""

    max_consecutive_failures: int = 3
    max_consecutive_timeouts: int = 3

    def resting(self, runner: ModelRunner) -> bool:
        """Whether ``runner`` skips this call (``record_rest`` then uses up one call of its rest)."""
        return runner.cooldown_calls_remaining > 0

    def record_rest(self, runner: ModelRunner) -> None:
        """A call skipped: one call less to rest."""
        runner.cooldown_calls_remaining = max(0, runner.cooldown_calls_remaining - 1)

    def record_success(self, runner: ModelRunner) -> None:
        """An answer clears every count and any rest: penalties are for failures in a row."""
        runner.consecutive_failures = 0
        runner.consecutive_timeouts = 0
        runner.cooldown_calls_remaining = 0

    def record_failure(self, runner: ModelRunner) -> bool:
        """Count a failure; True when the model must be reported ``MULTIPLE_FAILED``."""
        runner.consecutive_failures += 1
        limit = self.max_consecutive_failures
        return bool(limit) and runner.consecutive_failures > limit

    def carry_failures(self, old: ModelRunner, fresh: ModelRunner) -> None:
        """``fresh`` replaces ``old`` after its node lost the model's instance: keep the failure count."""
        fresh.consecutive_failures = old.consecutive_failures

    def record_timeout(self, runner: ModelRunner) -> TimeoutVerdict:
        """Count a timeout, start the model's rest, and say what to do next."""
        runner.consecutive_timeouts += 1
        count = runner.consecutive_timeouts
        limit = self.max_consecutive_timeouts
        if limit and count > limit:
            return TimeoutVerdict.REPORT
        runner.cooldown_calls_remaining = math.ceil(count / 2)
        return TimeoutVerdict.CHECK_HEALTH if count > 1 else TimeoutVerdict.KEEP
