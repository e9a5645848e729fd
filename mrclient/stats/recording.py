"""What a crunch did: per-model counters, round summaries, totals, the connection's state.

The concurrent runner records each round from the results it already has, on
the coordinator's thread, once the round is over: no RPC, and per call only a
few integer counters (kept per method: one dictionary look-up) and one slot of
a fixed ring of recent latencies (no allocation). Each ``ModelRunner``
carries its own ``ModelCounters``; a ``StatsBook`` per concurrent runner adds
the totals across models (calls by status and by method, a latency
histogram, rounds by method, the summaries of the last rounds).

One lock, for every statistic of the process, is taken once per round while it
is recorded and once per snapshot while the raw numbers are copied; anything
slower (sorting latencies for the percentiles) happens after it is released.
Readers on any thread get frozen snapshots (``mrclient.stats.snapshots``, exported
by the package): ``ModelStats``, ``RoundSummary``, ``CallTotals`` and ``ConnectionState``
are plain data, which show themselves as tables only when asked.

This module imports nothing else of mrclient but those snapshots: whoever
records tells it what the outcomes look like (which status is a success,
which detail a rest skip).
"""

from __future__ import annotations

import array
import bisect
import collections
import heapq
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from .snapshots import LATENCY_BUCKETS, STATUSES, CallTotals, MethodCounts, ModelStats, RoundSummary

__all__ = ["LATENCY_WINDOW", "RECENT_ROUNDS", "ModelCounters", "StatsBook", "summarize"]

#: Latencies kept per model for its percentiles: its most recent calls.
LATENCY_WINDOW = 256
#: Models a round summary names as its slowest.
SLOWEST = 5
#: Round summaries the totals keep (``CallTotals.recent_rounds``), the latest last.
RECENT_ROUNDS = 64

#: Guards every ModelCounters and StatsBook of the process (see the module docstring).
_LOCK = threading.Lock()
_BUCKET_BOUNDS_US = tuple(round(bound * 1_000_000) for bound in LATENCY_BUCKETS)


# -- recording ----------------------------------------------------------------------------------


class _Tally:
    """One model's raw counts for one method (mutated under the lock)."""

    __slots__ = ("calls", "successes", "failures", "timeouts", "rest_skips")

    def __init__(self) -> None:
        self.calls = self.successes = self.failures = self.timeouts = self.rest_skips = 0

    def counts(self) -> MethodCounts:
        return MethodCounts(self.calls, self.successes, self.failures, self.timeouts, self.rest_skips)


class _Identity(Protocol):
    """What a snapshot reads from the model's runner: who it is, and its state (resting, or when and why it left)."""

    model_id: str
    model_name: str | None
    deployment_id: str
    cooldown_calls_remaining: int
    left_at: float | None
    left_reason: str | None

    @property
    def target(self) -> str: ...


