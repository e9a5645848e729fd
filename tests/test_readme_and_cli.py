"""The README shows its examples and the two commands, and the ``mrclient`` command works.

The examples themselves run in tests/test_doc_examples.py, with every program of the docs.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from mrclient import cli
from mrclient.testing.examples import TrackerBase

README = Path(__file__).resolve().parent.parent / "README.rst"
RUN_TIMEOUT = 120.0


def python_examples() -> list[str]:
    """Every ``.. code-block:: python`` of README.rst marked as a complete program (``.. runs-as-is``), dedented."""
    blocks = re.findall(r"^\.\. runs-as-is\n\n\.\. code-block:: python\n\n((?:    .*\n|\n)+)", README.read_text(), re.MULTILINE)
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in blocks]


def test_the_readme_has_both_examples_and_the_two_commands() -> None:
    text = README.read_text()
    assert len(python_examples()) == 2
    assert text.index("make demo") < text.index("Usage") and text.index("make test") < text.index("Usage")


def mrclient(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mrclient.cli", *args], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def flat(text: str) -> str:
    """``text`` on one line: what the command says is wrapped at 80 columns."""
    return " ".join(text.split())


@pytest.mark.subprocess
def test_demo_shows_every_status_and_exits_zero() -> None:
    done = mrclient("demo", "--rounds", "2", "--models", "3")
    assert done.returncode == 0, done.stderr
    rows = done.stdout
    for status in ("SUCCESS", "FAILED", "TIMEOUT"):
        assert status in rows, rows
    assert rows.count("round ") == 2


@pytest.mark.parametrize("models", ["2", "-1"])
@pytest.mark.subprocess
def test_demo_refuses_fewer_models_than_it_needs_to_show_a_success(models: str) -> None:
    done = mrclient("demo", "--models", models)
    assert done.returncode == 2 and "--models: must be at least 3 (one working, one slow, one broken)" in flat(done.stderr)


@pytest.mark.parametrize("command", [[], ["demo"], ["serve"], ["watch"], ["call"]])
@pytest.mark.subprocess
def test_help(command: list[str]) -> None:
    done = mrclient(*command, "--help")
    assert done.returncode == 0 and "usage: mrclient" in done.stdout


@pytest.mark.subprocess
def test_help_shows_the_defaults_and_the_reason_of_the_json_format() -> None:
    text = " ".join(mrclient("call", "--help").stdout.split())
    assert "(default: 8000)" in text and "(default: 60.0)" in text and "(default: 10.0)" in text
    assert "the library's init_timeout has the same default" in text
    assert "JSON Lines: one JSON object per model and line" in text
    watch = " ".join(mrclient("watch", "--help").stdout.split())
    assert "contacts no model node" in watch and "--health" in watch and "compete with the crunch coordinator's" in watch


CALL = ("call", "--host", "127.0.0.1", "--crunch-id", "c", "--base-classname", "a.B")


@pytest.mark.parametrize(
    "arguments, named",
    [([*CALL, "predict", "{oops"], "argument ARGS: not valid JSON (Expecting property name"),
     ([*CALL, "predict", "--kwargs", "[1"], "argument --kwargs: not valid JSON"),
     ([*CALL, "predict", "--kwargs", "[1]"], "argument --kwargs: must be a JSON object of keyword arguments"),
     (["watch", "--crunch-id", "c", "--call", "predict", "--base-classname", "a.B", "--args", "[1"],
      "argument --args: not valid JSON"),
     (["call", "--crunch-id", "", "--base-classname", "a.B", "predict"], "argument --crunch-id: not a crunch id"),
     (["watch", "--crunch-id", " "], "argument --crunch-id: not a crunch id"),
     (["call", "--crunch-id", "c", "--base-classname", "", "predict"], "argument --base-classname: must be a fully"),
     (["serve", "--port", "70000"], "argument --port: not a TCP port number"),
     ([*CALL, "--credentials", "/nonexistent", "predict"], "argument --credentials: cannot read the CA certificate"),
     ([*CALL, "--gateway-key", "/nonexistent", "predict"], "argument --gateway-key: cannot read the gateway key"),
     ([*CALL, ""], "argument method: not a method name"),
     (["watch", "--crunch-id", "c", "--call", "", "--base-classname", "a.B"], "argument --call: not a method name")],
    ids=["ARGS", "kwargs-json", "kwargs-object", "watch-args", "crunch-id", "crunch-id-blank", "base-classname",
         "serve-port", "credentials", "gateway-key", "method", "watch-call"],
)
def test_a_bad_command_line_value_exits_2_naming_the_option(
    arguments: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Parsed in this process (argparse exits before anything runs): the usage, and the option's name."""
    with pytest.raises(SystemExit) as exited:
        cli.main(arguments)
    assert exited.value.code == 2
    said = flat(capsys.readouterr().err)
    assert said.startswith(f"usage: mrclient {arguments[0]}") and named in said, said
    assert "crunch_id" not in said and "init_timeout" not in said, "the command line's words, not the library's"


