"""``mrclient watch``: the announcement rules and the table's layout with plain data, then the command itself.

The command runs in a pseudo-terminal (the rich and plain-text tables, at 80
columns too) and through a pipe (lines). What a default watch must never do
is touch a model node: nodes behind a recording proxy (``_rpc_recorder``)
show every RPC they received while a coordinator runs rounds on the same
crunch (against the reference node from PyPI too: tests/test_watch_real_node.py,
out of the pin runs of ``make test`` as every test of that node).
"""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from _rpc_recorder import RecordingProxy, recording_proxy_fixture  # noqa: F401 (the recording_proxy fixture)
from _terminal import WAIT, Terminal
from mrclient import ConnectionState, DynamicSubclassModelConcurrentRunner, ModelPredictResult, RoundSummary
from mrclient.cluster.plan import plan_event
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, BrokenTracker, EwmaTracker, TrackerBase
from mrclient.watch.announcements import GONE, Announcement, apply_frame, prune_left
from mrclient.watch.display import ANNOUNCED_COLUMNS, Lines, ModelCalls, fit_columns, model_rows, summary_parts, text_table, wrap_parts
from mrclient.watch.watcher import pick_output

# -- the announcement rules, with plain data -----------------------------------------------------


def entry(model_id: str, state: str = "RUNNING", deployment: str = "d1", port: Any = 5000, ip: Any = "10.0.0.1",
          **infos: Any) -> dict[str, Any]:
    return {"model_id": model_id, "deployment_id": deployment, "state": state, "ip": ip, "port": port,
            "infos": {"model_name": f"name-{model_id}", "cruncher_name": "alice", **infos}}


def test_a_model_runs_stops_twice_and_its_address_and_time_are_kept() -> None:
    table = apply_frame({}, "init", [entry("m1")], now=100.0)
    (shown,) = table.changed
    assert (shown.state, shown.since, shown.address, shown.cruncher, shown.model_name) == (
        "RUNNING", 100.0, "10.0.0.1:5000", "alice", "name-m1")
    infos = apply_frame(table.table, "update", [entry("m1", cruncher_name="bob")], now=110.0)
    assert infos.changed == () and infos.table["m1"].since == 100.0 and infos.table["m1"].cruncher == "bob"
    first = apply_frame(infos.table, "update", [entry("m1", "STOPPED")], now=120.0)
    second = apply_frame(first.table, "update", [entry("m1", "STOPPED", port=0, ip=None)], now=121.0)
    assert [s.state for s in first.changed] == ["STOPPED"] and second.changed == ()
    assert second.table["m1"].since == 120.0 and second.table["m1"].address == "10.0.0.1:5000"


def test_the_old_deployment_torn_down_after_a_redeploy_does_not_stop_the_model() -> None:
    table = apply_frame({}, "init", [entry("m1")], now=1.0).table
    redeploy = apply_frame(table, "update", [entry("m1", deployment="d2", port=6000), entry("m1", "STOPPED")], now=2.0)
    assert [(s.state, s.deployment_id, s.port) for s in redeploy.changed] == [("RUNNING", "d2", 6000)]
    assert redeploy.table["m1"].running


def test_recovering_then_running_and_a_model_absent_from_a_later_init_is_gone() -> None:
    table = apply_frame({}, "init", [entry("m1"), entry("m2")], now=1.0).table
    recovering = apply_frame(table, "update", [entry("m1", "RECOVERING", ip=None, port=None)], now=2.0)
    assert recovering.table["m1"].state == "RECOVERING" and recovering.table["m1"].address == "10.0.0.1:5000"
    back = apply_frame(recovering.table, "update", [entry("m1", port=5001)], now=3.0)
    assert (back.table["m1"].state, back.table["m1"].port, back.table["m1"].since) == ("RUNNING", 5001, 3.0)
    stopped = apply_frame(back.table, "update", [entry("m2", "STOPPED")], now=4.0).table
    again = apply_frame(stopped, "init", [], now=5.0)
    assert [(s.model_id, s.state, s.since) for s in again.changed] == [("m1", GONE, 5.0)]  # m2 had already left
    assert again.table["m2"].since == 4.0
    assert set(prune_left(again.table, now=5.0 + 300.5, keep_s=300.0)) == set()
    assert set(prune_left(again.table, now=304.5, keep_s=300.0)) == {"m1"}