class ModelCounters:
    """One model's raw counters, mutated only by ``StatsBook.record`` under the lock.

    Counts are kept per method (``methods``); the model's totals are their
    sums, made when a snapshot is taken. A runner set up again in place of
    another for the same deployment takes over its counters, so a model's
    history survives a reconnect.
    """

    __slots__ = (
        "methods", "joined_at", "last_status", "last_latency_us", "last_call_at", "last_error", "last_error_at",
        "_latencies", "_next", "_samples",
    )  # fmt: skip

    def __init__(self) -> None:
        self.methods: dict[str, _Tally] = {}
        self.joined_at: float | None = None
        self.last_status: Any = None
        self.last_latency_us = 0
        self.last_call_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._latencies = array.array("q", bytes(8 * LATENCY_WINDOW))  # a ring of microseconds
        self._next = 0
        self._samples = 0

    def mark_joined(self) -> None:
        """The model is ready to be called; the first time is its ``joined_at``."""
        with _LOCK:
            if self.joined_at is None:
                self.joined_at = time.time()

    def snapshot(self, identity: _Identity) -> ModelStats:
        """A frozen copy, named after ``identity`` (the model's runner), in its state: ready, resting or left."""
        left_reason, left_at = identity.left_reason, identity.left_at
        if left_at is not None:
            state = "left"
        else:
            state = "resting" if identity.cooldown_calls_remaining > 0 else "ready"
        with _LOCK:
            by_method = {method: tally.counts() for method, tally in self.methods.items()}
            last = (self.last_status, self.last_latency_us, self.last_call_at, self.last_error, self.last_error_at)
            joined_at, samples = self.joined_at, self._samples
            latencies = self._latencies[:samples] if samples < LATENCY_WINDOW else array.array("q", self._latencies)
        ordered = sorted(latencies)
        status, latency_us, call_at, error, error_at = last
        counts = by_method.values()
        return ModelStats(
            model_id=identity.model_id,
            model_name=identity.model_name,
            deployment_id=identity.deployment_id,
            address=identity.target,
            joined_at=joined_at,
            calls=sum(c.calls for c in counts),
            successes=sum(c.successes for c in counts),
            failures=sum(c.failures for c in counts),
            timeouts=sum(c.timeouts for c in counts),
            rest_skips=sum(c.rest_skips for c in counts),
            latency_p50_ms=_percentile_ms(ordered, 0.50),
            latency_p90_ms=_percentile_ms(ordered, 0.90),
            latency_p99_ms=_percentile_ms(ordered, 0.99),
            latency_samples=samples,
            last_status=None if status is None else str(status.value),
            last_latency_ms=None if call_at is None else latency_us / 1000,
            last_call_at=call_at,
            last_error=error,
            last_error_at=error_at,
            by_method=by_method,
            state=state,
            left_at=left_at,
            left_reason=left_reason if left_at is not None else None,
        )


