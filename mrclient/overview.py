"""The runner at a glance: the line its ``repr`` says and the model table it shows in a notebook.

``runner_line`` says what a runner is (its kind, crunch, orchestrator,
connection, models ready, rounds run); ``table_rows`` picks the models a
table shows (trouble first) and reads one plain row for each from the table
and the model's statistics; ``overview_html``
puts both, with the last round's summary, into the HTML of the runner's
``_repr_html_`` and of the notebook's live view (``mrclient.notebook``).

Everything here reads snapshots the runner already keeps (its model table,
each model's counters, the connection state, and two fields of the runner's
own: whether ``init()`` ran and how many rounds it ran): no call reaches a
model, and nothing runs unless something is shown.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import display
from .display import Column
from .stats import RoundSummary

if TYPE_CHECKING:
    from .concurrent.base import ModelConcurrentRunner
    from .runners import ModelRunner

__all__ = ["HTML_ROWS", "model_row", "model_rows", "overview_html", "runner_line", "runner_state", "table_rows"]

#: Models the runner's HTML table shows; the rest are counted in its last row.
HTML_ROWS = 200


def runner_state(runner: ModelConcurrentRunner) -> str:
    """``not started``, ``connected``, ``disconnected`` (reconnecting, the table kept) or ``closed``."""
    if runner.closed:
        return "closed"
    if not runner.initialized:
        return "not started"
    return "connected" if runner.connected else "disconnected"


def orchestrator_url(runner: ModelConcurrentRunner) -> str:
    """``ws://host:port`` of the runner's orchestrator (an IPv6 host in brackets)."""
    host = f"[{runner.host}]" if ":" in runner.host else runner.host
    return f"ws://{host}:{runner.port}"


def runner_line(runner: ModelConcurrentRunner) -> str:
    """``<DynamicSubclassModelConcurrentRunner crunch='bird-game' ws://host:port connected, 12 ready, 340 rounds>``."""
    return (
        f"<{type(runner).__name__} crunch={runner.model_cluster.crunch_id!r} {orchestrator_url(runner)} "
        f"{runner_state(runner)}, {len(runner.models)} ready, {runner.rounds_run} rounds>"
    )


def model_row(model: ModelRunner, state: str | None = None) -> dict[str, Any]:
    """One model as a plain row: who, its state, latency percentiles, trouble in a row, its last error."""
    stats = model.stats
    if state is None:
        state = "resting" if model.cooldown_calls_remaining > 0 else "ready"
    infos = model.infos
    return {
        "model_id": model.model_id,
        "model_name": model.model_name,
        "cruncher": infos.get("cruncher_name") or infos.get("cruncher_id"),
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
    models: Sequence[ModelRunner], limit: int = HTML_ROWS, first: Sequence[Mapping[str, Any]] = ()
) -> tuple[list[Mapping[str, Any]], int]:
    """The rows a table shows, at most ``limit``, and how many it leaves out.

    ``first`` (models that left) come first, then the models with trouble;
    statistics are snapshot for the rows shown only, so a table of a few
    rows out of a thousand models costs a few snapshots.
    """
    shown_first = list(first[:limit])
    chosen = sorted(models, key=_trouble)[: limit - len(shown_first)]
    left_out = len(first) + len(models) - len(shown_first) - len(chosen)
    return [*shown_first, *model_rows(chosen)], left_out


def _state_badge(row: Mapping[str, Any]) -> str:
    state = str(row["state"])  # "left 09:07:39" takes the colour of "left"
    return display.badge(state, state.split(" ")[0])


_MODEL_COLUMNS = (
    Column("model_id", "model"),
    Column("model_name", "name"),
    Column("cruncher", "cruncher"),
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
    more = f"… {left_out} more models" if left_out > 0 else None
    return display.html_table(_MODEL_COLUMNS, rows, caption=caption, more=more)


def overview_html(
    runner: ModelConcurrentRunner,
    *,
    last_round: RoundSummary | None = None,
    rows: tuple[Sequence[Mapping[str, Any]], int] | None = None,
    limit: int = HTML_ROWS,
    note: str | None = None,
) -> str:
    """The runner's line, its connection, the last round and the model table, as one HTML block.

    ``rows`` are the table's rows and how many were left out (default:
    ``table_rows`` of the ready models; the live view adds its recent
    leavers), ``note`` a line under the title (the live view's state).
    """
    models = runner.models
    shown, left_out = table_rows(models, limit) if rows is None else rows
    connection = runner.connection_state
    since = connection.since_datetime
    lines = [f"<strong>{html.escape(runner_line(runner))}</strong>"]
    if note:
        lines.append(html.escape(note))
    status = "connected" if connection.connected else "not connected"
    lines.append(
        html.escape(
            f"orchestrator {status}" + (f" since {since:%Y-%m-%d %H:%M:%S}" if since else "")
            + f", {connection.reconnects} reconnects, reports {connection.reports_pending} unsent, "
            f"{connection.reports_unconfirmed} unconfirmed"
        )
    )  # fmt: skip
    if last_round is not None:
        lines.append(f"last round: {html.escape(str(last_round))}")
    header = "<br>".join(lines)
    table = model_table_html(shown, left_out, caption=f"{len(models)} models ready")
    return f'<div class="mrclient-runner"><p>{header}</p>{table}</div>'
