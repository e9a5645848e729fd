"""What the command prints fits an 80-column terminal: tables, help, warnings and errors.

The command runs in a pseudo-terminal 80 columns wide (``_terminal``): the
tables of ``demo`` and ``call`` cut long values with an ellipsis and keep
each model and its status whole; through a pipe they keep their full width.
Help, warnings and errors wrap at 80 columns, even in a wider terminal.
``watch``'s rich table cuts nothing the plain table shows whole.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from _terminal import WAIT, Terminal
from conftest import free_port
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, BrokenTracker, EwmaTracker, SlowTracker, TrackerBase
from mrclient.watch.announcements import Announcement
from mrclient.watch.display import ModelCalls, RichScreen, model_rows, text_table

MRCLIENT = [sys.executable, "-m", "mrclient"]
STATUS = re.compile(r"(?<![\w-])(SUCCESS|FAILED|TIMEOUT)(?![\w-])")


def in_terminal(*argv: str, columns: int = 80) -> tuple[int, list[str]]:
    """Run ``mrclient ARGV`` in a terminal ``columns`` wide until it ends: its status and every line it drew."""
    terminal = Terminal([*MRCLIENT, *argv], columns=columns)
    try:
        status = terminal.wait()
        return status, terminal.lines()
    finally:
        terminal.close()


def table_rows(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"model-\d+ ", line)]


def assert_fitted(lines: list[str], statuses: set[str]) -> None:
    """Every line in 80 columns; each model's row starts with its whole id and holds a whole status."""
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    rows = table_rows(lines)
    assert rows, lines
    for row in rows:
        assert STATUS.search(row), row
    assert {match[1] for row in rows if (match := STATUS.search(row))} == statuses, rows
    assert any("…" in row for row in rows), "long values and details are cut with an ellipsis"


@pytest.mark.subprocess
@pytest.mark.parametrize("secure", [[], ["--secure"]], ids=["plain", "secure"])
def test_demo_fits_80_columns_with_every_model_and_status_whole(secure: list[str]) -> None:
    status, lines = in_terminal("demo", "--rounds", "1", *secure)
    assert status == 0, lines
    assert_fitted(lines, {"SUCCESS", "FAILED", "TIMEOUT"})
    assert any(line.startswith("MODEL ") and "STATUS" in line for line in lines), lines


@pytest.mark.subprocess
def test_demo_through_a_pipe_keeps_its_full_width() -> None:
    done = subprocess.run([*MRCLIENT, "demo", "--rounds", "1"], capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert "MODEL_FAILED: The model raised an exception: this tracker diverged" in done.stdout  # not cut
    assert max(map(len, done.stdout.splitlines())) > 80


@pytest.mark.subprocess
def test_demo_q_prints_the_rounds_only() -> None:
    done = subprocess.run([*MRCLIENT, "-q", "demo", "--rounds", "1", "--models", "3"], capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert "local orchestrator on port" not in done.stdout and done.stdout.lstrip().startswith("round 1: 3 models")


class LongTracker(EwmaTracker):
    """Answers a value far wider than a terminal, under a long name."""

    def predict(self) -> Any:
        return {"history": list(range(60)), "note": "a value too long for any table"}


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[LocalOrchestrator]:
    SlowTracker.delay = 2.0  # past the call's --timeout of 0.5 s
    with LocalOrchestrator(crunch_id="narrow") as orchestrator:
        for tracker, name in ((EwmaTracker, "ewma"), (BrokenTracker, "broken"), (SlowTracker, "slow"),
                              (LongTracker, "a-participant-with-a-very-long-model-name")):
            orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[TrackerBase, tracker]).port, name=name)
        yield orchestrator


@pytest.mark.subprocess
def test_call_fits_80_columns_and_says_json_prints_values_whole(crunch: LocalOrchestrator) -> None:
    status, lines = in_terminal("call", "--host", "127.0.0.1", "--port", str(crunch.port), "--crunch-id", "narrow",
                                "--base-classname", BASE_CLASSNAME, "--timeout", "0.5", "predict")
    assert status == 0, lines
    assert_fitted(lines, {"SUCCESS", "FAILED", "TIMEOUT"})
    assert len(table_rows(lines)) == 4
    assert "(long values are cut: --json prints them whole)" in lines


