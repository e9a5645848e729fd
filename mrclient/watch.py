"""``mrclient watch``: a crunch's models, live in a terminal.

A ``Board`` holds every model seen, ready or left (a left one stays
``LEFT_KEPT_S`` seconds), and the latest round's summary. The runner's join and
leave listeners and its ``on_round`` listener feed it, on mrclient's listener
threads; the display loop on the main thread reads it under the board's lock
and draws one of three outputs:

* ``rich``: a table refreshed in place (the ``watch`` extra);
* ``table``: the same table as plain text, redrawn with ANSI codes (a terminal
  without rich);
* ``lines``: one line per model that joins or leaves, and per round (standard
  output is not a terminal: a log file, a pipe).

With ``--call METHOD --every SECONDS`` a thread of this module's calls the
method on every model in turn, so the display goes on during a slow round; it
is joined once the runner is closed (which ends a round under way). Each
model's last status, latency and error come from its statistics
(``model_runner.stats``), the summary line from ``runner.connection_state``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .concurrent import DynamicSubclassModelConcurrentRunner, ModelPredictResult
from .errors import MrclientError
from .runners import ModelRunner
from .stats import ConnectionState, ModelStats, RoundSummary

__all__ = ["Board", "CallPlan", "OUTPUTS", "pick_output", "summary_line", "table_rows", "text_table", "watch_crunch"]

OUTPUTS = ("auto", "rich", "table", "lines")
#: How long a model that left stays on the board, seconds.
LEFT_KEPT_S = 300.0
#: The widest a cell of the plain-text table gets (the last column takes what is left).
CELL_WIDTH = 28

_BASE_COLUMNS = ("MODEL", "NAME", "STATE", "ADDRESS", "DEPLOYMENT", "JOINED")
_CALL_COLUMNS = ("LAST", "LATENCY", "P90", "CALLS", "ERROR")


def pick_output(requested: str, tty: bool) -> str:
    """The output to draw: ``auto`` is rich on a terminal that has it, else a plain table, else lines."""
    has_rich = _has_rich()
    if requested == "auto":
        return ("rich" if has_rich else "table") if tty else "lines"
    if requested == "rich" and not has_rich:
        raise ImportError("the rich output needs rich: pip install 'mrclient[watch]' (or use --output table)")
    return requested


def _has_rich() -> bool:
    if "rich" in sys.modules:  # None when an import of it failed (or a test blocked it)
        return sys.modules["rich"] is not None
    return importlib.util.find_spec("rich") is not None


def _clock(moment: float | None) -> str:
    return "" if moment is None else time.strftime("%H:%M:%S", time.localtime(moment))


@dataclass
class Entry:
    """One model on the board: its latest runner, and since when it is in its state."""

    runner: ModelRunner
    ready: bool
    since: float


class Board:
    """The models seen and the latest round; written by listeners, read by the display."""

    def __init__(self, left_kept_s: float = LEFT_KEPT_S) -> None:
        self.left_kept_s = left_kept_s
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self.last_round: RoundSummary | None = None
        self.call_error: str | None = None

    def joined(self, runner: ModelRunner) -> bool:
        """The model is ready; False when the board already showed this runner ready."""
        with self._lock:
            entry = self._entries.get(runner.model_id)
            if entry is not None and entry.runner is runner and entry.ready:
                return False
            self._entries[runner.model_id] = Entry(runner, True, time.time())
            return True

    def left(self, runner: ModelRunner) -> bool:
        """The model left; False when the board shows another runner of it (it was replaced)."""
        with self._lock:
            entry = self._entries.get(runner.model_id)
            if entry is None or entry.runner is not runner or not entry.ready:
                return False
            entry.ready, entry.since = False, time.time()
            return True

    def round_done(self, summary: RoundSummary) -> None:
        with self._lock:
            self.last_round, self.call_error = summary, None

    def round_failed(self, error: str) -> None:
        with self._lock:
            self.call_error = error

    def snapshot(self, now: float) -> tuple[list[Entry], RoundSummary | None, str | None]:
        """The entries to show (ready first, then by name), the latest round and call error."""
        with self._lock:
            for model_id in [m for m, e in self._entries.items() if not e.ready and now - e.since > self.left_kept_s]:
                del self._entries[model_id]
            entries = sorted(self._entries.values(), key=_order)
            return entries, self.last_round, self.call_error


def _order(entry: Entry) -> tuple[bool, str, str]:
    return not entry.ready, entry.runner.model_name or "", entry.runner.model_id


def table_rows(entries: Sequence[Entry], calling: bool) -> list[tuple[str, ...]]:
    """The table's header and one row per entry, as plain strings."""
    rows: list[tuple[str, ...]] = [_BASE_COLUMNS + (_CALL_COLUMNS if calling else ())]
    for entry in entries:
        runner = entry.runner
        stats = runner.stats
        state = "ready" if entry.ready else f"left {_clock(entry.since)}"
        row: tuple[str, ...] = (
            runner.model_id, runner.model_name or "", state, runner.target, runner.deployment_id,
            _clock(stats.joined_at),
        )  # fmt: skip
        if calling:
            row += _call_cells(stats)
        rows.append(row)
    return rows


