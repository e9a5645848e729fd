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
Readers on any thread get frozen snapshots: ``ModelStats``, ``RoundSummary``,
``CallTotals`` and ``ConnectionState`` are plain data. Their times are
``time.time()`` floats, with a datetime view of each (``joined_datetime``...),
and their reprs, HTML and DataFrames (``mrclient.display``, built only when
shown) read as datetimes and milliseconds.

This module imports nothing else of mrclient but ``display`` (plain string
helpers): whoever records tells it what the outcomes look like (which status
is a success, which detail a rest skip).
"""

from __future__ import annotations

import array
import bisect
import collections
import dataclasses
import datetime
import heapq
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from . import display
from .display import Column

__all__ = [
    "CallTotals",
    "ConnectionState",
    "LATENCY_BUCKETS",
    "LATENCY_WINDOW",
    "MethodCounts",
    "ModelCounters",
    "ModelStats",
    "ModelStatsTable",
    "RECENT_ROUNDS",
    "RoundSummary",
    "StatsBook",
    "bucket_label",
    "summarize",
]

#: Latencies kept per model for its percentiles: its most recent calls.
LATENCY_WINDOW = 256
#: Upper bounds (seconds) of the call latency histogram of the totals; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Models a round summary names as its slowest.
SLOWEST = 5
#: Round summaries the totals keep (``CallTotals.recent_rounds``), the latest last.
RECENT_ROUNDS = 64
#: The statuses of a result, in the order tables show them.
STATUSES = ("SUCCESS", "FAILED", "TIMEOUT")

#: Guards every ModelCounters and StatsBook of the process (see the module docstring).
_LOCK = threading.Lock()
_BUCKET_BOUNDS_US = tuple(round(bound * 1_000_000) for bound in LATENCY_BUCKETS)


def bucket_label(bound: float) -> str:
    """A histogram bucket read by a person: ``≤ 2.5 ms``, ``≤ 1 s``, ``> 60 s`` for the last (``inf``)."""
    if math.isinf(bound):
        return f"> {_seconds_text(LATENCY_BUCKETS[-1])}"
    return f"≤ {_seconds_text(bound)}"


def _seconds_text(seconds: float) -> str:
    return f"{seconds * 1000:g} ms" if seconds < 1 else f"{seconds:g} s"


# -- readable reprs: times as datetimes, figures rounded -------------------------------------------

#: Fields that hold a ``time.time()`` timestamp, shown as local datetimes.
_TIME_FIELDS = frozenset({"joined_at", "last_call_at", "last_error_at", "started_at", "since"})


def _when(timestamp: float | None) -> str:
    moment = display.as_datetime(timestamp)
    return "None" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _rounded(value: Any) -> Any:
    """Floats to three decimals, inside mappings and tuples too (a repr needs no 18 digits)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, Mapping):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_rounded(item) for item in value)
    return value


def _readable_repr(snapshot: Any, skip: frozenset[str] = frozenset()) -> str:
    parts = []
    for spec in dataclasses.fields(snapshot):
        if spec.name in skip:
            continue
        value = getattr(snapshot, spec.name)
        if spec.name in _TIME_FIELDS:
            text = _when(value)
        elif spec.name == "by_method":  # {'tick': '3 ok', 'predict': '4 failed'}
            text = repr({method: str(counts) for method, counts in value.items()})
        else:
            text = repr(_rounded(value))
        parts.append(f"{spec.name}={text}")
    return f"{type(snapshot).__name__}({', '.join(parts)})"


# -- the snapshots ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodCounts:
    """A model's results for one method: ``calls`` is ``successes + failures + timeouts``."""

    calls: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    rest_skips: int = 0

    def __str__(self) -> str:
        """``3 ok``, ``4 failed``, ``1 ok, 2 timeout (1 rest)``: the counts that are not zero."""
        parts = [
            f"{count} {label}"
            for count, label in ((self.successes, "ok"), (self.failures, "failed"), (self.timeouts, "timeout"))
            if count
        ]
        text = ", ".join(parts) or "no calls"
        return f"{text} ({self.rest_skips} rest)" if self.rest_skips else text