@pytest.mark.subprocess
@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("command", [[], ["demo"], ["serve"], ["watch"], ["call"]], ids=lambda c: c[0] if c else "top")
def test_help_wraps_at_80_columns(command: list[str], columns: int) -> None:
    status, lines = in_terminal(*command, "--help", columns=columns)
    assert status == 0 and lines[0].startswith("usage: mrclient"), lines
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]


@pytest.mark.subprocess
def test_a_bad_value_and_its_hint_wrap_at_80_columns() -> None:
    status, lines = in_terminal("call", "--host", "ws://orchestrator.example.com:8001/bird-game", "--crunch-id", "c",
                                "--base-classname", "a.B", "predict")
    assert status == 2
    assert max(map(len, lines)) <= 80, lines
    assert "try --host orchestrator.example.com --port 8001 --crunch-id bird-game" in " ".join(" ".join(lines).split())


@pytest.mark.subprocess
def test_the_warning_of_call_and_the_connection_error_wrap_at_80_columns() -> None:
    status, lines = in_terminal("watch", "--host", "127.0.0.1", "--port", str(free_port()), "--crunch-id", "c",
                                "--call", "predict", "--base-classname", BASE_CLASSNAME, "--init-timeout", "1")
    assert status == 1, lines
    said = " ".join(" ".join(lines).split())
    assert "mrclient: warning: --call sets every model up and calls predict" in said
    assert "could not connect to the orchestrator" in said and "check --host, --port and --crunch-id" in said
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]


# -- watch: rich cuts nothing the plain table shows whole -------------------------------------------


def watched(errors: list[str]) -> tuple[Any, list[tuple[str, ...]]]:
    """The docs' capture of watch --health --call in 80 columns: short names, one long error per model given."""
    announced = [Announcement(f"model-{n}", f"deployment-{n + 1}", "RUNNING", "127.0.0.1", 35000 + n,
                              {"model_name": name, "cruncher_name": cruncher}, since=0.0)
                 for n, (name, cruncher) in enumerate([("broken", "bob"), ("newbie", "dave"), ("slow", "carol")])]
    statuses = ["FAILED", "SUCCESS", "TIMEOUT"]
    calls = {shown.model_id: ModelCalls(stats=SimpleNamespace(  # type: ignore[arg-type] (what the table reads)
        calls=4, successes=4 if status == "SUCCESS" else 0, latency_p90_ms=3.0, last_status=status,
        last_latency_ms=1.3, last_error=error or None)) for shown, status, error in zip(announced, statuses, errors, strict=True)}
    return model_rows(announced, {shown.model_id: "SERVING" for shown in announced}, calls)


@pytest.mark.parametrize(
    "errors",
    [["MODEL_FAILED: The model raised an exception: this tracker diverged", "", "DEADLINE_EXCEEDED"],
     ["MODEL_FAILED: The model raised an exception: no weights file", "", "SKIPPED: resting after timeouts"]],
    ids=["deadline", "resting"],
)
def test_rich_cuts_no_column_the_plain_table_shows_whole(errors: list[str]) -> None:
    columns, rows = watched(errors)
    plain = text_table(columns, rows, width=80, height=40)
    out = io.StringIO()
    screen = RichScreen(out)
    screen.console.width = 80
    with screen:
        screen.draw([["bird-game: connected"]], columns, rows)
    drawn = out.getvalue().splitlines()
    assert max(map(len, drawn)) <= 80
    for row, plain_line in zip(rows[1:], plain[1:], strict=True):
        rich_line = next(line for line in drawn if line.startswith(row[0] + " "))
        whole_in_plain = [cell for cell in row if cell and cell in plain_line]
        assert [cell for cell in whole_in_plain if cell not in rich_line] == [], (plain_line, rich_line)
