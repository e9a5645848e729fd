"""``mrclient watch``: driven in a pseudo-terminal (the rich and plain-text tables) and through a pipe (lines).

The table's pieces (cutting to the terminal, the summary line, which output
is picked) are checked first with plain data.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from mrclient import ConnectionState, RoundSummary
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, BrokenTracker, EwmaTracker, TrackerBase
from mrclient.watch import pick_output, summary_line, text_table

WAIT = 60.0  # bound of every wait on the watched process (it starts Python, gRPC and rich)

# -- pieces, with plain data -------------------------------------------------------------------


def test_text_table_fits_the_terminal() -> None:
    rows = [("MODEL", "STATE", "ERROR"), ("m-1", "ready", "x" * 200), ("m-22", "left 10:00:00", "")]
    lines = text_table(rows, width=40, height=10)
    assert lines[0].startswith("MODEL  STATE") and all(len(line) <= 40 for line in lines)
    assert lines[1].endswith("...") and lines[2].startswith("m-22   left 10:00:00")
    many = [("MODEL", "ERROR"), *((f"m-{i}", "") for i in range(50))]
    cropped = text_table(many, width=80, height=10)
    assert len(cropped) == 10 and cropped[-1] == "... and 42 more"


def test_the_summary_line_says_how_the_connection_and_the_last_round_went() -> None:
    state = ConnectionState(connected=False, since=0.0, reconnects=2, reports_pending=1, reports_unconfirmed=3)
    summary = RoundSummary("predict", 0.0, 0.0125, 4, 2, 1, 1, 1, 0, (("m", 12.5),))
    line = summary_line(state, ready=4, left=1, last_round=summary, call_error="every model refused")
    for part in ("DISCONNECTED since", "2 reconnects", "reports 1 unsent, 3 unconfirmed", "4 ready, 1 left",
                 "2 ok, 1 failed, 1 timeout, 12 ms", "call error: every model refused"):
        assert part in line, (part, line)


def test_auto_output_is_rich_on_a_terminal_and_lines_elsewhere() -> None:
    assert pick_output("auto", tty=True) == "rich"  # rich is in the dev extra
    assert pick_output("auto", tty=False) == "lines"
    assert pick_output("table", tty=False) == "table"


# -- the command in a pseudo-terminal ----------------------------------------------------------

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


class Terminal:
    """A process whose standard streams are a pseudo-terminal of a given size; its screen as text lines."""

    def __init__(self, argv: Sequence[str], columns: int = 180, rows: int = 40) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = b""
        self._changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the process closed the terminal
                chunk = b""
            with self._changed:
                if not chunk:
                    self._changed.notify_all()
                    return
                self.output += chunk
                self._changed.notify_all()

    def lines(self) -> list[str]:
        """Every line the process drew so far, escape codes removed."""
        text = _ESCAPE.sub("", self.output.decode("utf-8", "replace"))
        return [line for line in re.split(r"[\r\n]", text) if line.strip()]

    def wait_for(self, predicate: Callable[[list[str]], bool]) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.lines()), WAIT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)
        self.reader.join(WAIT)
        os.close(self.master)


def a_line_with(*words: str) -> Callable[[list[str]], bool]:
    """Whether a line holds every word (a model id matches whole, so model-1 is not model-10)."""
    patterns = [re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])") for word in words]
    return lambda lines: any(all(p.search(line) for p in patterns) for line in lines)


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[tuple[LocalOrchestrator, Callable[[type], str]]]:
    with LocalOrchestrator(crunch_id="watched") as orchestrator:

        def add(tracker: type) -> str:
            node = local_node(classes=[TrackerBase, tracker])
            return orchestrator.add_model(host="127.0.0.1", port=node.port, name=tracker.__name__)

        yield orchestrator, add


def watch_command(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "mrclient.cli", "watch", "--host", "127.0.0.1", "--port", str(port),
            "--crunch-id", "watched", "--base-classname", BASE_CLASSNAME, "--refresh", "0.1", *options]


@pytest.mark.parametrize("output", ["auto", "table"], ids=["rich", "plain-text"])
def test_watch_in_a_terminal_shows_models_join_answer_and_leave(crunch: Any, output: str) -> None:
    orchestrator, add = crunch
    first = add(EwmaTracker)
    terminal = Terminal(watch_command(orchestrator.port, "--output", output, "--call", "predict", "--every", "0.2"))
    try:
        assert terminal.wait_for(a_line_with(first, "ready", "SUCCESS")), terminal.lines()[-20:]
        assert terminal.wait_for(a_line_with("connected since", "1 ready, 0 left")), terminal.lines()[-20:]
        if output == "auto":
            assert any("┃ MODEL" in line for line in terminal.lines()), "rich draws the table"

        second = add(BrokenTracker)
        assert terminal.wait_for(a_line_with(second, "BrokenTracker", "ready", "FAILED")), terminal.lines()[-20:]
        orchestrator.stop_model(first)
        assert terminal.wait_for(a_line_with(first, "left")), terminal.lines()[-20:]
        assert terminal.wait_for(a_line_with("1 ready, 1 left")), terminal.lines()[-20:]

        terminal.process.send_signal(signal.SIGINT)
        assert terminal.process.wait(WAIT) == 0
        assert not any("Traceback" in line for line in terminal.lines()), terminal.lines()
    finally:
        terminal.close()


def test_watch_through_a_pipe_prints_a_line_per_round_and_per_failure(crunch: Any) -> None:
    orchestrator, add = crunch
    working, broken = add(EwmaTracker), add(BrokenTracker)
    process = subprocess.Popen(watch_command(orchestrator.port, "--call", "predict", "--every", "0.2"),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # bounded: the process is killed below if it stalls
            lines.append(line)
            if "round" in line and sum("round" in seen for seen in lines) >= 2:
                break
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=WAIT)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
    text = "".join(lines)
    assert a_line_with("ready", working)(lines) and a_line_with("ready", broken)(lines)
    assert "round  predict: 2 models, 1 SUCCESS, 1 FAILED, 0 TIMEOUT" in text, text
    assert a_line_with("FAILED", broken, "diverged")(lines), text
    assert "left" not in rest  # stopping is not every model leaving
