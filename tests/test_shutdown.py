"""close() from anywhere: another thread mid-round, a listener, a signal handler (SIGTERM).

The signal tests run a coordinator in a child process (tests/_signal_child.py)
against a crunch served here, so that a close() that waits forever shows as a
process that does not end, which is killed by PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from conftest import REPO_ROOT, TESTS, client_threads_since
from mrclient import Args, DynamicSubclassModelConcurrentRunner, ModelPredictResult, ModelRunner, MrclientError
from mrclient._support.shutdown import Shutdown, runs_library_code
from mrclient.runners.base import MODEL_LEFT
from mrclient.testing import LocalModelNode, LocalOrchestrator

FAILED = ModelPredictResult.Status.FAILED
WAIT = 10.0
CHILD_WAIT = 60.0  # bound of the child's start-up (imports, init); the bounds under test are far smaller
CRUNCH = "shutdown"


class ShutdownBase:
    """The base class of the models here."""


class Held(ShutdownBase):
    """``hold`` runs until the test releases it: a round that is still under way; so does a second ``predict``."""

    started = threading.Event()
    release = threading.Event()

    def __init__(self) -> None:
        self.predictions = 0

    def hold(self) -> str:
        Held.started.set()
        Held.release.wait(CHILD_WAIT)
        return "released"

    def predict(self) -> int:
        self.predictions += 1
        if self.predictions == 2:
            self.hold()
        return self.predictions


@pytest.fixture
def orchestrator(local_node: Callable[..., LocalModelNode]) -> Iterator[LocalOrchestrator]:
    """A crunch of one model that holds; released at teardown, before the node stops."""
    Held.started.clear()
    Held.release.clear()
    with LocalOrchestrator(crunch_id=CRUNCH) as orchestrator:
        orchestrator.add_model(port=local_node(classes=[ShutdownBase, Held]).port, name="held")
        yield orchestrator
        Held.release.set()


def runner_on(orchestrator: LocalOrchestrator) -> DynamicSubclassModelConcurrentRunner:
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=CHILD_WAIT, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port,
        base_classname="ShutdownBase", retry_backoff_factor=0.01,
    )
    runner.init(timeout=WAIT)
    return runner


def assert_nothing_left(before: set[threading.Thread]) -> None:
    leftovers = client_threads_since(before)
    for thread in leftovers:  # gRPC's connectivity pollers end shortly after their channel closes
        thread.join(WAIT)
    assert [t.name for t in leftovers if t.is_alive()] == []


# -- which frames hold mrclient's locks -------------------------------------------------------------


def test_library_frames_are_told_apart_from_the_coordinators_and_the_kits() -> None:
    def frame_in(module: str) -> FrameType:
        namespace: dict[str, Any] = {"__name__": module, "sys": sys}
        exec("def here(): return sys._getframe()", namespace)
        frame: FrameType = namespace["here"]()
        return frame

    for module in ("mrclient.concurrent.base", "mrclient.concurrent.rounds", "mrclient", "mrclient.runners.base"):
        assert runs_library_code(frame_in(module)), module
    for module in ("__main__", "mrclientish", "mrclient.cli", "mrclient.testing.node", "mrclient.__main__"):
        assert not runs_library_code(frame_in(module)), module
    assert not runs_library_code(sys._getframe()), "this test's own stack"
    assert not runs_library_code(None)


def test_a_shutdown_runs_once_on_its_own_thread_and_waits_only_outside_the_library() -> None:
    ran: list[str] = []
    proceed = threading.Event()

    def tear_down() -> None:
        ran.append(threading.current_thread().name)
        assert proceed.wait(WAIT)

    shutdown = Shutdown(tear_down, name="test-close")
    library_frame: dict[str, Any] = {"__name__": "mrclient.concurrent.base", "sys": sys}
    exec("def asked(s): s.request(sys._getframe())", library_frame)
    library_frame["asked"](shutdown)  # from library code: returns while the tear-down still runs
    assert shutdown.requested and not shutdown.done.is_set()
    waiter = threading.Thread(target=shutdown.request, args=(sys._getframe(),))
    waiter.start()  # from outside: waits for the tear-down
    waiter.join(0.2)
    assert waiter.is_alive()
    proceed.set()
    waiter.join(WAIT)
    assert not waiter.is_alive() and shutdown.done.is_set()
    shutdown.request(sys._getframe())
    assert ran == ["test-close"], "once, on its own thread"


# -- close() from another thread and from a listener ----------------------------------------------


def test_close_from_another_thread_ends_the_round_under_way_at_once(orchestrator: LocalOrchestrator) -> None:
    before = set(threading.enumerate())
    runner = runner_on(orchestrator)
    closer = threading.Thread(target=lambda: (Held.started.wait(WAIT), runner.close()))
    closer.start()
    began = time.monotonic()
    results = runner.call("hold")  # a 60 s deadline
    assert time.monotonic() - began < WAIT
    closer.join(WAIT)
    assert [(r.status, r.detail) for r in results.values()] == [(FAILED, MODEL_LEFT)]
    assert runner.closed
    with pytest.raises(MrclientError, match="closed"):
        runner.call("hold")
    runner.sync()  # returns: closed
    assert_nothing_left(before)


def test_close_from_a_listener_returns_and_the_runner_closes(
    orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode]
) -> None:
    second = local_node(classes=[ShutdownBase, Held])
    before = set(threading.enumerate())
    runner = runner_on(orchestrator)
    returned = threading.Event()

    @runner.on_model_joined
    def close_on_second_model(model: ModelRunner) -> None:
        if model.model_name == "second":
            runner.close()
            returned.set()

    orchestrator.add_model(port=second.port, name="second")
    assert returned.wait(WAIT), "close() from a listener returned"
    runner.close()  # waits for the work to end
    assert runner.closed and runner.models == []
    assert_nothing_left(before)


# -- close() from a signal handler, in a child process --------------------------------------------


class Child:
    """The child coordinator process; its JSON lines are read on a thread, so each wait is bounded."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.lines.append(json.loads(line))
                self._arrived.notify_all()

    def said(self, key: str, timeout: float = CHILD_WAIT) -> Any:
        with self._arrived:
            found = self._arrived.wait_for(lambda: any(key in line for line in self.lines), timeout)
            assert found, f"the child never said {key!r}; it said {self.lines}"
            return next(line[key] for line in self.lines if key in line)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the child did not end within {timeout}s; it said {self.lines}") from None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(WAIT)
        self._reader.join(WAIT)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()


