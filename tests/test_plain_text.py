"""Plain text that reads well: short aligned reprs, counts with their plural, one missing-value rule, the terminal's width.

What an object prints is checked on objects made without a network (runners
that never connect, a round recorded by hand); the width through a real
pseudo-terminal of 80 columns (``pty``) and through a pipe, in a child
process (tests/_text_child.py).
"""

from __future__ import annotations

import fcntl
import math
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from mrclient import ConnectionState, ModelPredictResult, RoundResults
from mrclient._support import tables
from mrclient._support.tables import Column, fit_widths, text_table
from mrclient.concurrent.overview import model_table_html
from mrclient.concurrent.results import REST_DETAIL
from mrclient.runners import MODEL_LEFT, DynamicSubclassModelRunner
from mrclient.stats import CallTotals, ModelStatsTable, StatsBook

TESTS = Path(__file__).parent
WAIT = 60.0
SUCCESS, FAILED, TIMEOUT = ModelPredictResult.Status.SUCCESS, ModelPredictResult.Status.FAILED, ModelPredictResult.Status.TIMEOUT


def _runner(number: int, name: str | None = None) -> DynamicSubclassModelRunner:
    return DynamicSubclassModelRunner(
        base_classname="a.B", deployment_id=f"d{number}", model_id=f"m{number}", model_name=name, ip="127.0.0.1",
        port=40000 + number,
    )  # fmt: skip


def _book() -> StatsBook:
    return StatsBook(success=SUCCESS, timeout=TIMEOUT, rest_detail=REST_DETAIL, left_detail=MODEL_LEFT)


def _recorded(results: RoundResults, book: StatsBook) -> RoundResults:
    results._finish(0.25, book.record(results.method, results, results.started_at, 0.25))
    return results


# -- fitting a width, as a pure function ----------------------------------------------------------


def test_fit_widths_cuts_the_widest_first_then_drops_and_never_cuts_a_status() -> None:
    # model (never cut), name (cut to 4), status (never cut), error (cut to 6, dropped first)
    natural, least, drop = [7, 30, 7, 40], [None, 4, None, 6], [0, 2, 0, 3]
    assert fit_widths(natural, least, drop, width=200) == natural, "it fits: nothing changes"
    widths = fit_widths(natural, least, drop, width=60)
    assert widths[0] == 7 and widths[2] == 7 and sum(w or 0 for w in widths) + 2 * 3 == 60
    assert widths[3] is not None and widths[3] >= widths[1] >= 4, "the widest shrank first"
    assert fit_widths(natural, least, drop, width=30) == [7, 4, 7, 6], "each cut to its least: it fits, nothing dropped"
    assert fit_widths(natural, least, drop, width=28) == [7, 10, 7, None], "the least do not fit: the error goes first"
    assert fit_widths(natural, least, drop, width=10) == [7, None, 7, None], "too narrow: the status stays whole"


def test_a_text_table_fits_its_width_and_keeps_the_model_the_status_and_the_numbers_whole() -> None:
    columns = (
        Column("model", "model", least=None), Column("name", "name", least=6, drop=2),
        Column("status", "status", least=None), Column("ms", "ms", numeric=True), Column("error", "error", least=8),
    )  # fmt: skip
    rows = [
        {"model": "model-123", "name": "a-very-long-model-name-indeed", "status": "TIMEOUT", "ms": 123456,
         "error": "DEADLINE_EXCEEDED: " + "x" * 50},
        {"model": "model-7", "name": "short", "status": "SUCCESS", "ms": 1, "error": None},
    ]  # fmt: skip
    whole = text_table(columns, rows)
    assert max(map(len, whole.splitlines())) > 80 and "a-very-long-model-name-indeed" in whole
    for width in (80, 60, 45):
        lines = text_table(columns, rows, width=width).splitlines()
        assert all(len(line) <= width for line in lines), (width, lines)
        first = lines[1].split()
        assert first[0] == "model-123" and "TIMEOUT" in first and "123456" in first, lines
        assert any(cell.endswith("…") for cell in first), lines


# -- counts and their plural ----------------------------------------------------------------------------


