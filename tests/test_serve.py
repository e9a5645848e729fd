"""``mrclient serve``: a local crunch that stays up until Ctrl-C, and says how to reach it.

As a process: it prints the options and commands to use, ``watch`` and
``call`` work against them as printed, and a signal ends it at once and
cleanly (130 after Ctrl-C, 143 after SIGTERM). In this process: stopping it
leaves no thread behind, and a coordinator's failure report is said.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mrclient import DynamicSubclassModelConcurrentRunner, cli

WAIT = 60.0  # bound of every wait on a process (it starts Python, gRPC and four nodes)
PROMPT = 10.0  # what "at once" allows on a loaded machine


class Served:
    """A ``mrclient serve`` process, read until it printed how to reach it."""

    def __init__(self, *options: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "mrclient", "serve", *options], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.printed: list[str] = []
        done = threading.Event()
        stdout = self.process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                self.printed.append(line.rstrip("\n"))
                if re.match(r"\s+--timeout \S+ predict$", line):  # the last line of the call command
                    done.set()
            done.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        assert done.wait(WAIT) and self.process.poll() is None, self.printed

    def commands(self) -> dict[str, list[str]]:
        """The ``mrclient`` command lines it printed, by subcommand, as argument lists (continuation lines joined)."""
        text = "\n".join(self.printed).replace("\\\n", " ")
        return {words[1]: words[1:] for line in text.splitlines() if (words := shlex.split(line))[:1] == ["mrclient"]}

    def stop(self, signum: int) -> tuple[int, float, str]:
        started = time.monotonic()
        self.process.send_signal(signum)
        _, errors = self.process.communicate(timeout=WAIT)
        return self.process.returncode, time.monotonic() - started, errors

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=WAIT)
        self.reader.join(WAIT)


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    yield server
    server.close()


def mrclient(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mrclient", *args], capture_output=True, text=True, timeout=WAIT)


@pytest.mark.serial  # a signal, and a bound on how soon serve ends
@pytest.mark.subprocess
def test_serve_prints_what_reaches_it_and_watch_and_call_work_as_printed(served: Served) -> None:
    text = "\n".join(served.printed)
    options = re.search(r"--host 127\.0\.0\.1 --port (\d+) --crunch-id demo\n\s+--base-classname (\S+)", text)
    assert options, text
    assert options.group(2) == "mrclient.testing.examples.TrackerBase"
    assert all(len(line) <= 80 for line in served.printed), "it fits an 80-column terminal, pasteable lines too"
    commands = served.commands()
    assert set(commands) == {"watch", "call"}, text

    called = mrclient(*commands["call"], "--json")
    assert called.returncode == 0, called.stderr
    statuses = {record["model_name"]: record["status"] for record in map(json.loads, called.stdout.splitlines())}
    assert statuses == {"ewma-tracker-1": "SUCCESS", "ewma-tracker-2": "SUCCESS", "broken-tracker": "FAILED",
                        "slow-tracker": "TIMEOUT"}

    watch = subprocess.Popen([sys.executable, "-m", "mrclient", *commands["watch"], "--output", "lines"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert watch.stdout is not None
        lines = [watch.stdout.readline() for _ in range(4)]  # bounded: the four models are announced at once
        assert sorted(line.split()[2] for line in lines) == ["model-1", "model-2", "model-3", "model-4"], lines
        watch.send_signal(signal.SIGINT)
        assert watch.wait(WAIT) == 130
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.wait(WAIT)

    status, took, errors = served.stop(signal.SIGINT)
    assert status == 130 and took < PROMPT, (status, took, errors)
    assert "Traceback" not in errors and "Exception ignored" not in errors, errors
    assert errors.strip().splitlines()[-1] == "mrclient: stopping the local crunch", errors


@pytest.mark.serial  # a signal, and a bound on how soon serve ends
@pytest.mark.subprocess
def test_sigterm_ends_a_secure_serve_with_143_and_its_credentials_go_with_it() -> None:
    server = Served("-q", "--secure")
    try:
        commands = server.commands()
        credentials = Path(commands["call"][commands["call"].index("--credentials") + 1])
        assert commands["watch"][-2:] == ["--credentials", str(credentials)]
        assert {path.name for path in credentials.iterdir()} == {"ca.crt", "tls.crt", "tls.key"}
        assert all(len(line) <= 80 for line in server.printed), server.printed
        status, took, errors = server.stop(signal.SIGTERM)
    finally:
        server.close()
    assert status == 143 and took < PROMPT, (status, took, errors)
    assert errors == "", "-q: no notes"
    assert not credentials.exists(), "the coordinator's files are removed with the crunch"


class Said(io.StringIO):
    """A stream that can be waited on for a text (what the command prints, read in this process)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
            return written

    def wait_for(self, pattern: str) -> re.Match[str]:
        with self.changed:
            self.changed.wait_for(lambda: re.search(pattern, self.getvalue()) is not None, WAIT)
            found = re.search(pattern, self.getvalue())
        assert found, f"nothing matched {pattern!r} within {WAIT}s: {self.getvalue()!r}"
        return found


def test_serve_stops_on_its_event_with_no_thread_left_and_says_each_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process: the command's loop, stopped as a signal stops it; a coordinator reports the broken model."""
    out, err = Said(), Said()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    args = cli.build_parser().parse_args(["serve", "--models", "3", "--timeout", "0.5"])
    signals = cli._Signals()  # not entered: nothing installed; the test sets its stop event
    before = set(threading.enumerate())
    outcome: list[int] = []
    serving = threading.Thread(target=lambda: outcome.append(cli.run_serve(args, signals)), name="test-serve")
    serving.start()
    try:
        port = int(out.wait_for(r"--port (\d+)")[1])
        with DynamicSubclassModelConcurrentRunner(
            timeout=0.5, crunch_id="demo", host="127.0.0.1", port=port,
            base_classname="mrclient.testing.examples.TrackerBase", max_consecutive_failures=1,
        ) as runner:
            for _ in range(2):  # more than max_consecutive_failures in a row
                runner.call("predict")
        said = err.wait_for(r"report from a coordinator:[^$]*stopped it")[0]
        assert "model-2 MULTIPLE_FAILED" in " ".join(said.split()), said
    finally:
        signals.stop.set()
        serving.join(WAIT)
    assert outcome == [0]
    left = [thread for thread in threading.enumerate() if thread not in before]
    # A node's handler thread still in the participant's method ends when it returns (the slow model
    # sleeps 1.5 s past the deadline): that one is waited for; nothing else may be left.
    busy = [thread for thread in left if thread.name.startswith("local-model-node")]
    assert [thread for thread in left if thread not in busy] == [], f"serve left threads running: {left}"
    for thread in busy:
        thread.join(WAIT)
        assert not thread.is_alive(), f"{thread.name} outlived the slow model's method"