@pytest.fixture
def child(orchestrator: LocalOrchestrator, tmp_path: Path) -> Iterator[Callable[[str], Child]]:
    started: list[Child] = []

    def start(mode: str) -> Child:
        if mode == "readme":
            script = tmp_path / "readme_shutdown.py"
            script.write_text(README_PRELUDE + readme_shutdown_snippet() + README_EPILOGUE)
            started.append(Child(str(script), str(orchestrator.port)))
        else:
            started.append(Child(str(TESTS / "_signal_child.py"), str(orchestrator.port), mode))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.mark.serial
@pytest.mark.subprocess
def test_sigterm_mid_round_ends_the_process_within_2s_with_no_thread_left(child: Callable[[str], Child]) -> None:
    coordinator = child("round")
    assert coordinator.said("ready") == 1
    assert Held.started.wait(CHILD_WAIT), "the round is under way"
    sent = time.monotonic()
    os.kill(coordinator.process.pid, signal.SIGTERM)
    code = coordinator.wait(CHILD_WAIT)
    ended_after = time.monotonic() - sent
    assert code == 0, coordinator.stderr()
    assert coordinator.said("results") == {"held": ["FAILED", MODEL_LEFT]}, "the round returned, at no cost"
    assert coordinator.said("closed") is True
    assert coordinator.said("threads") == []
    assert ended_after < 2.0


@pytest.mark.serial  # a signal, and a bound of 2 s that a busy worker could break
@pytest.mark.subprocess
def test_sigterm_mid_map_ends_the_input_under_way_then_the_map_with_no_thread_left(
    child: Callable[[str], Child],
) -> None:
    coordinator = child("map")
    assert coordinator.said("ready") == 1
    assert Held.started.wait(CHILD_WAIT), "the map's first input is under way"
    sent = time.monotonic()
    os.kill(coordinator.process.pid, signal.SIGTERM)
    code = coordinator.wait(CHILD_WAIT)
    ended_after = time.monotonic() - sent
    assert code == 0, coordinator.stderr()
    assert coordinator.said("results") == {"held": ["FAILED", MODEL_LEFT]}, "the input under way, at no cost"
    assert coordinator.said("raised") == "the runner was closed during the map"
    assert coordinator.said("threads") == []
    assert ended_after < 2.0


@pytest.mark.serial
@pytest.mark.subprocess
def test_sigterm_during_sync_ends_it(child: Callable[[str], Child]) -> None:
    coordinator = child("sync")
    assert coordinator.said("ready") == 1
    os.kill(coordinator.process.pid, signal.SIGTERM)
    assert coordinator.wait(CHILD_WAIT) == 0, coordinator.stderr()
    assert coordinator.said("threads") == []


@pytest.mark.serial
@pytest.mark.subprocess
def test_a_signal_while_the_round_holds_the_pool_lock_does_not_hang(child: Callable[[str], Child]) -> None:
    coordinator = child("pool-lock")
    assert coordinator.wait(CHILD_WAIT) == 0, coordinator.stderr()
    assert coordinator.said("results") == {"held": ["FAILED", MODEL_LEFT]}
    assert coordinator.said("threads") == []


# -- the README's snippet, as written -----------------------------------------------------------