@dataclass(frozen=True)
class ModelStats:
    """One model's statistics, as a snapshot (``model_runner.stats``).

    ``calls`` counts the results the model got in rounds, and is always
    ``successes + failures + timeouts``; ``by_method`` splits them by method
    (a model that answers ``tick`` and fails ``predict`` shows both).
    ``rest_skips`` are the timeouts it was answered without being contacted,
    while resting after timeouts of its own. Latency percentiles
    (milliseconds) cover its last ``LATENCY_WINDOW`` calls that reached it (a
    timeout counts as the time the round waited); None before the first.
    ``last_status``, ``last_latency_ms`` and ``last_error`` mirror its latest
    result (``last_error``: the detail of its latest result that was not a
    success). Times are ``time.time()`` seconds; ``joined_datetime``,
    ``last_call_datetime`` and ``last_error_datetime`` are the same as local
    datetimes.
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
    by_method: Mapping[str, MethodCounts] = field(default_factory=dict)

    @property
    def joined_datetime(self) -> datetime.datetime | None:
        """``joined_at`` as a local datetime."""
        return display.as_datetime(self.joined_at)

    @property
    def last_call_datetime(self) -> datetime.datetime | None:
        """``last_call_at`` as a local datetime."""
        return display.as_datetime(self.last_call_at)

    @property
    def last_error_datetime(self) -> datetime.datetime | None:
        """``last_error_at`` as a local datetime."""
        return display.as_datetime(self.last_error_at)

    def __repr__(self) -> str:
        return _readable_repr(self)

    def to_record(self) -> dict[str, Any]:
        """This snapshot as one plain row: times as datetimes, the counts per method as text."""
        return {
            "model_id": self.model_id,
            "model_name": self.model_name,
            "address": self.address,
            "deployment_id": self.deployment_id,
            "joined": self.joined_datetime,
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "rest_skips": self.rest_skips,
            "by_method": "; ".join(f"{method}: {counts}" for method, counts in self.by_method.items()),
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p90_ms": self.latency_p90_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "last_status": self.last_status,
            "last_latency_ms": self.last_latency_ms,
            "last_call": self.last_call_datetime,
            "last_error": self.last_error,
            "last_error_time": self.last_error_datetime,
        }


@dataclass(frozen=True)
class RoundSummary:
    """One round, as the ``on_round`` listeners get it.

    ``called`` models got a result: ``successes + failures + timeouts``. Of the
    timeouts, ``rest_skips`` were models resting (not contacted); of the
    failures, ``left`` were models that left the table during the round
    (``MODEL_LEFT``). ``slowest`` is ``(model_id, latency_ms)``, slowest first.
    ``started_at`` is a ``time.time()`` timestamp (``started_datetime``: the same
    as a local datetime).
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

    @property
    def started_datetime(self) -> datetime.datetime | None:
        """``started_at`` as a local datetime (None for results built by hand, which have no start)."""
        return display.as_datetime(self.started_at)

    def __repr__(self) -> str:
        return _readable_repr(self)

    def __str__(self) -> str:
        """``tick at 09:07:40: 3 called, 2 SUCCESS, 1 FAILED, 0 TIMEOUT in 356 ms``."""
        moment = self.started_datetime
        at = "" if moment is None else f" at {moment:%H:%M:%S}"
        wall = "" if not math.isfinite(self.wall_time_s) else f" in {self.wall_time_s * 1000:.0f} ms"
        extra = "".join(
            f", {count} {label}" for count, label in ((self.rest_skips, "resting"), (self.left, "left")) if count
        )
        return (
            f"{self.method or 'round'}{at}: {self.called} called, {self.successes} SUCCESS, {self.failures} FAILED, "
            f"{self.timeouts} TIMEOUT{extra}{wall}"
        )