@pytest.mark.subprocess
def test_call_help_says_what_its_timeout_means() -> None:
    call = flat(mrclient("call", "--help").stdout)
    assert "--timeout SECONDS how long each model has to answer: past it, its row says TIMEOUT (default: 10.0)" in call
    assert "health check" not in call and "watch:" not in call
    watch = flat(mrclient("watch", "--help").stdout)
    assert "deadline of each call (--call) and of each health check (--health)" in watch


@pytest.mark.subprocess
def test_call_against_an_unreachable_orchestrator_fails_clearly() -> None:
    done = mrclient(*CALL, "--port", "1", "--init-timeout", "1", "predict")
    assert done.returncode == 1
    said = flat(done.stderr)
    assert "mrclient: error: could not connect to the orchestrator at ws://127.0.0.1:1/c within --init-timeout (1s)" in said
    assert "connection refused: nothing listens at 127.0.0.1:1" in said and "check --host, --port and --crunch-id" in said
    assert "init_timeout=" not in said and "init()" not in said, said  # the command line's words, not the library's


@pytest.mark.parametrize(
    "host, hint",
    [("ws://orchestrator.example.com:8001/bird-game", "try --host orchestrator.example.com --port 8001 --crunch-id bird-game"),
     ("localhost:8000", "try --host localhost --port 8000")],
)
@pytest.mark.subprocess
def test_a_url_as_host_gets_a_hint_in_command_line_options(host: str, hint: str) -> None:
    done = mrclient("call", "--host", host, "--crunch-id", "c", "--base-classname", "a.B", "predict")
    assert done.returncode == 2 and hint in flat(done.stderr), done.stderr
    assert "host='" not in done.stderr  # not the library's Python wording


class LineReader:
    """Lines a process prints, read on a thread so that each wait is bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        self.thread = threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True)
        self.thread.start()

    def next(self, timeout: float = 30.0) -> str:
        return self.lines.get(timeout=timeout)


@pytest.mark.subprocess
def test_watch_prints_models_as_they_run_and_stop_until_interrupted(local_node: Any) -> None:
    """No --base-classname: a plain watch reads the orchestrator only."""
    from mrclient.testing import LocalOrchestrator
    from mrclient.testing.examples import EwmaTracker, TrackerBase

    with LocalOrchestrator(crunch_id="watched") as orchestrator:
        first = orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[TrackerBase, EwmaTracker]).port)
        process = subprocess.Popen(
            [sys.executable, "-m", "mrclient.cli", "watch", "--host", "127.0.0.1", "--port", str(orchestrator.port),
             "--crunch-id", "watched"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        lines = LineReader(process)
        try:
            line = lines.next()
            assert "running" in line and first in line  # already there
            second = orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[TrackerBase, EwmaTracker]).port)
            line = lines.next()
            assert "running" in line and second in line
            orchestrator.stop_model(first)
            line = lines.next()
            assert "stopped" in line and first in line
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=RUN_TIMEOUT) == 130  # Ctrl-C, as shells say it
            lines.thread.join(RUN_TIMEOUT)
            assert lines.lines.empty(), lines.next()  # stopping is not every model leaving
        finally:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT)
            lines.thread.join(RUN_TIMEOUT)


# -- mrclient call against a crunch --------------------------------------------------------------


class LongResultTracker(TrackerBase):
    """Answers a value too long for the table's value column."""

    def predict(self) -> Any:
        return {"location": 19.25, "history": list(range(40)), "note": "é" * 10}


@pytest.fixture
def crunch(local_node: Any) -> Any:
    from mrclient.testing import LocalOrchestrator
    from mrclient.testing.examples import TrackerBase

    with LocalOrchestrator(crunch_id="called") as orchestrator:

        def add(tracker: type, name: str) -> str:
            node = local_node(classes=[TrackerBase, tracker])
            return orchestrator.add_model(host="127.0.0.1", port=node.port, name=name)

        yield orchestrator, add


