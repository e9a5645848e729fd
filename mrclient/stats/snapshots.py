"""What a crunch did, as frozen snapshots a person can read: model statistics, rounds, totals, connection.

``ModelStats`` (and its counts per method, ``MethodCounts``), ``RoundSummary``,
``CallTotals`` and ``ConnectionState`` are plain data that ``mrclient.stats``
makes under its lock and hands to readers on any thread. Their times are
``time.time()`` floats, with a datetime view of each (``joined_datetime``...);
printed, each is a short aligned text (times of day, figures rounded) that
fits the terminal's width when printed to one (``_support.tables``);
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
from .._support.validation import check_flag

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
    "state_label",
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


# -- plain text: short, aligned, fitted to the terminal ------------------------------------------

#: Width of the labels of a snapshot's text (``calls``, ``by method``, ``last error``...).
_LABEL = 10


def _clock(timestamp: float | None, with_date: bool = False) -> str:
    moment = display.as_datetime(timestamp)
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _labelled(head: str, pairs: list[tuple[str, str]], width: int | None) -> str:
    """``head`` (wrapped to ``width``), then one aligned ``label  value`` line per pair, each cut to ``width``."""
    lines = [display.fit_line(head, width)]
    lines += [display.clip(f"  {label.ljust(_LABEL)}  {value}", width) for label, value in pairs]
    return "\n".join(lines)


def state_label(state: str, left_reason: str | None) -> str:
    """A model's state as tables show it: ``ready``, ``resting``, or ``left: <why>``."""
    return f"left: {left_reason}" if state == "left" and left_reason else state


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
    success). ``state`` is ``ready``, ``resting`` (after a timeout) or
    ``left``; a model that left has ``left_at`` and ``left_reason``
    (``reported MULTIPLE_FAILED``, ``stopped``, ``replaced``, ``moved``,
    ``gone``, ``closed``...; see docs/watching.rst). Times are ``time.time()``
    seconds; ``joined_datetime``, ``last_call_datetime``,
    ``last_error_datetime`` and ``left_datetime`` are the same as local
    datetimes. Printed, it is a few aligned lines.
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
    state: str = "ready"
    left_at: float | None = None
    left_reason: str | None = None

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

    @property
    def left_datetime(self) -> datetime.datetime | None:
        """``left_at`` as a local datetime (None while the model is in the table)."""
        return display.as_datetime(self.left_at)

    def __repr__(self) -> str:
        """``<ModelStats m3 'broken' left: reported MULTIPLE_FAILED>``, then one aligned line per figure."""
        name = "" if self.model_name is None else f" {self.model_name!r}"
        head = f"<ModelStats {self.model_id}{name} {state_label(self.state, self.left_reason)}>"
        counts = f"{self.calls}: {self.successes} ok, {self.failures} failed, {self.timeouts} timeout"
        pairs = [("calls", counts + (f" ({self.rest_skips} resting)" if self.rest_skips else ""))]
        if self.by_method:
            pairs.append(("by method", _by_method_text(self.by_method)))
        if self.latency_samples:
            latency = ", ".join(
                f"{label} {display.milliseconds(value)} ms"
                for label, value in (("p50", self.latency_p50_ms), ("p90", self.latency_p90_ms),
                                     ("p99", self.latency_p99_ms))
            )  # fmt: skip
            pairs.append(("latency", f"{latency} (last {display.counted(self.latency_samples, 'call')})"))
        if self.last_status is not None:
            took = "" if self.last_latency_ms is None else f" in {display.milliseconds(self.last_latency_ms)} ms"
            pairs.append(("last", f"{self.last_status} at {_clock(self.last_call_at)}{took}"))
        if self.last_error is not None:
            pairs.append(("last error", f"{_clock(self.last_error_at)} {' '.join(self.last_error.split())}"))
        joined = _clock(self.joined_at, with_date=True) or "never"
        pairs.append(("joined", f"{joined}, {self.deployment_id} at {self.address}"))
        if self.state == "left":
            why = "" if self.left_reason is None else f": {self.left_reason}"
            pairs.append(("left", f"{_clock(self.left_at, with_date=True)}{why}"))
        return _labelled(head, pairs, display.terminal_width())

    def to_record(self) -> dict[str, Any]:
        """This snapshot as one plain row: times as datetimes, the counts per method as text."""
        return {
            "model_id": self.model_id,
            "model_name": self.model_name,
            "state": self.state,
            "address": self.address,
            "deployment_id": self.deployment_id,
            "joined": self.joined_datetime,
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "rest_skips": self.rest_skips,
            "by_method": _by_method_text(self.by_method),
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p90_ms": self.latency_p90_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "last_status": self.last_status,
            "last_latency_ms": self.last_latency_ms,
            "last_call": self.last_call_datetime,
            "last_error": self.last_error,
            "last_error_time": self.last_error_datetime,
            "left": self.left_datetime,
            "left_reason": self.left_reason,
        }