def _call_cells(stats: ModelStats) -> tuple[str, ...]:
    last = stats.last_status or ""
    latency = "" if stats.last_latency_ms is None else f"{stats.last_latency_ms:.1f} ms"
    p90 = "" if stats.latency_p90_ms is None else f"{stats.latency_p90_ms:.1f} ms"
    ok = f"{stats.successes}/{stats.calls}" if stats.calls else ""
    error = "" if stats.last_status == "SUCCESS" or stats.last_error is None else stats.last_error
    return last, latency, p90, ok, error


def summary_line(
    state: ConnectionState, ready: int, left: int, last_round: RoundSummary | None, call_error: str | None
) -> str:
    """One line: the orchestrator connection, the table's size, the latest round."""
    link = "connected" if state.connected else "DISCONNECTED"
    parts = [
        link if state.since is None else f"{link} since {_clock(state.since)}",
        f"{state.reconnects} reconnects",
        f"reports {state.reports_pending} unsent, {state.reports_unconfirmed} unconfirmed",
        f"{ready} ready, {left} left",
    ]
    if last_round is not None:
        parts.append(
            f"{last_round.method} {_clock(last_round.started_at)}: {last_round.successes} ok, "
            f"{last_round.failures} failed, {last_round.timeouts} timeout, {last_round.wall_time_s * 1000:.0f} ms"
        )
    if call_error:
        parts.append(f"call error: {call_error}")
    return " · ".join(parts)