def call_crunch(orchestrator: Any, *options: str, crunch_id: str = "called") -> subprocess.CompletedProcess[str]:
    from mrclient.testing.examples import BASE_CLASSNAME

    return mrclient("call", "--host", "127.0.0.1", "--port", str(orchestrator.port), "--crunch-id", crunch_id,
                    "--base-classname", BASE_CLASSNAME, *options)


@pytest.mark.subprocess
def test_call_of_a_misspelt_crunch_says_it_has_no_models_and_fails(crunch: Any) -> None:
    from mrclient.testing.examples import EwmaTracker

    orchestrator, add = crunch
    add(EwmaTracker, "ewma")
    done = call_crunch(orchestrator, "predict", crunch_id="callde")
    assert done.returncode == 1, done
    said = flat(done.stderr)
    assert "crunch 'callde' has no models" in said and "Is the crunch id right?" in said, done.stderr
    assert "MODEL" not in done.stdout  # not a header row over nothing
    assert said.count("Is the crunch id right?") == 1, done.stderr  # said once, not also as a Python warning


@pytest.mark.subprocess
def test_call_shows_a_row_for_every_model_announced_even_one_still_setting_up(crunch: Any, gate: threading.Event) -> None:
    from mrclient.testing.examples import EwmaTracker, TrackerBase

    class HeldTracker(TrackerBase):
        def __init__(self) -> None:
            gate.wait(RUN_TIMEOUT)  # its Setup lasts until the test ends

    class FailingTracker(TrackerBase):
        def __init__(self) -> None:
            raise RuntimeError("no weights file")

    orchestrator, add = crunch
    working, held, failing = add(EwmaTracker, "ewma"), add(HeldTracker, "held"), add(FailingTracker, "failing")
    done = call_crunch(orchestrator, "--init-timeout", "3", "predict")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("model-")}
    assert set(rows) == {working, held, failing}, done.stdout
    assert "SUCCESS" in rows[working]
    assert "SETTING_UP" in rows[held] and "still setting up after --init-timeout (3s): not called" in rows[held]
    assert "SETUP_FAILED" in rows[failing] and "no weights file" in rows[failing]
    assert "waiting up to" not in done.stderr  # init() used the whole --init-timeout already


@pytest.mark.subprocess
def test_call_waits_for_a_model_whose_setup_is_retried_and_says_so(crunch: Any, local_node: Any) -> None:
    """A node not up at the first attempt: init() returns, and call waits (within --init-timeout), saying so."""
    from conftest import free_port
    from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker

    orchestrator, add = crunch
    add(EwmaTracker, "ewma")
    port = free_port()  # nothing listens there yet
    late = orchestrator.add_model(host="127.0.0.1", port=port, name="late")
    process = subprocess.Popen([sys.executable, "-m", "mrclient.cli", "call", "--host", "127.0.0.1", "--port",
                                str(orchestrator.port), "--crunch-id", "called", "--base-classname", BASE_CLASSNAME,
                                "--init-timeout", "60", "predict"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        assert "connecting to" in process.stderr.readline()  # at once
        note = process.stderr.readline()  # bounded: init() returns once the late node's first attempt failed
        assert "waiting up to" in note and "(--init-timeout) for 1 model still setting up" in note, note
        local_node(classes=[TrackerBase, EwmaTracker], port=port)  # the node comes up: the next attempt succeeds
        out, _ = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(RUN_TIMEOUT)
    assert process.returncode == 0
    assert late in out and out.count("SUCCESS") == 2, out


@pytest.mark.subprocess
def test_call_with_v_after_the_subcommand_and_json_prints_the_whole_results(crunch: Any) -> None:
    orchestrator, add = crunch
    model = add(LongResultTracker, "long")
    table = call_crunch(orchestrator, "predict", "-v")
    assert table.returncode == 0, table.stderr
    assert "INFO mrclient" in table.stderr  # -v after the subcommand
    assert "…" in table.stdout and "--json prints them whole" in table.stdout
    done = call_crunch(orchestrator, "predict", "--json", "-q")  # -q: not even where it connects
    assert done.returncode == 0 and done.stderr == "", done.stderr
    (line,) = done.stdout.splitlines()
    record = json.loads(line)
    assert record["result"] == LongResultTracker().predict()
    assert (record["model_id"], record["model_name"], record["status"], record["detail"]) == (model, "long", "SUCCESS", None)
    assert record["latency_ms"] > 0 and record["address"].startswith("127.0.0.1:")