README_PRELUDE = """\
import json, sys
from mrclient import DynamicSubclassModelConcurrentRunner

runner = DynamicSubclassModelConcurrentRunner(
    timeout=60, crunch_id="shutdown", host="127.0.0.1", port=int(sys.argv[1]), base_classname="ShutdownBase",
)
interval = 0.01

def score(results):
    print(json.dumps({"scored": [r.result for r in results.values()]}), flush=True)

"""
README_EPILOGUE = """
print(json.dumps({"closed": runner.closed}), flush=True)
"""


def readme_shutdown_snippet() -> str:
    """The code block (a fragment) of README.rst's "Shutting down on SIGTERM and Ctrl-C", dedented."""
    text = (REPO_ROOT / "README.rst").read_text()
    section = text[text.index("Shutting down on SIGTERM and Ctrl-C") :]
    block = re.search(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section, re.MULTILINE)
    assert block is not None
    return re.sub(r"^    ", "", block.group(1), flags=re.MULTILINE)


@pytest.mark.serial
@pytest.mark.subprocess
def test_the_readmes_sigterm_snippet_ends_a_round_under_way_and_the_loop(child: Callable[[str], Child]) -> None:
    coordinator = child("readme")
    assert coordinator.said("scored") == [1], "a first round"
    assert Held.started.wait(CHILD_WAIT), "the second round is under way"
    sent = time.monotonic()
    os.kill(coordinator.process.pid, signal.SIGTERM)
    assert coordinator.wait(CHILD_WAIT) == 0, coordinator.stderr()
    assert time.monotonic() - sent < 2.0
    assert coordinator.said("closed") is True
    assert [line for line in coordinator.lines if "scored" in line] == [{"scored": [1]}], "the cut round is not scored"


@pytest.mark.serial
@pytest.mark.parametrize("kind", ["call", "map"])
def test_a_signal_that_lands_on_another_thread_is_heard_mid_round(orchestrator: LocalOrchestrator, kind: str) -> None:
    """The kernel hands a process's signal to any of its threads; the handler still runs, on the main one, at once.

    A wait that never wakes the main thread would run the handler (here the
    README's: close()) only once the round's 60 s deadline had passed.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("a signal's handler runs on the main thread only")
    runner = runner_on(orchestrator)
    heard = threading.Event()

    def close_on_signal(signum: int, frame: FrameType | None) -> None:
        heard.set()
        runner.close()

    def land_elsewhere() -> None:
        if Held.started.wait(WAIT):
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # on this thread, not on the main one

    previous = signal.signal(signal.SIGUSR1, close_on_signal)
    sender = threading.Thread(target=land_elsewhere, name="test-signal-sender")
    try:
        sender.start()
        started = time.monotonic()
        if kind == "call":
            [result] = runner.call("hold").values()
        else:
            result = next(iter(runner.map("hold", [Args()]).__next__().values()))
        assert time.monotonic() - started < WAIT, "heard within a slice, not at the deadline"
        assert heard.is_set() and runner.closed
        assert result.status is FAILED and (result.detail or "").startswith(MODEL_LEFT), result
    finally:
        sender.join(WAIT)
        signal.signal(signal.SIGUSR1, previous)
        runner.close()


def test_close_while_init_waits_for_the_orchestrator_makes_init_return() -> None:
    from conftest import free_port

    runner = DynamicSubclassModelConcurrentRunner(
        timeout=5, crunch_id=CRUNCH, host="127.0.0.1", port=free_port(), base_classname="a.B"  # nobody listens
    )
    outcome: list[BaseException | None] = []
    waiting = threading.Thread(target=lambda: outcome.append(_run(lambda: runner.init(timeout=60))))
    waiting.start()
    deadline = time.monotonic() + WAIT

    def connecting() -> bool:  # init() is under way: its orchestrator thread is trying to connect
        return any(thread.name == f"mrclient-orchestrator-{CRUNCH}" for thread in threading.enumerate())

    while not connecting() and time.monotonic() < deadline:  # a bounded wait on a condition
        threading.Event().wait(0.01)
    assert connecting() and not runner.model_cluster.connected
    runner.close()  # a SIGTERM handler during start-up
    waiting.join(WAIT)
    assert not waiting.is_alive() and outcome == [None]
    with pytest.raises(MrclientError, match="the runner is closed"):
        runner.call("predict")


def _run(action: Callable[[], object]) -> BaseException | None:
    try:
        action()
    except BaseException as error:  # the test looks at what init() raised, if anything
        return error
    return None


def test_on_closed_listeners_hear_once_that_close_has_finished() -> None:
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=1, crunch_id="c", host="127.0.0.1", port=1, base_classname="a.B"
    )
    heard: list[tuple[str, bool]] = []
    assert runner.on_closed(lambda: heard.append(("before", runner._shutdown.done.is_set()))) is not None
    assert heard == [] and not runner.initialized and runner.rounds_run == 0
    runner.close()
    runner.close()
    runner.on_closed(lambda: heard.append(("after", runner._shutdown.done.is_set())))
    assert heard == [("before", True), ("after", True)], "once each, and only when close() had finished"