def test_one_of_anything_is_singular() -> None:
    runner = _runner(1, "solo")
    book = _book()
    results = _recorded(
        RoundResults({runner: ModelPredictResult(runner, 1, SUCCESS, 1000)}, method="tick", started_at=time.time()),
        book,
    )
    assert re.match(r"<RoundResults tick at [\d :-]+: 1 model, 1 SUCCESS, 0 FAILED, 0 TIMEOUT in 250 ms>", repr(results))
    stats = ModelStatsTable([(runner, runner.stats)])
    assert repr(stats).startswith("<ModelStatsTable: 1 model, 1 call>\n")
    assert book.totals().caption() == "1 round, 1 call: 1 SUCCESS, 0 FAILED, 0 TIMEOUT; 0 rest skips, 0 left mid-round"
    assert "… 1 more model" in model_table_html([], left_out=1) and "more models" not in model_table_html([], 1)
    assert tables.counted(1, "summary", "summaries") == "1 summary" and tables.counted(2, "summary", "summaries") == "2 summaries"


# -- short, aligned reprs ---------------------------------------------------------------------------


def _aligned(text: str) -> None:
    """Every line after the first is ``  label  value`` with its value in one column."""
    lines = text.splitlines()[1:]
    assert lines and all(re.match(r"^  \S", line) for line in lines), text
    starts = {re.match(r"^  (\S+( \S+)?) +", line).end() for line in lines}  # type: ignore[union-attr]
    assert starts == {14}, text


def test_a_models_stats_the_totals_a_summary_and_the_connection_print_as_short_aligned_text() -> None:
    models = [_runner(1, "quick"), _runner(2, "broken")]
    book = _book()
    for _ in range(3):
        _recorded(
            RoundResults({models[0]: ModelPredictResult(models[0], 1, SUCCESS, 2_000),
                          models[1]: ModelPredictResult(models[1], None, FAILED, 3_000, "MODEL_FAILED: boom")},
                         method="predict", started_at=time.time()),
            book,
        )  # fmt: skip
    models[1].mark_left("reported MULTIPLE_FAILED")
    broken = models[1].stats
    text = repr(broken)
    assert "ModelStats(" not in text and "=" not in text and len(text) < 600, text
    assert text.splitlines()[0] == "<ModelStats m2 'broken' left: reported MULTIPLE_FAILED>"
    _aligned(text)
    assert "\n  calls       3: 0 ok, 3 failed, 0 timeout\n" in text and "\n  by method   predict: 3 failed\n" in text
    assert re.search(r"\n  last error  \d\d:\d\d:\d\d MODEL_FAILED: boom\n", text), text
    assert str(broken) == text

    totals = book.totals()
    printed = str(totals)
    assert "CallTotals(" not in printed and "recent_rounds" not in printed, printed
    lines = printed.splitlines()
    assert lines[0] == "<CallTotals: 3 rounds, 6 calls: 3 SUCCESS, 3 FAILED, 0 TIMEOUT; 0 rest skips, 0 left mid-round>"
    assert lines[1].split() == ["method", "rounds", "mean", "round", "ms", "calls", "SUCCESS", "FAILED", "TIMEOUT"]
    assert lines[2].split() == ["predict", "3", "250", "6", "3", "3", "0"]
    assert lines[3].startswith("  latency ≤ 2.5 ms: 3 · ≤ 5 ms: 3 (mean ")

    summary = totals.recent_rounds[-1]
    assert re.fullmatch(r"predict at \d\d:\d\d:\d\d: 2 called, 1 SUCCESS, 1 FAILED, 0 TIMEOUT in 250 ms", str(summary))
    assert repr(summary) == f"<RoundSummary {summary.line}; slowest m2 3.0 ms, m1 2.0 ms>"

    state = ConnectionState(True, time.time(), 1, 0, 2, {"MULTIPLE_FAILED": 1})
    assert re.fullmatch(
        r"<ConnectionState connected since [\d-]+ [\d:]+, 1 reconnect, reports 0 unsent, 2 unconfirmed, "
        r"sent 1 MULTIPLE_FAILED>", repr(state),
    )  # fmt: skip


# -- one rule for a missing value in every to_frame() ----------------------------------------------------


