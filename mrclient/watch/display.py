"""What ``mrclient watch`` draws: the model table's rows, fitted to the terminal, and its three outputs.

The rows are plain strings built from plain data (announcements, health
answers, call statistics), and ``fit_columns`` decides, as a pure function,
which columns a terminal of a given width shows and how wide each is: status
columns (``STATE``, ``HEALTH``, ``LAST``) are never cut and never dropped;
the others shrink to a minimum (cut with an ellipsis), then the least useful
are dropped, so the table stays readable in 80 columns. The plain-text and
rich screens lay a table out alike (two spaces between columns), so rich cuts
nothing the plain table shows whole. The screens only draw what they are
given.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from .._support.tables import counted, fit_widths
from ..cluster.shards import shard_of
from ..concurrent.results import ModelPredictResult
from ..runners import ModelRunner
from ..stats import ConnectionState, ModelStats, RoundSummary
from .announcements import Announcement

__all__ = [
    "CELL_WIDTH",
    "Column",
    "ModelCalls",
    "clock",
    "fit_columns",
    "model_rows",
    "summary_parts",
    "text_table",
    "wrap_parts",
]

#: The widest a cell of a column that may be cut gets (the last column takes what is left).
CELL_WIDTH = 28


@dataclass(frozen=True)
class Column:
    """A column of the table: how far it may shrink (None: never cut) and when it is dropped.

    Columns with a higher ``drop`` go first when even their minimum widths do
    not fit; 0 is never dropped.
    """

    name: str
    shrink_to: int | None = None
    drop: int = 0


MODEL = Column("MODEL", shrink_to=16)
SHARD = Column("SHARD")
NAME = Column("NAME", shrink_to=10, drop=4)
CRUNCHER = Column("CRUNCHER", shrink_to=8, drop=8)
STATE = Column("STATE")
SINCE = Column("SINCE", drop=5)
ADDRESS = Column("ADDRESS", drop=7)
DEPLOYMENT = Column("DEPLOYMENT", shrink_to=10, drop=9)
HEALTH = Column("HEALTH")
LAST = Column("LAST")
LATENCY = Column("LATENCY", drop=3)
P90 = Column("P90", drop=6)
CALLS = Column("CALLS", drop=2)
ERROR = Column("ERROR", shrink_to=12, drop=1)

ANNOUNCED_COLUMNS = (MODEL, NAME, CRUNCHER, STATE, SINCE, ADDRESS, DEPLOYMENT)
CALL_COLUMNS = (LAST, LATENCY, P90, CALLS, ERROR)


@dataclass(frozen=True)
class ModelCalls:
    """What ``--call`` knows of one model: its statistics once set up, else where its setup stands."""

    stats: ModelStats | None = None
    setup: str | None = None  # SETTING_UP or SETUP_FAILED when the model cannot be called
    setup_detail: str | None = None


def clock(moment: float | None, now: float | None = None) -> str:
    """A time of day; with the date when it is not today."""
    if moment is None:
        return ""
    today = time.localtime(time.time() if now is None else now)[:3]
    shown = time.localtime(moment)
    return time.strftime("%H:%M:%S" if shown[:3] == today else "%m-%d %H:%M", shown)


def _order(shown: Announcement) -> tuple[int, str, str]:
    return (0 if shown.running else 1 if not shown.left else 2), shown.model_name or "", shown.model_id


def model_rows(
    announced: Sequence[Announcement],
    health: Mapping[str, str] | None = None,
    calls: Mapping[str, ModelCalls] | None = None,
    now: float | None = None,
    shards: int | None = None,
) -> tuple[tuple[Column, ...], list[tuple[str, ...]]]:
    """The columns and one row per model (running first, then recovering, then those that left).

    ``health`` (model_id -> status) adds the HEALTH column, ``calls`` the
    columns of ``--call``; each only when given. ``shards`` (a count) adds
    the SHARD column after MODEL: ``shard_of(model_id, shards)``.
    """
    columns = ANNOUNCED_COLUMNS[:1] + ((SHARD,) if shards is not None else ()) + ANNOUNCED_COLUMNS[1:]
    columns += (HEALTH,) if health is not None else ()
    columns += CALL_COLUMNS if calls is not None else ()
    rows: list[tuple[str, ...]] = [tuple(column.name for column in columns)]
    for shown in sorted(announced, key=_order):
        row: tuple[str, ...] = (shown.model_id,) + ((str(shard_of(shown.model_id, shards)),) if shards else ())
        row += (
            shown.model_name or "", shown.cruncher or "", shown.state, clock(shown.since, now), shown.address,
            shown.deployment_id,
        )  # fmt: skip
        if health is not None:
            row += (health.get(shown.model_id, "") if shown.running else "",)
        if calls is not None:
            row += _call_cells(calls.get(shown.model_id), shown.running)
        rows.append(row)
    return columns, rows


def _call_cells(model: ModelCalls | None, running: bool) -> tuple[str, ...]:
    if model is None or (model.stats is None and not running):
        return "", "", "", "", ""
    stats = model.stats
    if stats is None:
        return model.setup or "", "", "", "", model.setup_detail or ""
    last = stats.last_status or ""
    latency = "" if stats.last_latency_ms is None else f"{stats.last_latency_ms:.1f} ms"
    p90 = "" if stats.latency_p90_ms is None else f"{stats.latency_p90_ms:.1f} ms"
    tally = f"{stats.successes}/{stats.calls}" if stats.calls else ""
    error = "" if stats.last_status == "SUCCESS" or stats.last_error is None else stats.last_error
    return last, latency, p90, tally, error


def fit_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, gap: int) -> list[int | None]:
    """Each column's width in a table ``width`` characters wide, or None for a column dropped.

    ``gap`` is what separates two columns. A column is as wide as its widest
    cell (up to ``CELL_WIDTH`` for one that may be cut; the last column is
    not capped); when the table is too wide the widest cuttable column shrinks
    first, down to its minimum, and when even the minimums do not fit, columns
    are dropped by ``drop`` (``mrclient._support.tables.fit_widths``, which
    the library's text tables use too). Columns never cut keep their full
    width, so a status is never shown as ``FAILE…``.
    """
    last = len(columns) - 1
    natural = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for i, column in enumerate(columns):
        if column.shrink_to is not None and i != last:
            natural[i] = min(natural[i], max(CELL_WIDTH, len(column.name)))
    least, drop = [column.shrink_to for column in columns], [column.drop for column in columns]
    return fit_widths(natural, least, drop, width, gap)


def cut(text: str, width: int, ellipsis: str = "...") -> str:
    """``text`` in at most ``width`` characters, ending with ``ellipsis`` when cut."""
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    return text[: width - len(ellipsis)] + ellipsis


def text_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, height: int) -> list[str]:
    """Fixed-width lines of ``rows`` (header first) in ``width`` columns and at most ``height`` lines."""
    widths = fit_columns(columns, rows, width, gap=2)
    lines = []
    for row in rows:
        cells = [cut(cell, w).ljust(w) for cell, w in zip(row, widths, strict=True) if w is not None]
        lines.append(cut("  ".join(cells).rstrip(), width))
    if len(lines) > height:
        hidden = len(lines) - height + 1
        lines = lines[: height - 1] + [f"... and {hidden} more"]
    return lines


def summary_parts(
    crunch: str,
    state: ConnectionState,
    announced: Sequence[Announcement],
    reports: bool = False,
    last_round: RoundSummary | None = None,
    call_error: str | None = None,
    shards: int | None = None,
) -> list[str]:
    """The parts of the line above the table: the connection, the models by state, the latest round.

    With ``shards`` (a count), also how many running models each shard owns.
    """
    link = "connected" if state.connected else "DISCONNECTED"
    parts = [
        f"{crunch}: {link}" + ("" if state.since is None else f" since {clock(state.since)}"),
        counted(state.reconnects, "reconnect"),
    ]
    counts: dict[str, int] = {}
    for shown in announced:
        counts[shown.state] = counts.get(shown.state, 0) + 1
    parts.append(", ".join(f"{count} {name.lower()}" for name, count in sorted(counts.items())) or "no models")
    if shards is not None:
        owned = [0] * shards
        for shown in announced:
            if shown.running:
                owned[shard_of(shown.model_id, shards)] += 1
        tally = " ".join(f"{index}:{count}" for index, count in enumerate(owned))
        parts.append(f"running per shard of {shards}: {tally}")
    if reports:
        parts.append(f"reports {state.reports_pending} unsent, {state.reports_unconfirmed} unconfirmed")
    if last_round is not None:
        parts.append(
            f"{last_round.method} {clock(last_round.started_at)}: {last_round.successes} ok, "
            f"{last_round.failures} failed, {last_round.timeouts} timeout, {last_round.wall_time_s * 1000:.0f} ms"
        )
    if call_error:
        parts.append(f"call error: {call_error}")
    return parts


def wrap_parts(parts: Sequence[str], width: int, joint: str = " · ") -> list[str]:
    """``parts`` joined by ``joint`` into lines of at most ``width`` characters (a part too long is cut)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(joint) + len(part) <= width:
            lines[-1] += joint + part
        else:
            lines.append(cut(part, width))
    return lines


# -- the three outputs ---------------------------------------------------------------------------


class TextScreen:
    """The plain-text table, redrawn from the top-left corner of the terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __enter__(self) -> TextScreen:
        self.stream.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear the screen
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.write("\x1b[?25h\n")
        self.stream.flush()

    def draw(self, title: Sequence[Sequence[str]], columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
        size = shutil.get_terminal_size()
        head = [line for group in title for line in wrap_parts(group, size.columns)]
        lines = head + text_table(columns, rows, size.columns, max(2, size.lines - len(head) - 1))
        self.stream.write("\x1b[H" + "".join(line + "\x1b[K\n" for line in lines) + "\x1b[J")
        self.stream.flush()


class RichScreen:
    """The table as a rich ``Live`` display, refreshed in place."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream)
        self.live = Live(console=self.console, auto_refresh=False, vertical_overflow="ellipsis")

    def __enter__(self) -> RichScreen:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def draw(self, title: Sequence[Sequence[str]], columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        width = self.console.width
        # As the plain table: no edges, and a blank column plus one of padding between two columns.
        widths = fit_columns(columns, rows, width, gap=2)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
        kept = [i for i, w in enumerate(widths) if w is not None]
        for i in kept:
            w = widths[i]
            table.add_column(columns[i].name, no_wrap=True, overflow="ellipsis", min_width=w, max_width=w)
        status_at = [i for i in kept if columns[i] in (STATE, LAST, HEALTH)]
        for row in rows[1:]:
            table.add_row(*(row[i] for i in kept), style=_row_style(row, columns, status_at))
        head = Text("\n".join(line for group in title for line in wrap_parts(group, width)))
        self.live.update(Group(head, table), refresh=True)


def _row_style(row: Sequence[str], columns: Sequence[Column], status_at: Sequence[int]) -> str | None:
    statuses = {columns[i].name: row[i] for i in status_at}
    if statuses.get("STATE") in ("STOPPED", "GONE"):
        return "dim"
    failing = statuses.get("LAST") in ("FAILED", "TIMEOUT", "SETUP_FAILED")
    if failing or statuses.get("HEALTH") in ("NOT_SERVING", "NO_ANSWER"):
        return "red"
    return None


class Lines:
    """One line per event, stamped with the time; printing is serialized (events come from several threads)."""

    def __init__(self, stream: IO[str], shards: int | None = None) -> None:
        self.stream = stream
        self.shards = shards  # with a count, each model's line says its shard after its id
        self._lock = threading.Lock()

    def model(self, shown: Announcement) -> None:
        shard = "" if self.shards is None else f"shard {shard_of(shown.model_id, self.shards)}"
        self.say(" ".join(part for part in (
            f"{shown.state.lower():<10}", shown.model_id, shard, shown.model_name or "", shown.cruncher or "",
            shown.address, shown.deployment_id,
        ) if part))  # fmt: skip

    def round(self, method: str, results: Mapping[ModelRunner, ModelPredictResult], wall_s: float) -> None:
        counts = {status: 0 for status in ModelPredictResult.Status}
        for result in results.values():
            counts[result.status] += 1
        tally = ", ".join(f"{count} {status.value}" for status, count in counts.items())
        lines = [f"round      {method}: {counted(len(results), 'model')}, {tally} in {wall_s * 1000:.0f} ms"]
        for model, result in sorted(results.items(), key=lambda item: item[0].model_id):
            if result.status is not ModelPredictResult.Status.SUCCESS:
                lines.append(f"{result.status.value:<10} {model.model_id} {model.model_name}: {result.detail}")
        self.say(*lines)

    def say(self, *lines: str) -> None:
        stamp = time.strftime("%X")
        text = "".join(f"{stamp} {line}\n" for line in lines)
        with self._lock:
            self.stream.write(text)
            self.stream.flush()