def test_a_bad_entry_is_named_and_skipped_and_a_stop_of_an_unknown_model_is_shown() -> None:
    change = apply_frame({}, "update", [{"model_id": "m9"}, entry("m3", "STOPPED")], now=1.0)
    assert len(change.problems) == 1 and "'m9'" in change.problems[0]
    assert list(change.table) == ["m3"] and change.table["m3"].left


def test_the_watch_reads_a_frame_as_the_cluster_does() -> None:
    """One reading of a frame's entries: the same ones skipped, in the same words, the same models kept."""
    frame = [{"model_id": "m9"}, entry("m1", port="x"), 7, entry("m3", "STOPPED"), entry("m2", ip="::1")]
    known = {"m1": SimpleNamespace(deployment_id="d1", ip="10.0.0.1", port=5000),
             "m4": SimpleNamespace(deployment_id="d1", ip="10.0.0.1", port=5001)}
    watched = apply_frame(apply_frame({}, "init", [entry("m1"), entry("m4")], now=1.0).table, "init", frame, now=2.0)
    planned = plan_event(known, frame, snapshot=True)
    assert watched.problems == planned.problems and len(planned.problems) == 3
    assert planned.close == ("m4",) and [s.model_id for s in watched.changed if s.state == GONE] == ["m4"]
    assert watched.table["m1"].running and watched.table["m2"].address == "[::1]:5000"


# -- the table's layout, with plain data ---------------------------------------------------------


def stats(status: str, error: str | None = None) -> Any:
    """What the table reads of a ``ModelStats`` (plain data: the table needs nothing else)."""
    return SimpleNamespace(calls=4, successes=3, latency_p90_ms=2.0, last_status=status, last_latency_ms=1.5,
                           last_error=error)


def crowded_rows() -> tuple[Any, list[tuple[str, ...]]]:
    """Every column at once, with long ids and names, as a busy crunch shows them."""
    announced = [
        Announcement(f"model-{n:04d}-{'x' * 20}", f"deployment-{n}-{'y' * 30}", state, "10.0.0.123", 40000 + n,
                     {"model_name": f"a-rather-long-model-name-{n}", "cruncher_name": "cruncher with a long name"}, since=0.0)
        for n, state in enumerate(["RUNNING", "RUNNING", "RUNNING", "RUNNING", "RECOVERING", "STOPPED"])
    ]
    health = {announced[0].model_id: "SERVING", announced[1].model_id: "NOT_SERVING", announced[2].model_id: "NO_ANSWER"}
    calls = {
        announced[0].model_id: ModelCalls(stats=stats("SUCCESS")),
        announced[1].model_id: ModelCalls(stats=stats("FAILED", "MODEL_FAILED: " + "z" * 80)),
        announced[2].model_id: ModelCalls(stats=stats("TIMEOUT", "DEADLINE_EXCEEDED")),
        announced[3].model_id: ModelCalls(setup="SETTING_UP"),
    }
    return model_rows(announced, health, calls)


@pytest.mark.parametrize("gap", [2, 3], ids=["plain", "rich"])
def test_in_80_columns_statuses_are_whole_and_the_least_useful_columns_go_first(gap: int) -> None:
    columns, rows = crowded_rows()
    widths = fit_columns(columns, rows, 80, gap)
    shown = [c.name for c, w in zip(columns, widths, strict=True) if w is not None]
    assert {"MODEL", "STATE", "HEALTH", "LAST", "ERROR"} <= set(shown)
    assert "DEPLOYMENT" not in shown and "CRUNCHER" not in shown  # dropped first
    assert sum(w for w in widths if w is not None) + gap * (len(shown) - 1) <= 80
    for name in ("STATE", "HEALTH", "LAST"):
        index = [c.name for c in columns].index(name)
        assert widths[index] == max(len(row[index]) for row in rows), name  # never cut
    lines = text_table(columns, rows, width=80, height=20)
    assert all(len(line) <= 80 for line in lines)
    for word in ("RECOVERING", "NOT_SERVING", "NO_ANSWER", "SETTING_UP", "FAILED", "TIMEOUT"):
        assert any(re.search(rf"(?<!\w){word}(?!\w)", line) for line in lines), (word, lines)


def test_a_wide_terminal_shows_every_column_and_a_narrow_one_crops_rows() -> None:
    columns, rows = crowded_rows()
    assert None not in fit_columns(columns, rows, 250, 3)
    announced_only = model_rows([Announcement("m-1", "d-1", "RUNNING", "h", 1, {}, since=0.0)])
    assert announced_only[0] == ANNOUNCED_COLUMNS  # no health, no call columns unless asked
    many_columns, many = model_rows([Announcement(f"m-{i}", "d", "RUNNING", "h", 1, {}, since=0.0) for i in range(50)])
    cropped = text_table(many_columns, many, width=80, height=10)
    assert len(cropped) == 10 and cropped[-1] == "... and 42 more"