@dataclass(frozen=True)
class CallTotals:
    """Every round a runner recorded since it was made, summed over models (for metrics).

    ``calls`` counts results by status, ``calls_by_method`` the same per
    method. ``latency_buckets`` counts calls per bucket of ``LATENCY_BUCKETS``
    (not cumulative), plus one for the slower ones; rest skips and models that
    left mid-round are not in it. ``latency_histogram`` pairs each count with
    its bucket's upper bound. ``recent_rounds`` are the summaries of the last
    ``RECENT_ROUNDS`` rounds, the latest last.
    """

    rounds: Mapping[str, int]
    round_seconds: Mapping[str, float]
    calls: Mapping[str, int]
    rest_skips: int
    left: int
    latency_buckets: tuple[int, ...]
    latency_sum_s: float
    calls_by_method: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    recent_rounds: tuple[RoundSummary, ...] = ()

    @property
    def latency_histogram(self) -> tuple[tuple[float, int], ...]:
        """``(upper bound in seconds, calls)`` per bucket, the last bound ``math.inf``."""
        return tuple(zip((*LATENCY_BUCKETS, math.inf), self.latency_buckets, strict=True))

    def __repr__(self) -> str:
        histogram = {bucket_label(bound): count for bound, count in self.latency_histogram if count}
        rest = _readable_repr(self, skip=frozenset({"latency_buckets", "recent_rounds"}))[:-1]
        return f"{rest}, latency_histogram={histogram!r}, recent_rounds=<{len(self.recent_rounds)} summaries>)"

    def to_records(self) -> list[dict[str, Any]]:
        """One plain row per method: rounds, their wall time, calls by status."""
        rows = []
        for method, rounds in self.rounds.items():
            seconds = self.round_seconds.get(method, 0.0)
            by_status = self.calls_by_method.get(method, {})
            row: dict[str, Any] = {
                "method": method,
                "rounds": rounds,
                "round_seconds": seconds,
                "mean_round_ms": seconds / rounds * 1000 if rounds else None,
                "calls": sum(by_status.values()),
            }
            row.update({status: by_status.get(status, 0) for status in STATUSES})
            rows.append(row)
        return rows

    def to_frame(self) -> Any:
        """``to_records()`` as a pandas DataFrame indexed by method (the ``notebook`` extra)."""
        return display.frame(self.to_records(), _TOTALS_KEYS, index="method")

    def histogram_records(self) -> list[dict[str, Any]]:
        """One plain row per latency bucket: its upper bound (seconds), its label and its calls."""
        return [
            {"upper_bound_s": bound, "bucket": bucket_label(bound), "calls": count}
            for bound, count in self.latency_histogram
        ]

    def _repr_html_(self) -> str:
        calls = sum(self.calls.values())
        statuses = ", ".join(f"{self.calls.get(status, 0)} {status}" for status in STATUSES)
        caption = (
            f"{sum(self.rounds.values())} rounds, {calls} calls: {statuses}; {self.rest_skips} rest skips, "
            f"{self.left} left mid-round"
        )
        by_method = display.html_table(_TOTALS_COLUMNS, self.to_records(), caption=caption)
        largest = max(self.latency_buckets, default=0) or 1
        rows = [
            {**row, "bar": "█" * round(20 * row["calls"] / largest)}
            for row in self.histogram_records()
            if row["calls"] or row["upper_bound_s"] <= 1
        ]
        histogram = display.html_table(
            _HISTOGRAM_COLUMNS, rows,
            caption=f"Call latency (calls that reached a model; mean {self._mean_latency_ms()})",
        )  # fmt: skip
        return f'<div class="mrclient-totals">{by_method}<br>{histogram}</div>'

    def _mean_latency_ms(self) -> str:
        reached = sum(self.latency_buckets)
        return f"{self.latency_sum_s / reached * 1000:.1f} ms" if reached else "none yet"


@dataclass(frozen=True)
class ConnectionState:
    """The orchestrator connection, as a snapshot (``runner.connection_state``).

    ``since`` is when it last connected or was lost (``time.time()``; None
    before the first attempt ended; ``since_datetime``: the same as a local
    datetime); ``reconnects`` counts the times it was connected again after
    being lost. Reports are ``pending`` until sent and ``unconfirmed`` until
    the orchestrator's pongs prove it has them; ``reports_sent`` counts the
    failure reports queued so far, by code.
    """

    connected: bool
    since: float | None
    reconnects: int
    reports_pending: int
    reports_unconfirmed: int
    reports_sent: Mapping[str, int] = field(default_factory=dict)
    last_error: str | None = None

    @property
    def since_datetime(self) -> datetime.datetime | None:
        """``since`` as a local datetime."""
        return display.as_datetime(self.since)

    def __repr__(self) -> str:
        return _readable_repr(self)


_K = TypeVar("_K")


