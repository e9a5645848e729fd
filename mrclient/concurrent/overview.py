"""The runner at a glance: the line its ``repr`` says and the model table it shows in a notebook.

``RunnerOverview`` is one snapshot of a runner (``runner.overview()``): its
kind, crunch, orchestrator, connection, the models ready, those that left
(kept by the cluster, marked with when and why) and the rounds run.
Its ``line`` is the runner's ``repr``; its ``html()`` the runner's
``_repr_html_`` and the body of the notebook's live view
(``mrclient.view.live``). ``table_rows`` picks the models a table shows
(who left first, then trouble) and reads one plain row for each from the
table and the model's statistics. Once the runner closed, the table is the
one it had then: every model ready at the close, marked ``closed``.

The snapshot is plain data, made by the runner: this module does not know
the runner's class, so the runner's own views are built below it, and views
of a whole runner above it reuse them. Nothing here calls a model, and nothing
runs unless something is shown.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._support import tables as display
from .._support.addresses import host_port
from .._support.tables import Column
from .._support.validation import check_instance, check_positive_int
from ..cluster.shards import Shard
from ..cluster.table import CLOSED
from ..errors import InvalidCoordinatorUsageError
from ..runners import ModelRunner
from ..stats import ConnectionState, RoundSummary, state_label
from .results import IDENTITY_COLUMNS, identity

__all__ = ["HTML_ROWS", "RECENT_LEFT", "RunnerOverview", "model_row", "model_rows", "table_rows"]

#: Models the runner's HTML table shows; the rest are counted in its last row.
HTML_ROWS = 200
#: Seconds for which a model that left comes first in the table (later, it comes after the ready ones).
RECENT_LEFT = 300.0


@dataclass(frozen=True)
class RunnerOverview:
    """A runner at a glance, read at one moment (``runner.overview()``).

    ``state`` is ``not started``, ``connected``, ``disconnected`` (while it
    reconnects, the table kept) or ``closed``; ``models`` are the models ready
    then, ``left`` the runners of those that left, the latest first (after a
    close: those ready at the close, marked ``closed``, among them);
    ``last_round`` the summary of the last round recorded (None with
    ``keep_stats`` off or before the first round); ``shard`` the runner's
    shard, if it runs one (its ``models`` are then that shard's).
    """

    kind: str
    crunch_id: str
    host: str
    port: int
    state: str
    models: tuple[ModelRunner, ...]
    rounds_run: int
    connection: ConnectionState
    last_round: RoundSummary | None = None
    shard: Shard | None = None
    left: tuple[ModelRunner, ...] = ()

    @property
    def orchestrator_url(self) -> str:
        """``ws://host:port`` of the runner's orchestrator (an IPv6 host in brackets)."""
        return f"ws://{host_port(self.host, self.port)}"

    @property
    def line(self) -> str:
        """What the runner is, on one line (its ``repr``).

        ``<DynamicSubclassModelConcurrentRunner crunch='bird-game' ws://host:port connected, 12 ready, 340 rounds>``;
        a runner of one shard says which after the orchestrator: ``ws://host:port shard 1/3 connected, ...``.
        """
        shard = "" if self.shard is None else f" {self.shard}"
        return (
            f"<{self.kind} crunch={self.crunch_id!r} {self.orchestrator_url}{shard} "
            f"{self.state}, {len(self.models)} ready, {display.counted(self.rounds_run, 'round')}>"
        )

    def html(
        self,
        *,
        rows: tuple[Sequence[Mapping[str, Any]], int] | None = None,
        limit: int = HTML_ROWS,
        note: str | None = None,
    ) -> str:
        """The line, the connection, the last round and the model table, as one HTML block.

        ``rows`` are the table's rows and how many were left out (default:
        ``rows()``), ``note`` a line under the title (the live view's state).
        """
        check_positive_int("limit", limit)
        check_instance("note", note, str, "a string or None", optional=True)
        if rows is not None and not (isinstance(rows, tuple) and len(rows) == 2):
            raise InvalidCoordinatorUsageError(f"rows must be (rows, left out) as rows() makes, got {rows!r:.80}")
        shown, left_out = self.rows(limit) if rows is None else rows
        connection = self.connection
        since = connection.since_datetime
        lines = [f"<strong>{html.escape(self.line)}</strong>"]
        if note:
            lines.append(html.escape(note))
        status = "connected" if connection.connected else "not connected"
        lines.append(
            html.escape(
                f"orchestrator {status}" + (f" since {since:%Y-%m-%d %H:%M:%S}" if since else "")
                + f", {display.counted(connection.reconnects, 'reconnect')}, "
                f"reports {connection.reports_pending} unsent, {connection.reports_unconfirmed} unconfirmed"
            )
        )  # fmt: skip
        if self.last_round is not None:
            lines.append(f"last round: {html.escape(self.last_round.line)}")
        header = "<br>".join(lines)
        table = model_table_html(shown, left_out, caption=self.caption)
        return f'<div class="mrclient-runner"><p>{header}</p>{table}</div>'

    @property
    def _closed_with_it(self) -> list[ModelRunner]:
        return [model for model in self.left if model.left_reason == CLOSED] if self.state == "closed" else []

    @property
    def caption(self) -> str:
        """What the model table holds, as its caption says it (``3 models ready, 1 left``).

        Once the runner is closed, the models ready at the close
        (``4 models ready when the runner closed``).
        """
        closed = self._closed_with_it
        if self.state == "closed":
            text = f"{display.counted(len(closed), 'model')} ready when the runner closed"
        else:
            text = f"{display.counted(len(self.models), 'model')} ready"
        others = len(self.left) - len(closed)
        text += f", {others} left" if others else ""
        return text + ("" if self.shard is None else f" ({self.shard})")

    def rows(self, limit: int = HTML_ROWS) -> tuple[list[Mapping[str, Any]], int]:
        """The model table's rows, at most ``limit``, and how many it leaves out (see ``table_rows``).

        Open: who left in the last ``RECENT_LEFT`` seconds (the latest
        first), then the ready models, trouble first, then who left before.
        Closed: the models ready at the close, trouble first, then those that
        left before it.
        """
        check_positive_int("limit", limit)
        closed = self._closed_with_it
        if closed:
            return table_rows(closed, limit, then=[model for model in self.left if model.left_reason != CLOSED])
        since = time.time() - RECENT_LEFT
        recent = [model for model in self.left if (model.left_at or 0.0) >= since]
        older = [model for model in self.left if (model.left_at or 0.0) < since]
        return table_rows(self.models, limit, first=model_rows(recent[:limit]), hidden=len(recent[limit:]), then=older)

    def _repr_html_(self) -> str:
        return self.html()


def model_row(model: ModelRunner, state: str | None = None) -> dict[str, Any]:
    """One model as a plain row: who, its state, latency percentiles, trouble in a row, its last error.

    The state is the model's (``ready``, ``resting``, ``left: stopped at
    09:07:39``) unless ``state`` says otherwise.
    """
    stats = model.stats
    if state is None:
        state = state_label(stats.state, stats.left_reason)
        if stats.left_datetime is not None:
            state += f" at {stats.left_datetime:%H:%M:%S}"
    return {
        **identity(model),
        "state": state,
        "latency_p50_ms": stats.latency_p50_ms,
        "latency_p90_ms": stats.latency_p90_ms,
        "calls": stats.calls,
        "successes": stats.successes,
        "failures_in_a_row": model.consecutive_failures,
        "timeouts_in_a_row": model.consecutive_timeouts,
        "last_status": stats.last_status,
        "last_error": stats.last_error,
        "last_error_time": stats.last_error_datetime,
    }


def model_rows(models: Iterable[ModelRunner]) -> list[dict[str, Any]]:
    """``model_row`` of each model, in the given order."""
    return [model_row(model) for model in models]


def _trouble(model: ModelRunner) -> tuple[int, int]:
    """Sort key, read without a lock or a snapshot: resting first, then most failures and timeouts in a row."""
    return (0 if model.cooldown_calls_remaining > 0 else 1, -(model.consecutive_failures + model.consecutive_timeouts))


def table_rows(
    models: Sequence[ModelRunner],
    limit: int = HTML_ROWS,
    first: Sequence[Mapping[str, Any]] = (),
    *,
    then: Sequence[ModelRunner] = (),
    hidden: int = 0,
) -> tuple[list[Mapping[str, Any]], int]:
    """The rows a table shows, at most ``limit``, and how many it leaves out.

    ``first`` (rows of models that left) come first, then ``models`` with
    trouble first, then ``then`` in their order; ``hidden`` counts rows
    already left out of ``first``. Statistics are snapshot for the rows shown
    only, so a table of a few rows out of a thousand models costs a few
    snapshots.
    """
    shown_first = list(first[:limit])
    chosen = sorted(models, key=_trouble)[: limit - len(shown_first)]
    after = list(then[: limit - len(shown_first) - len(chosen)])
    left_out = hidden + len(first) + len(models) + len(then) - len(shown_first) - len(chosen) - len(after)
    return [*shown_first, *model_rows(chosen), *model_rows(after)], left_out


def _state_badge(row: Mapping[str, Any]) -> str:
    state = str(row["state"])  # "left: stopped at 09:07:39" takes the colour of "left"
    return display.badge(state, state.replace(":", " ").split(" ")[0])


_MODEL_COLUMNS = (
    *IDENTITY_COLUMNS,
    Column("state", "state", html=_state_badge),
    Column("latency_p50_ms", "p50 ms", format=display.milliseconds, numeric=True),
    Column("latency_p90_ms", "p90 ms", format=display.milliseconds, numeric=True),
    Column("calls", "calls", numeric=True),
    Column("successes", "ok", numeric=True),
    Column("failures_in_a_row", "failures in a row", numeric=True),
    Column("timeouts_in_a_row", "timeouts in a row", numeric=True),
    Column("last_status", "last", html=lambda row: display.badge(row["last_status"])),
    Column("last_error", "last error", width=display.CELL_CHARS),
)


def model_table_html(rows: Sequence[Mapping[str, Any]], left_out: int = 0, caption: str | None = None) -> str:
    """The model table of ``rows`` (see ``table_rows``), and a last line counting the ``left_out`` ones."""
    more = f"… {display.counted(left_out, 'more model')}" if left_out > 0 else None
    return display.html_table(_MODEL_COLUMNS, rows, caption=caption, more=more)