def _percentile_ms(ordered: list[int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of sorted microseconds, in milliseconds."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] / 1000


class StatsBook:
    """A concurrent runner's recorder: each round into its models' counters and its totals.

    ``success`` and ``timeout`` are the result statuses that mean those (any
    other is a failure); a result whose detail starts with ``rest_detail`` was
    a model not contacted (resting after timeouts, or, in a map, busy with an
    earlier input), one whose detail is ``left_detail`` a model that left mid-round.
    """

    def __init__(self, *, success: object, timeout: object, rest_detail: str, left_detail: str) -> None:
        self._success, self._timeout = success, timeout
        self._rest, self._left = rest_detail, left_detail
        self._rounds: dict[str, int] = {}
        self._round_seconds: dict[str, float] = {}
        self._calls = dict.fromkeys(STATUSES, 0)
        self._calls_by_method: dict[str, dict[str, int]] = {}
        self._rest_skips = self._left_count = 0
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum_us = 0
        self._recent: collections.deque[RoundSummary] = collections.deque(maxlen=RECENT_ROUNDS)

    def record(
        self, method: str, results: Mapping[Any, Any], started_at: float, wall_time_s: float
    ) -> RoundSummary:
        """Count one round's results (``runner -> result``) and summarize it.

        The hot path of a large round: one pass, a few integer operations and
        one dictionary look-up (the model's counts for ``method``) per result,
        attribute reads only; no allocation but the summary's (and a model's
        first call of a method).
        """
        success, timeout, rest, left_detail = self._success, self._timeout, self._rest, self._left
        buckets, bounds, place = self._buckets, _BUCKET_BOUNDS_US, bisect.bisect_left
        successes = failures = timeouts = skips = left = 0
        latency_sum = 0
        now = time.time()
        with _LOCK:
            for runner, result in results.items():
                counters: ModelCounters = runner.counters
                tally = counters.methods.get(method)
                if tally is None:
                    tally = counters.methods[method] = _Tally()
                status, us = result.status, result.exec_time_us
                tally.calls += 1
                counters.last_status = status
                counters.last_latency_us = us
                counters.last_call_at = now
                if status is success:
                    tally.successes += 1
                    successes += 1
                else:
                    detail = counters.last_error = result.detail
                    counters.last_error_at = now
                    if status is timeout:
                        tally.timeouts += 1
                        timeouts += 1
                        if detail is not None and detail.startswith(rest):
                            tally.rest_skips += 1
                            skips += 1
                            continue  # the model was not contacted: no latency
                    else:
                        tally.failures += 1
                        failures += 1
                        if detail == left_detail:
                            left += 1
                            continue  # the runner was closed: no latency
                index = counters._next
                counters._latencies[index] = us
                counters._next = (index + 1) % LATENCY_WINDOW
                if counters._samples < LATENCY_WINDOW:
                    counters._samples += 1
                buckets[place(bounds, us)] += 1
                latency_sum += us
            self._rounds[method] = self._rounds.get(method, 0) + 1
            self._round_seconds[method] = self._round_seconds.get(method, 0.0) + wall_time_s
            calls = self._calls
            calls["SUCCESS"] += successes
            calls["FAILED"] += failures
            calls["TIMEOUT"] += timeouts
            of_method = self._calls_by_method.get(method)
            if of_method is None:
                of_method = self._calls_by_method[method] = dict.fromkeys(STATUSES, 0)
            of_method["SUCCESS"] += successes
            of_method["FAILED"] += failures
            of_method["TIMEOUT"] += timeouts
            self._rest_skips += skips
            self._left_count += left
            self._latency_sum_us += latency_sum
        counts = _RoundCounts(successes, failures, timeouts, skips, left)
        summary = _summary(method, results, started_at, wall_time_s, counts, rest, left_detail)
        with _LOCK:
            self._recent.append(summary)
        return summary

    def totals(self) -> CallTotals:
        """The totals so far, as a snapshot."""
        with _LOCK:
            return CallTotals(
                rounds=dict(self._rounds),
                round_seconds=dict(self._round_seconds),
                calls=dict(self._calls),
                rest_skips=self._rest_skips,
                left=self._left_count,
                latency_buckets=tuple(self._buckets),
                latency_sum_s=self._latency_sum_us / 1e6,
                calls_by_method={method: dict(counts) for method, counts in self._calls_by_method.items()},
                recent_rounds=tuple(self._recent),
            )


def summarize(
    method: str,
    results: Mapping[Any, Any],
    started_at: float,
    wall_time_s: float,
    *,
    success: object,
    timeout: object,
    rest_detail: str,
    left_detail: str,
) -> RoundSummary:
    """The summary of a round that was not recorded (``keep_stats=False``), by the rules of ``record``."""
    successes = failures = timeouts = skips = left = 0
    for result in results.values():
        if result.status is success:
            successes += 1
        elif result.status is timeout:
            timeouts += 1
            skips += result.detail is not None and result.detail.startswith(rest_detail)
        else:
            failures += 1
            left += result.detail == left_detail
    counts = _RoundCounts(successes, failures, timeouts, skips, left)
    return _summary(method, results, started_at, wall_time_s, counts, rest_detail, left_detail)


class _RoundCounts(NamedTuple):
    """A round's results counted (the fields of ``RoundSummary`` that say so, by the same names)."""

    successes: int
    failures: int
    timeouts: int
    rest_skips: int
    left: int


def _summary(
    method: str,
    results: Mapping[Any, Any],
    started_at: float,
    wall_time_s: float,
    counts: _RoundCounts,
    rest_detail: str,
    left_detail: str,
) -> RoundSummary:
    """The summary of a round from its counts, ``record``'s and ``summarize``'s alike."""
    return RoundSummary(
        method=method,
        started_at=started_at,
        wall_time_s=wall_time_s,
        called=len(results),
        slowest=_slowest(results.items(), rest_detail, left_detail),
        **counts._asdict(),
    )


def _slowest(items: Iterable[tuple[Any, Any]], rest: str, left: str) -> tuple[tuple[str, float], ...]:
    """The ``SLOWEST`` models that were called, slowest first."""
    top = heapq.nlargest(SLOWEST, items, key=lambda item: item[1].exec_time_us)
    return tuple(
        (runner.model_id, result.exec_time_us / 1000)
        for runner, result in top
        if result.detail != left and not (result.detail or "").startswith(rest)
    )