class ModelStatsTable(dict[_K, ModelStats], Generic[_K]):
    """``runner.stats()``: a dict of model runner -> ``ModelStats`` that shows itself as a table.

    Still the dict it always was; ``to_records()`` gives plain rows (no pandas),
    ``to_frame()`` a DataFrame (the ``notebook`` extra), and in a notebook it
    shows as an HTML table, its counts split by method. Built only when shown.
    """

    def to_records(self, by_method: bool = False) -> list[dict[str, Any]]:
        """One plain row per model (``ModelStats.to_record``), or per model and method with ``by_method``."""
        if not by_method:
            return [stats.to_record() for stats in self.values()]
        return [
            {"model_id": stats.model_id, "model_name": stats.model_name, "method": method,
             **dataclasses.asdict(counts)}
            for stats in self.values()
            for method, counts in stats.by_method.items()
        ]  # fmt: skip

    def to_frame(self, by_method: bool = False) -> Any:
        """``to_records()`` as a pandas DataFrame, indexed by model id (and method)."""
        if by_method:
            return display.frame(self.to_records(True), _BY_METHOD_KEYS, index=["model_id", "method"])
        return display.frame(self.to_records(), _STATS_KEYS, index="model_id")

    def __repr__(self) -> str:
        head = f"<{type(self).__name__}: {len(self)} models>"
        if not self:
            return head
        return f"{head}\n{display.text_table(_STATS_TEXT_COLUMNS, self.to_records())}"

    def _repr_html_(self) -> str:
        rows = self.to_records()
        calls = sum(row["calls"] for row in rows)
        caption = f"{len(rows)} models, {calls} calls"
        return display.html_table(_STATS_COLUMNS, rows, caption=caption)


def _status_cell(key: str) -> Any:
    return lambda row: display.badge(row.get(key))


_STATS_COLUMNS = (
    Column("model_id", "model"),
    Column("model_name", "name"),
    Column("joined", "joined", format=lambda moment: "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"),
    Column("calls", "calls", numeric=True),
    Column("successes", "ok", numeric=True),
    Column("failures", "failed", numeric=True),
    Column("timeouts", "timeout", numeric=True),
    Column("by_method", "by method"),
    Column("latency_p50_ms", "p50 ms", format=display.milliseconds, numeric=True),
    Column("latency_p90_ms", "p90 ms", format=display.milliseconds, numeric=True),
    Column("last_status", "last", html=_status_cell("last_status")),
    Column("last_call", "last call", format=lambda moment: "" if moment is None else f"{moment:%H:%M:%S}"),
    Column("last_error", "last error", width=display.CELL_CHARS),
)
_STATS_TEXT_COLUMNS = tuple(column for column in _STATS_COLUMNS if column.key not in ("joined",))
_STATS_KEYS = (
    "model_id", "model_name", "address", "deployment_id", "joined", "calls", "successes", "failures", "timeouts",
    "rest_skips", "by_method", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "last_status",
    "last_latency_ms", "last_call", "last_error", "last_error_time",
)  # fmt: skip
_BY_METHOD_KEYS = ("model_id", "model_name", "method", *(spec.name for spec in dataclasses.fields(MethodCounts)))
_TOTALS_KEYS = ("method", "rounds", "round_seconds", "mean_round_ms", "calls", *STATUSES)
_TOTALS_COLUMNS = (
    Column("method", "method"),
    Column("rounds", "rounds", numeric=True),
    Column("mean_round_ms", "mean round ms", format=display.milliseconds, numeric=True),
    Column("calls", "calls", numeric=True),
    *(Column(status, status, numeric=True) for status in STATUSES),
)
_HISTOGRAM_COLUMNS = (
    Column("bucket", "latency"),
    Column("calls", "calls", numeric=True),
    Column("bar", ""),
)


# -- recording ----------------------------------------------------------------------------------


class _Tally:
    """One model's raw counts for one method (mutated under the lock)."""

    __slots__ = ("calls", "successes", "failures", "timeouts", "rest_skips")

    def __init__(self) -> None:
        self.calls = self.successes = self.failures = self.timeouts = self.rest_skips = 0

    def counts(self) -> MethodCounts:
        return MethodCounts(self.calls, self.successes, self.failures, self.timeouts, self.rest_skips)


class _Identity(Protocol):
    """What a snapshot reads from the model's runner."""

    model_id: str
    model_name: str | None
    deployment_id: str

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
        """A frozen copy, named after ``identity`` (the model's runner)."""
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
                        if detail == rest:
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
        summary = RoundSummary(
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
            skips += result.detail == rest_detail
        else:
            failures += 1
            left += result.detail == left_detail
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
        slowest=_slowest(results.items(), rest_detail, left_detail),
    )


def _slowest(items: Iterable[tuple[Any, Any]], rest: str, left: str) -> tuple[tuple[str, float], ...]:
    """The ``SLOWEST`` models that were called, slowest first."""
    top = heapq.nlargest(SLOWEST, items, key=lambda item: item[1].exec_time_us)
    return tuple(
        (runner.model_id, result.exec_time_us / 1000) for runner, result in top if result.detail not in (rest, left)
    )