def test_the_summary_says_how_the_connection_the_models_and_the_last_round_are() -> None:
    state = ConnectionState(connected=False, since=0.0, reconnects=2, reports_pending=1, reports_unconfirmed=3)
    summary = RoundSummary("predict", 0.0, 0.0125, 4, 2, 1, 1, 1, 0, (("m", 12.5),))
    announced = [Announcement("a", "d", "RUNNING", since=0.0), Announcement("b", "d", "RUNNING", since=0.0),
                 Announcement("c", "d", "STOPPED", since=0.0)]
    parts = summary_parts("bird", state, announced, True, summary, "every model refused")
    line = " · ".join(parts)
    for part in ("bird: DISCONNECTED since", "2 reconnects", "2 running, 1 stopped", "reports 1 unsent, 3 unconfirmed",
                 "2 ok, 1 failed, 1 timeout, 12 ms", "call error: every model refused"):
        assert part in line, (part, line)
    assert "reports" not in " ".join(summary_parts("bird", state, announced))  # a plain watch sends no report
    wrapped = wrap_parts(parts, 40)
    assert len(wrapped) > 1 and all(len(text) <= 40 for text in wrapped)


def test_one_reconnect_and_a_round_of_one_model_are_said_in_the_singular() -> None:
    state = ConnectionState(connected=True, since=0.0, reconnects=1, reports_pending=0, reports_unconfirmed=0)
    line = " · ".join(summary_parts("bird", state, [Announcement("a", "d", "RUNNING", since=0.0)]))
    assert "· 1 reconnect ·" in line and "reconnects" not in line, line
    model = type("Runner", (), {"model_id": "model-1", "model_name": "ewma"})()  # what the line reads of a runner
    out = io.StringIO()
    Lines(out).round("predict", {model: ModelPredictResult.of_success(model, 1.0, 2000)}, 0.004)  # type: ignore[dict-item, arg-type]
    assert "predict: 1 model, 1 SUCCESS, 0 FAILED, 0 TIMEOUT in 4 ms" in out.getvalue(), out.getvalue()


def test_auto_output_is_rich_on_a_terminal_and_lines_elsewhere() -> None:
    assert pick_output("auto", tty=True) == "rich"  # rich is in the dev extra
    assert pick_output("auto", tty=False) == "lines"
    assert pick_output("table", tty=False) == "table"


# -- the command in a pseudo-terminal ----------------------------------------------------------

def a_line_with(*words: str) -> Callable[[list[str]], bool]:
    """Whether a line holds every word (a model id matches whole, so model-1 is not model-10)."""
    patterns = [re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])") for word in words]
    return lambda lines: any(all(p.search(line) for p in patterns) for line in lines)


def redraws(count: int) -> Callable[[list[str]], bool]:
    """Whether the summary line was drawn at least ``count`` times."""
    return lambda lines: sum("watched: connected since" in line for line in lines) >= count


class SlowTracker(EwmaTracker):
    """Answers after the watch's --timeout of 0.5 s."""

    def predict(self) -> Any:
        time.sleep(2.0)
        return super().predict()


class BusyTracker(EwmaTracker):
    """Takes a little while to answer, so a call from anyone else would find the node busy."""

    def predict(self) -> Any:
        time.sleep(0.02)
        return super().predict()


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[tuple[LocalOrchestrator, Callable[[type], str]]]:
    with LocalOrchestrator(crunch_id="watched") as orchestrator:

        def add(tracker: type) -> str:
            node = local_node(classes=[TrackerBase, tracker])
            return orchestrator.add_model(host="127.0.0.1", port=node.port, name=tracker.__name__)

        yield orchestrator, add


def watch_command(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "mrclient.cli", "watch", "--host", "127.0.0.1", "--port", str(port),
            "--crunch-id", "watched", "--refresh", "0.1", *options]


