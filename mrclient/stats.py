"""What a crunch did: per-model counters, round summaries, totals, the connection's state.

The concurrent runner records each round from the results it already has, on
the coordinator's thread, once the round is over: no RPC, and per call only a
few integer counters and one slot of a fixed ring of recent latencies (no
allocation). Each ``ModelRunner`` carries its own ``ModelCounters``; a
``StatsBook`` per concurrent runner adds the totals across models (calls by
status, a latency histogram, rounds by method).

One lock, for every statistic of the process, is taken once per round while it
is recorded and once per snapshot while the raw numbers are copied; anything
slower (sorting latencies for the percentiles) happens after it is released.
Readers on any thread get frozen snapshots: ``ModelStats``, ``RoundSummary``,
``CallTotals`` and ``ConnectionState`` are plain data.

This module imports nothing else of mrclient: whoever records tells it what
the outcomes look like (which status is a success, which detail a rest skip).
"""

from __future__ import annotations

import array
import bisect
import heapq
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "CallTotals",
    "ConnectionState",
    "LATENCY_BUCKETS",
    "LATENCY_WINDOW",
    "ModelCounters",
    "ModelStats",
    "RoundSummary",
    "StatsBook",
]

#: Latencies kept per model for its percentiles: its most recent calls.
LATENCY_WINDOW = 256
#: Upper bounds (seconds) of the call latency histogram of the totals; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Models a round summary names as its slowest.
SLOWEST = 5

#: Guards every ModelCounters and StatsBook of the process (see the module docstring).
_LOCK = threading.Lock()
_BUCKET_BOUNDS_US = tuple(round(bound * 1_000_000) for bound in LATENCY_BUCKETS)


@dataclass(frozen=True)
class ModelStats:
    """One model's statistics, as a snapshot (``model_runner.stats``).

    ``calls`` counts the results the model got in rounds, and is always
    ``successes + failures + timeouts``; ``rest_skips`` are the timeouts it was
    answered without being contacted, while resting after timeouts of its own.
    Latency percentiles (milliseconds) cover its last ``LATENCY_WINDOW`` calls
    that reached it (a timeout counts as the time the round waited); None
    before the first. ``last_status``, ``last_latency_ms`` and ``last_error``
    mirror its latest result (``last_error``: the detail of its latest result
    that was not a success). Times are ``time.time()`` seconds.
    """

    model_id: str
    model_name: str | None
    deployment_id: str
    address: str
    joined_at: float | None
    calls: int
    successes: int
    failures: int
    timeouts: int
    rest_skips: int
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_samples: int
    last_status: str | None
    last_latency_ms: float | None
    last_call_at: float | None
    last_error: str | None
    last_error_at: float | None


@dataclass(frozen=True)
class RoundSummary:
    """One round, as the ``on_round`` listeners get it.

    ``called`` models got a result: ``successes + failures + timeouts``. Of the
    timeouts, ``rest_skips`` were models resting (not contacted); of the
    failures, ``left`` were models that left the table during the round
    (``MODEL_LEFT``). ``slowest`` is ``(model_id, latency_ms)``, slowest first.
    """

    method: str
    started_at: float
    wall_time_s: float
    called: int
    successes: int
    failures: int
    timeouts: int
    rest_skips: int
    left: int
    slowest: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class CallTotals:
    """Every round a runner recorded since it was made, summed over models (for metrics).

    ``latency_buckets`` counts calls per bucket of ``LATENCY_BUCKETS`` (not
    cumulative), plus one for the slower ones; rest skips and models that left
    mid-round are not in it.
    """

    rounds: Mapping[str, int]
    round_seconds: Mapping[str, float]
    calls: Mapping[str, int]
    rest_skips: int
    left: int
    latency_buckets: tuple[int, ...]
    latency_sum_s: float


@dataclass(frozen=True)
class ConnectionState:
    """The orchestrator connection, as a snapshot (``runner.connection_state``).

    ``since`` is when it last connected or was lost (``time.time()``; None
    before the first attempt ended); ``reconnects`` counts the times it was
    connected again after being lost. Reports are ``pending`` until sent and
    ``unconfirmed`` until the orchestrator's pongs prove it has them;
    ``reports_sent`` counts the failure reports queued so far, by code.
    """

    connected: bool
    since: float | None
    reconnects: int
    reports_pending: int
    reports_unconfirmed: int
    reports_sent: Mapping[str, int] = field(default_factory=dict)
    last_error: str | None = None


class _Identity(Protocol):
    """What a snapshot reads from the model's runner."""

    model_id: str
    model_name: str | None
    deployment_id: str

    @property
    def target(self) -> str: ...