def test_every_to_frame_has_nan_for_a_missing_number_nat_for_a_missing_time_and_none_for_missing_text() -> None:
    pandas = pytest.importorskip("pandas")
    called, idle = _runner(1, "called"), _runner(2, None)
    book = _book()
    results = _recorded(
        RoundResults({called: ModelPredictResult(called, None, FAILED, 2_000, "MODEL_FAILED: boom"),
                      idle: ModelPredictResult(idle, {"x": 1}, SUCCESS, 1_000)},
                     method="predict", started_at=time.time()),
        book,
    )  # fmt: skip
    frame = results.to_frame()
    assert frame.loc["m1", "result"] is None and frame.loc["m2", "model_name"] is None and frame.loc["m2", "detail"] is None
    assert frame["latency_ms"].dtype == float and frame.loc["m1", "detail"] == "MODEL_FAILED: boom"
    assert frame["left"].dtype == bool

    fresh = _runner(3, "fresh")  # no call yet: no latency, no last call, no error
    stats = ModelStatsTable([(called, called.stats), (fresh, fresh.stats)]).to_frame()
    for column in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "last_latency_ms"):
        assert stats[column].dtype == float and math.isnan(stats.loc["m3", column]), column
    assert stats.loc["m3", "last_error"] is None and stats.loc["m3", "last_status"] is None
    assert stats.loc["m3", "left_reason"] is None and stats.loc["m1", "last_error"] == "MODEL_FAILED: boom"
    for column in ("joined", "last_call", "last_error_time", "left"):
        assert pandas.api.types.is_datetime64_any_dtype(stats[column]), (column, stats[column].dtype)
    assert stats.loc["m3", "last_call"] is pandas.NaT and isinstance(stats.loc["m1", "last_call"], pandas.Timestamp)
    assert stats["calls"].dtype.kind == "i", "a count with no value missing stays an integer"
    only_fresh = ModelStatsTable([(fresh, fresh.stats)]).to_frame()
    assert only_fresh["latency_p50_ms"].dtype == float and only_fresh["last_call"].dtype.kind == "M", "even all missing"

    by_method = ModelStatsTable([(called, called.stats)]).to_frame(by_method=True)
    assert by_method.loc[("m1", "predict"), "failures"] == 1 and by_method["calls"].dtype.kind == "i"

    totals = CallTotals({"tick": 0}, {"tick": 0.0}, {"SUCCESS": 0}, 0, 0, (0,) * 16, 0.0)
    assert totals.to_frame()["mean_round_ms"].dtype == float and math.isnan(totals.to_frame().loc["tick", "mean_round_ms"])


# -- the terminal's width, through a pseudo-terminal and a pipe -------------------------------------


def _run_in_terminal(script: Path, columns: int) -> str:
    """What ``script`` prints in a pseudo-terminal ``columns`` wide (``COLUMNS`` unset: the terminal decides)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environment = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    child = subprocess.Popen([sys.executable, str(script)], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                             env=environment, cwd=TESTS)  # fmt: skip
    os.close(slave)
    output = b""
    deadline = time.monotonic() + WAIT
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([master], [], [], remaining)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert child.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, child.stderr.read() if child.stderr else ""
    finally:
        os.close(master)
        if child.poll() is None:
            os.kill(child.pid, 9)
            child.wait()
        if child.stderr:
            child.stderr.close()
    return output.decode().replace("\r\n", "\n")


@pytest.mark.subprocess
def test_printed_in_an_80_column_terminal_every_line_fits_and_the_model_and_status_stay_whole() -> None:
    text = _run_in_terminal(TESTS / "_text_child.py", 80)
    lines = text.splitlines()
    assert lines[-1] == "done", text
    assert max(map(len, lines)) <= 80, "\n".join(line for line in lines if len(line) > 80)
    results = lines[: next(index for index, line in enumerate(lines) if line.startswith("<ModelStatsTable"))]
    for model, status in (("model-1", "SUCCESS"), ("model-2", "TIMEOUT"), ("model-3", "FAILED")):
        [row] = [line for line in results if line.startswith(f"  {model} ")]
        assert f" {status} " in row, row
    assert "…" in text, "long values are cut with an ellipsis"
    assert re.search(r"^  model-3 .*left: reported MULTIPLE_FAILED ", text, re.MULTILINE), text
    assert "a-crunch-with-quite-a-long-name" in text and "not started, 0 ready, 0 rounds>" in text, "wrapped, not cut"


@pytest.mark.subprocess
def test_printed_to_a_pipe_every_value_is_whole() -> None:
    done = subprocess.run([sys.executable, str(TESTS / "_text_child.py")], capture_output=True, text=True,
                          timeout=WAIT, cwd=TESTS, env={**os.environ, "COLUMNS": "80"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "done" and max(map(len, lines)) > 80
    assert "a-tracker-with-a-name-much-longer-than-any-column-should-be" in done.stdout
    assert "the tracker diverged after a long warm-up the tracker diverged after a long warm-up the tracker" in done.stdout
    assert "<DynamicSubclassModelConcurrentRunner crunch='a-crunch-with-quite-a-long-name' ws://" in done.stdout


def test_terminal_width_is_none_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class NotATerminal:
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdout", NotATerminal())
    assert tables.terminal_width() is None
    monkeypatch.setattr(sys, "stdout", None)
    assert tables.terminal_width() is None