@pytest.mark.parametrize("output", ["auto", "table"], ids=["rich", "plain-text"])
@pytest.mark.subprocess
def test_watch_in_a_terminal_shows_models_run_answer_and_stop(crunch: Any, output: str) -> None:
    orchestrator, add = crunch
    first = add(EwmaTracker)
    terminal = Terminal(watch_command(orchestrator.port, "--output", output, "--call", "predict", "--every", "0.2",
                                      "--base-classname", BASE_CLASSNAME))
    try:
        assert terminal.wait_for(a_line_with(first, "RUNNING", "SUCCESS")), terminal.lines()[-20:]
        assert terminal.wait_for(a_line_with("connected since", "1 running")), terminal.lines()[-20:]
        assert any("--call sets every model up" in line for line in terminal.lines()), "it says it touches the nodes"
        if output == "auto":
            assert any(line.strip() and set(line.strip()) == {"─"} for line in terminal.lines()), "rich rules the header"

        second = add(BrokenTracker)
        assert terminal.wait_for(a_line_with(second, "BrokenTracker", "RUNNING", "FAILED")), terminal.lines()[-20:]
        orchestrator.stop_model(first)
        assert terminal.wait_for(a_line_with(first, "STOPPED")), terminal.lines()[-20:]
        assert terminal.wait_for(a_line_with("1 running, 1 stopped")), terminal.lines()[-20:]

        assert terminal.interrupt() == 130
        assert not any("Traceback" in line for line in terminal.lines()), terminal.lines()
    finally:
        terminal.close()


@pytest.mark.parametrize("output", ["auto", "table"], ids=["rich", "plain-text"])
@pytest.mark.subprocess
def test_in_an_80_column_terminal_every_status_is_whole(crunch: Any, output: str) -> None:
    orchestrator, add = crunch
    working, broken, slow = add(EwmaTracker), add(BrokenTracker), add(SlowTracker)
    terminal = Terminal(watch_command(orchestrator.port, "--output", output, "--health", "--call", "predict",
                                      "--every", "0.2", "--timeout", "0.5", "--base-classname", BASE_CLASSNAME),
                        columns=80)
    try:
        for model, status in ((working, "SUCCESS"), (broken, "FAILED"), (slow, "TIMEOUT")):
            assert terminal.wait_for(a_line_with(model, "RUNNING", "SERVING", status)), terminal.lines()[-20:]
        assert terminal.interrupt() == 130
        drawn = [line for line in terminal.lines() if "model-" in line]
        # A status is a word of its own; the detail column (MODEL_FAILED: ...) is free text and may be cut.
        assert drawn and all(len(line) <= 80 for line in drawn), [line for line in drawn if len(line) > 80]
        assert not [line for line in drawn if re.search(r"(?<!\w)(FAILE|TIMEO|SUCCES|SERVIN|RUNNIN)(…|\.\.\.)", line)], drawn
    finally:
        terminal.close()


@pytest.mark.subprocess
def test_watch_through_a_pipe_prints_a_line_per_round_and_per_failure(crunch: Any) -> None:
    orchestrator, add = crunch
    working, broken = add(EwmaTracker), add(BrokenTracker)
    process = subprocess.Popen(watch_command(orchestrator.port, "--call", "predict", "--every", "0.2",
                                             "--base-classname", BASE_CLASSNAME),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # bounded: the process is killed below if it stalls
            lines.append(line)
            if "round" in line and sum("round" in seen for seen in lines) >= 2:
                break
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=WAIT)
        assert process.returncode == 130  # Ctrl-C, as shells say it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
    text = "".join(lines)
    assert a_line_with("running", working)(lines) and a_line_with("running", broken)(lines)
    assert "round      predict: 2 models, 1 SUCCESS, 1 FAILED, 0 TIMEOUT" in text, text
    assert a_line_with("FAILED", broken, "diverged")(lines), text
    assert "stopped" not in rest  # stopping is not every model leaving
    assert "compete with the coordinator's" in " ".join(errors.split())  # the warning of --call, wrapped at 80