class ModelCounters:
    """One model's raw counters, mutated only by ``StatsBook.record`` under the lock.

    A runner set up again in place of another for the same deployment takes
    over its counters, so a model's history survives a reconnect.
    """

    __slots__ = (
        "calls", "successes", "failures", "timeouts", "rest_skips", "joined_at",
        "last_status", "last_latency_us", "last_call_at", "last_error", "last_error_at",
        "_latencies", "_next", "_samples",
    )  # fmt: skip

    def __init__(self) -> None:
        self.calls = self.successes = self.failures = self.timeouts = self.rest_skips = 0
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
        """A frozen copy, named after ``identity`` (the model's runner)."""
        with _LOCK:
            counts = (self.calls, self.successes, self.failures, self.timeouts, self.rest_skips)
            last = (self.last_status, self.last_latency_us, self.last_call_at, self.last_error, self.last_error_at)
            joined_at, samples = self.joined_at, self._samples
            latencies = self._latencies[:samples] if samples < LATENCY_WINDOW else array.array("q", self._latencies)
        ordered = sorted(latencies)
        status, latency_us, call_at, error, error_at = last
        return ModelStats(
            model_id=identity.model_id,
            model_name=identity.model_name,
            deployment_id=identity.deployment_id,
            address=identity.target,
            joined_at=joined_at,
            calls=counts[0],
            successes=counts[1],
            failures=counts[2],
            timeouts=counts[3],
            rest_skips=counts[4],
            latency_p50_ms=_percentile_ms(ordered, 0.50),
            latency_p90_ms=_percentile_ms(ordered, 0.90),
            latency_p99_ms=_percentile_ms(ordered, 0.99),
            latency_samples=samples,
            last_status=None if status is None else str(status.value),
            last_latency_ms=None if call_at is None else latency_us / 1000,
            last_call_at=call_at,
            last_error=error,
            last_error_at=error_at,
        )


def _percentile_ms(ordered: list[int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of sorted microseconds, in milliseconds."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] / 1000


class StatsBook:
    """A concurrent runner's recorder: each round into its models' counters and its totals.

    ``success`` and ``timeout`` are the result statuses that mean those (any
    other is a failure); a result whose detail is ``rest_detail`` was a model
    resting, one whose detail is ``left_detail`` a model that left mid-round.
    """

    def __init__(self, *, success: object, timeout: object, rest_detail: str, left_detail: str) -> None:
        self._success, self._timeout = success, timeout
        self._rest, self._left = rest_detail, left_detail
        self._rounds: dict[str, int] = {}
        self._round_seconds: dict[str, float] = {}
        self._calls = {"SUCCESS": 0, "FAILED": 0, "TIMEOUT": 0}
        self._rest_skips = self._left_count = 0
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum_us = 0

    def record(
        self, method: str, results: Mapping[Any, Any], started_at: float, wall_time_s: float
    ) -> RoundSummary:
        """Count one round's results (``runner -> result``) and summarize it.

        The hot path of a large round: one pass, a few integer operations per
        result, attribute reads only; no allocation but the summary's.
        """
        success, timeout, rest, left_detail = self._success, self._timeout, self._rest, self._left
        buckets, bounds, place = self._buckets, _BUCKET_BOUNDS_US, bisect.bisect_left
        successes = failures = timeouts = skips = left = 0
        latency_sum = 0
        now = time.time()
        with _LOCK:
            for runner, result in results.items():
                counters: ModelCounters = runner.counters
                status, us = result.status, result.exec_time_us
                counters.calls += 1
                counters.last_status = status
                counters.last_latency_us = us
                counters.last_call_at = now
                if status is success:
                    counters.successes += 1
                    successes += 1
                else:
                    detail = counters.last_error = result.detail
                    counters.last_error_at = now
                    if status is timeout:
                        counters.timeouts += 1
                        timeouts += 1
                        if detail == rest:
                            counters.rest_skips += 1
                            skips += 1
                            continue  # the model was not contacted: no latency
                    else:
                        counters.failures += 1
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
            self._rest_skips += skips
            self._left_count += left
            self._latency_sum_us += latency_sum
        return RoundSummary(
            method=method,
            started_at=started_at,
            wall_time_s=wall_time_s,
            called=len(results),
            successes=successes,
            failures=failures,
            timeouts=timeouts,
            rest_skips=skips,
            left=left,
            slowest=_slowest(results.items(), rest, left_detail),
        )

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
            )


def _slowest(items: Iterable[tuple[Any, Any]], rest: str, left: str) -> tuple[tuple[str, float], ...]:
    """The ``SLOWEST`` models that were called, slowest first."""
    top = heapq.nlargest(SLOWEST, items, key=lambda item: item[1].exec_time_us)
    return tuple(
        (runner.model_id, result.exec_time_us / 1000) for runner, result in top if result.detail not in (rest, left)
    )