def _by_method_text(by_method: Mapping[str, MethodCounts]) -> str:
    """``tick: 3 ok; predict: 4 failed``."""
    return "; ".join(f"{method}: {counts}" for method, counts in by_method.items())


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

    @property
    def line(self) -> str:
        """The round on one line, never wrapped (``str()`` wraps it to the terminal's width).

        For example ``tick at 09:07:40: 3 called, 2 SUCCESS, 1 FAILED, 0 TIMEOUT in 356 ms``.
        """
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

    def __str__(self) -> str:
        """``line``, wrapped to the terminal's width when printed to one."""
        return display.fit_line(self.line, display.terminal_width())

    def __repr__(self) -> str:
        """``<RoundSummary tick at 09:07:40: 3 called, ...; slowest m5 500 ms, m3 2.0 ms>``."""
        slowest = ", ".join(f"{model_id} {display.milliseconds(ms)} ms" for model_id, ms in self.slowest)
        return display.fit_line(
            f"<RoundSummary {self.line}" + (f"; slowest {slowest}>" if slowest else ">"), display.terminal_width()
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

    def caption(self) -> str:
        """``7 rounds, 14 calls: 10 SUCCESS, 4 FAILED, 0 TIMEOUT; 0 rest skips, 0 left mid-round``."""
        calls = sum(self.calls.values())
        statuses = ", ".join(f"{self.calls.get(status, 0)} {status}" for status in STATUSES)
        return (
            f"{display.counted(sum(self.rounds.values()), 'round')}, {display.counted(calls, 'call')}: {statuses}; "
            f"{display.counted(self.rest_skips, 'rest skip')}, {self.left} left mid-round"
        )

    def __repr__(self) -> str:
        """The caption, a line per method and the latency histogram's buckets that counted calls, as aligned text."""
        width = display.terminal_width()
        lines = [display.fit_line(f"<CallTotals: {self.caption()}>", width)]
        if self.rounds:
            lines.append(display.text_table(_TOTALS_COLUMNS, self.to_records(), width=width))
        histogram = " · ".join(f"{bucket_label(bound)}: {count}" for bound, count in self.latency_histogram if count)
        if histogram:
            lines.append(display.fit_line(f"  latency {histogram} (mean {self._mean_latency_ms()})", width, " " * 4))
        return "\n".join(lines)

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
        """``to_records()`` as a pandas DataFrame indexed by method (the ``notebook`` extra); a missing value is NaN."""
        return display.frame(self.to_records(), _TOTALS_KEYS, index="method", numeric=_TOTALS_KEYS[1:])

    def histogram_records(self) -> list[dict[str, Any]]:
        """One plain row per latency bucket: its upper bound (seconds), its label and its calls."""
        return [
            {"upper_bound_s": bound, "bucket": bucket_label(bound), "calls": count}
            for bound, count in self.latency_histogram
        ]

    def _repr_html_(self) -> str:
        by_method = display.html_table(_TOTALS_COLUMNS, self.to_records(), caption=self.caption())
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
        """``<ConnectionState connected since 2026-03-01 09:07:32, 0 reconnects, reports 0 unsent, 0 unconfirmed>``."""
        since = "" if self.since is None else f" since {_clock(self.since, with_date=True)}"
        sent = ", ".join(f"{count} {code}" for code, count in self.reports_sent.items())
        text = (
            f"<ConnectionState {'connected' if self.connected else 'not connected'}{since}, "
            f"{display.counted(self.reconnects, 'reconnect')}, reports {self.reports_pending} unsent, "
            f"{self.reports_unconfirmed} unconfirmed" + (f", sent {sent}" if sent else "")
            + ("" if self.last_error is None else f", last error {self.last_error!r}") + ">"
        )  # fmt: skip
        return display.fit_line(text, display.terminal_width())


_K = TypeVar("_K")


class ModelStatsTable(dict[_K, ModelStats], Generic[_K]):
    """``runner.stats()``: a dict of model runner -> ``ModelStats`` that shows itself as a table.

    Still the dict it always was; ``to_records()`` gives plain rows (no pandas),
    ``to_frame()`` a DataFrame (the ``notebook`` extra), and in a notebook it
    shows as an HTML table, its counts split by method. Built only when shown.
    """

    def to_records(self, by_method: bool = False) -> list[dict[str, Any]]:
        """One plain row per model (``ModelStats.to_record``), or per model and method with ``by_method``."""
        if not check_flag("by_method", by_method):
            return [stats.to_record() for stats in self.values()]
        return [
            {"model_id": stats.model_id, "model_name": stats.model_name, "method": method,
             **dataclasses.asdict(counts)}
            for stats in self.values()
            for method, counts in stats.by_method.items()
        ]  # fmt: skip

    def to_frame(self, by_method: bool = False) -> Any:
        """``to_records()`` as a pandas DataFrame, indexed by model id (and method); a missing number is NaN."""
        if check_flag("by_method", by_method):
            counts = _BY_METHOD_KEYS[3:]
            return display.frame(self.to_records(True), _BY_METHOD_KEYS, index=["model_id", "method"], numeric=counts)
        return display.frame(
            self.to_records(), _STATS_KEYS, index="model_id", numeric=_STATS_NUMBERS, times=_STATS_TIMES
        )

    def caption(self) -> str:
        """``3 models, 1 left, 14 calls``: the models (those that left among them) and their calls."""
        rows = self.values()
        left = sum(stats.state == "left" for stats in rows)
        calls = sum(stats.calls for stats in rows)
        return f"{display.counted(len(self), 'model')}" + (f", {left} left" if left else "") + (
            f", {display.counted(calls, 'call')}"
        )

    def __repr__(self) -> str:
        """A caption line, then one aligned line per model, fitted to the terminal's width when printed to one."""
        head = f"<{type(self).__name__}: {self.caption()}>"
        if not self:
            return head
        width, rows = display.terminal_width(), self.to_records()
        table = display.text_table(_shown(_STATS_TEXT_COLUMNS, rows), rows, width=width)
        return f"{display.fit_line(head, width)}\n{table}"

    def _repr_html_(self) -> str:
        rows = self.to_records()
        return display.html_table(_shown(_STATS_COLUMNS, rows), rows, caption=self.caption())


def _status_cell(key: str) -> Any:
    return lambda row: display.badge(row.get(key))


def _time_of_day(moment: datetime.datetime | None) -> str:
    return "" if moment is None else f"{moment:%H:%M:%S}"


def _state_text(row: Mapping[str, Any]) -> str:
    return state_label(row.get("state") or "ready", row.get("left_reason"))


def _state_html(row: Mapping[str, Any]) -> str:
    return display.badge(_state_text(row), row.get("state") or "ready")


_STATS_COLUMNS = (
    Column("model_id", "model", least=None),
    Column("model_name", "name", least=6, drop=2),
    Column("state", "state", cell=_state_text, html=_state_html, least=None),
    Column("joined", "joined", format=lambda moment: "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"),
    Column("calls", "calls", numeric=True),
    Column("successes", "ok", numeric=True),
    Column("failures", "failed", numeric=True),
    Column("timeouts", "timeout", numeric=True),
    Column("by_method", "by method", least=10, drop=7),
    Column("latency_p50_ms", "p50 ms", format=display.milliseconds, numeric=True, drop=4),
    Column("latency_p90_ms", "p90 ms", format=display.milliseconds, numeric=True, drop=6),
    Column("last_status", "last", html=_status_cell("last_status"), least=None),
    Column("last_call", "last call", format=_time_of_day, least=None, drop=8),
    Column("left", "left at", format=_time_of_day, least=None, drop=9),
    Column("last_error", "last error", width=display.CELL_CHARS, least=10, drop=3),
)
_STATS_TEXT_COLUMNS = tuple(column for column in _STATS_COLUMNS if column.key not in ("joined",))
_STATS_KEYS = (
    "model_id", "model_name", "state", "address", "deployment_id", "joined", "calls", "successes", "failures",
    "timeouts", "rest_skips", "by_method", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "last_status",
    "last_latency_ms", "last_call", "last_error", "last_error_time", "left", "left_reason",
)  # fmt: skip
_STATS_NUMBERS = (
    "calls", "successes", "failures", "timeouts", "rest_skips", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
    "last_latency_ms",
)  # fmt: skip
_STATS_TIMES = ("joined", "last_call", "last_error_time", "left")


def _shown(columns: tuple[Column, ...], rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """``columns`` without "left at" when no model of ``rows`` left."""
    if any(row["state"] == "left" for row in rows):
        return columns
    return tuple(column for column in columns if column.key != "left")


_BY_METHOD_KEYS = ("model_id", "model_name", "method", *(spec.name for spec in dataclasses.fields(MethodCounts)))
_TOTALS_KEYS = ("method", "rounds", "round_seconds", "mean_round_ms", "calls", *STATUSES)
_TOTALS_COLUMNS = (
    Column("method", "method", least=10),
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