def text_table(rows: Sequence[Sequence[str]], width: int, height: int) -> list[str]:
    """Fixed-width lines of ``rows`` (header first), cut to ``width`` columns and ``height`` lines."""
    cut = [[_cut(cell, CELL_WIDTH) for cell in row[:-1]] + [row[-1]] for row in rows]
    widths = [max(len(row[i]) for row in cut) for i in range(len(cut[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in cut]
    lines = [_cut(line.rstrip(), width) for line in lines]
    if len(lines) > height:
        hidden = len(lines) - height + 1
        lines = lines[: height - 1] + [f"... and {hidden} more"]
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


# -- drawing ------------------------------------------------------------------------------------


class _TextScreen:
    """The plain-text table, redrawn from the top-left corner of the terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __enter__(self) -> _TextScreen:
        self.stream.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear the screen
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.write("\x1b[?25h\n")
        self.stream.flush()

    def draw(self, title: str, rows: Sequence[Sequence[str]]) -> None:
        size = shutil.get_terminal_size()
        lines = [_cut(title, size.columns), *text_table(rows, size.columns, max(2, size.lines - 2))]
        self.stream.write("\x1b[H" + "".join(line + "\x1b[K\n" for line in lines) + "\x1b[J")
        self.stream.flush()


class _RichScreen:
    """The table as a rich ``Live`` display, refreshed in place."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.live = Live(console=Console(file=stream), auto_refresh=False, vertical_overflow="ellipsis")

    def __enter__(self) -> _RichScreen:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def draw(self, title: str, rows: Sequence[Sequence[str]]) -> None:
        from rich.table import Table

        # Every column as wide as its cells, up to CELL_WIDTH; ERROR gets what the terminal has left.
        widths = [min(CELL_WIDTH, max(len(row[index]) for row in rows)) for index in range(len(rows[0]))]
        if rows[0][-1] == "ERROR":
            widths[-1] = max(len("ERROR"), self.live.console.width - sum(widths[:-1]) - 3 * len(widths) - 1)
        table = Table(title=title, title_justify="left")
        for name, width in zip(rows[0], widths, strict=True):
            table.add_column(name, no_wrap=True, overflow="ellipsis", min_width=width, max_width=width)
        for row in rows[1:]:
            failing = len(row) > len(_BASE_COLUMNS) and row[len(_BASE_COLUMNS)] in ("FAILED", "TIMEOUT")
            table.add_row(*row, style="dim" if row[2].startswith("left") else "red" if failing else None)
        self.live.update(table, refresh=True)


class _Lines:
    """One line per event; events come from listener threads, so printing is serialized."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def model(self, event: str, model: ModelRunner) -> None:
        self.say(f"{event:<6} {model.model_id} {model.model_name} {model.target}")

    def round(self, method: str, results: Mapping[ModelRunner, ModelPredictResult], wall_s: float) -> None:
        counts = {status: 0 for status in ModelPredictResult.Status}
        for result in results.values():
            counts[result.status] += 1
        tally = ", ".join(f"{count} {status.value}" for status, count in counts.items())
        lines = [f"round  {method}: {len(results)} models, {tally} in {wall_s * 1000:.0f} ms"]
        for model, result in sorted(results.items(), key=lambda item: item[0].model_id):
            if result.status is not ModelPredictResult.Status.SUCCESS:
                lines.append(f"{result.status.value:<7} {model.model_id} {model.model_name}: {result.detail}")
        self.say(*lines)

    def say(self, *lines: str) -> None:
        stamp = time.strftime("%X")
        text = "".join(f"{stamp} {line}\n" for line in lines)
        with self._lock:
            self.stream.write(text)
            self.stream.flush()


# -- the loop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallPlan:
    """What ``--call`` asks: the method, its plain arguments, and how often."""

    method: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] | None = None
    every: float = 10.0


def watch_crunch(
    runner: DynamicSubclassModelConcurrentRunner,
    stop: threading.Event,
    output: str,
    call: CallPlan | None = None,
    refresh: float = 1.0,
    stream: IO[str] | None = None,
) -> None:
    """Show ``runner``'s models until ``stop`` is set, then close the runner; ``output`` as ``pick_output`` says."""
    out = stream or sys.stdout
    board = Board()
    lines = _Lines(out) if output == "lines" else None

    def joined(model: ModelRunner) -> None:
        if board.joined(model) and lines and not stop.is_set():
            lines.model("joined", model)

    def left(model: ModelRunner) -> None:
        # On Ctrl-C every model "leaves" as the runner closes: not news.
        if board.left(model) and lines and not stop.is_set():
            lines.model("left", model)

    runner.on_model_joined(joined, replay=False)  # those already ready are listed as "ready" below
    runner.on_model_left(left)
    runner.on_round(board.round_done)
    for model in runner.models:
        if board.joined(model) and lines:
            lines.model("ready", model)
    caller = _start_caller(runner, call, stop, board, lines) if call else None
    try:
        if lines is None:
            _draw_until(stop, runner, board, output, out, calling=call is not None, refresh=refresh)
        else:
            stop.wait()
    finally:
        stop.set()
        runner.close()  # ends a round under way
        if caller is not None:
            caller.join(runner.timeout + 5.0)


def _draw_until(
    stop: threading.Event,
    runner: DynamicSubclassModelConcurrentRunner,
    board: Board,
    output: str,
    out: IO[str],
    calling: bool,
    refresh: float,
) -> None:
    screen: _RichScreen | _TextScreen = _RichScreen(out) if output == "rich" else _TextScreen(out)
    with screen:
        while not stop.is_set():
            entries, last_round, call_error = board.snapshot(time.time())
            ready = sum(1 for entry in entries if entry.ready)
            title = summary_line(runner.connection_state, ready, len(entries) - ready, last_round, call_error)
            screen.draw(f"{runner.model_cluster.crunch_id}: {title}", table_rows(entries, calling))
            stop.wait(refresh)


def _start_caller(
    runner: DynamicSubclassModelConcurrentRunner,
    plan: CallPlan,
    stop: threading.Event,
    board: Board,
    lines: _Lines | None,
) -> threading.Thread:
    def call_every() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                results = runner.call(plan.method, args=list(plan.args), kwargs=plan.kwargs)
            except MrclientError as error:  # the coordinator's mistake (or closed): shown, and tried again
                if not stop.is_set():
                    board.round_failed(str(error))
                    if lines:
                        lines.say(f"error  {error}")
            else:
                if lines and not stop.is_set():
                    lines.round(plan.method, results, time.monotonic() - started)
            stop.wait(max(0.0, plan.every - (time.monotonic() - started)))

    thread = threading.Thread(target=call_every, name="mrclient-watch-calls", daemon=True)
    thread.start()
    return thread

