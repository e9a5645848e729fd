"""What a crunch did, as frozen snapshots a person can read: model statistics, rounds, totals, connection.

``ModelStats`` (and its counts per method, ``MethodCounts``), ``RoundSummary``,
``CallTotals`` and ``ConnectionState`` are plain data that ``mrclient.stats``
makes under its lock and hands to readers on any thread. Their times are
``time.time()`` floats, with a datetime view of each (``joined_datetime``...);
their reprs show those times as datetimes and round their figures;
``CallTotals`` and ``runner.stats()`` (a ``ModelStatsTable``, still a dict)
give plain rows (``to_records()``), DataFrames (``to_frame()``, pandas from
the ``notebook`` extra) and HTML tables in a notebook, all built when asked
for (``mrclient._support.tables``), never while a round is recorded.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .._support import tables as display
from .._support.tables import Column

__all__ = [
    "CallTotals",
    "ConnectionState",
    "LATENCY_BUCKETS",
    "MethodCounts",
    "ModelStats",
    "ModelStatsTable",
    "STATUSES",
    "RoundSummary",
    "bucket_label",
]

#: Upper bounds (seconds) of the call latency histogram of the totals; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: The statuses of a result, in the order tables show them.
STATUSES = ("SUCCESS", "FAILED", "TIMEOUT")


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
    while resting after timeouts of its own (in a map, while its node was
    busy with an earlier input). Latency percentiles
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
    timeouts, ``rest_skips`` were models resting (not contacted; in a map, also
    models still busy with an earlier input); of the
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