@pytest.mark.subprocess
def test_watch_needs_the_base_class_only_with_call(crunch: Any) -> None:
    orchestrator, _ = crunch
    done = subprocess.run(watch_command(orchestrator.port, "--call", "predict"), capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 2 and "--call needs --base-classname" in done.stderr, done.stderr


@pytest.mark.subprocess
def test_watch_of_an_empty_crunch_says_so(crunch: Any) -> None:
    orchestrator, _ = crunch
    process = subprocess.Popen(watch_command(orchestrator.port, "--crunch-id", "wacthed"), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded: the orchestrator answers at once
        assert "crunch 'wacthed' has no models" in line and "Is the crunch id right?" in line, line
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(WAIT)


@pytest.mark.serial
@pytest.mark.subprocess
def test_ctrl_c_while_connecting_ends_the_watch_at_once() -> None:
    from conftest import free_port

    process = subprocess.Popen(watch_command(free_port(), "-v"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # bounded: the first refused attempt is logged at once
            if "reconnecting in" in line:
                break
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT) == 130
        assert time.monotonic() - started < 10.0, "not the 60 s of --init-timeout"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)


# -- a default watch touches no node -------------------------------------------------------------


class Coordinator:
    """The crunch's own coordinator: rounds of ``predict`` back to back on a thread, until stopped."""

    def __init__(self, port: int, base_classname: str, models: int) -> None:
        self.runner = DynamicSubclassModelConcurrentRunner(
            timeout=WAIT, crunch_id="watched", host="127.0.0.1", port=port, base_classname=base_classname,
            report_failure=False, retry_backoff_factor=0.1,
        )
        self.runner.init()
        assert self.runner.wait_for_models(models, WAIT)
        self.rounds: list[dict[Any, ModelPredictResult]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-coordinator")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rounds.append(self.runner.call("predict"))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.runner.close()

    def calls(self) -> int:
        return sum(len(results) for results in self.rounds)

    def statuses(self) -> set[tuple[str, str | None]]:
        return {(result.status.value, result.detail) for results in self.rounds for result in results.values()}


def watch_during_rounds(orchestrator: LocalOrchestrator, proxies: Sequence[RecordingProxy], base_classname: str,
                        *options: str) -> tuple[Coordinator, Terminal]:
    """A coordinator's rounds, and a watch beside them for 20 redraws; both stopped."""
    for proxy in proxies:
        orchestrator.add_model(host="127.0.0.1", port=proxy.port)
    coordinator = Coordinator(orchestrator.port, base_classname, len(proxies))
    terminal = Terminal(watch_command(orchestrator.port, "--output", "table", "--refresh", "0.05", *options))
    try:
        assert terminal.wait_for(redraws(20)), terminal.lines()[-20:]
        assert terminal.wait_for(a_line_with("model-1", "RUNNING")), terminal.lines()[-20:]
        assert terminal.interrupt() == 130
    finally:
        terminal.close()
        coordinator.stop()
    return coordinator, terminal


def assert_only_the_coordinator_called(coordinator: Coordinator, proxies: Sequence[RecordingProxy], also: str = "") -> None:
    """Each node got one Setup and exactly the coordinator's calls, all answered; nothing else but ``also``."""
    assert coordinator.calls() >= 2 * len(proxies), "the coordinator ran rounds meanwhile"
    assert coordinator.statuses() == {("SUCCESS", None)}, coordinator.statuses()  # no RESOURCE_EXHAUSTED
    calls = 0
    for proxy in proxies:
        methods = [method for method in proxy.methods() if method != also]
        assert methods.count("Setup") == 1 and "Rest" not in methods, methods  # the coordinator's Setup only
        assert set(methods) <= {"Setup", "Call"}, methods
        assert all(rpc.code == "OK" for rpc in proxy.recorded), proxy.recorded
        calls += methods.count("Call")
    assert calls == coordinator.calls()  # every Call a node got was the coordinator's


@pytest.mark.subprocess
def test_a_default_watch_sends_no_rpc_to_any_node_while_a_coordinator_runs_rounds(
    local_node: Callable[..., LocalModelNode], recording_proxy: Callable[[str], RecordingProxy]
) -> None:
    with LocalOrchestrator(crunch_id="watched") as orchestrator:
        proxies = [recording_proxy(local_node(classes=[TrackerBase, BusyTracker]).address) for _ in range(3)]
        coordinator, _ = watch_during_rounds(orchestrator, proxies, BASE_CLASSNAME)
    assert_only_the_coordinator_called(coordinator, proxies)


@pytest.mark.subprocess
def test_watch_health_sends_health_checks_and_nothing_else(
    local_node: Callable[..., LocalModelNode], recording_proxy: Callable[[str], RecordingProxy]
) -> None:
    with LocalOrchestrator(crunch_id="watched") as orchestrator:
        proxies = [recording_proxy(local_node(classes=[TrackerBase, BusyTracker]).address) for _ in range(2)]
        coordinator, terminal = watch_during_rounds(orchestrator, proxies, BASE_CLASSNAME, "--health", "--every", "0.2")
    assert_only_the_coordinator_called(coordinator, proxies, also="Check")
    assert all("Check" in proxy.methods() for proxy in proxies)
    assert a_line_with("model-1", "RUNNING", "SERVING")(terminal.lines()), terminal.lines()[-10:]
