"""A coordinator that never closes its runner: the process still ends promptly, and a dropped runner closes.

The interpreter's exit joins the call pool's threads; one blocked in a gRPC
call kept the process alive until the round's deadline (a Ctrl-C in a plain
script with ``timeout=15`` took 15 s to end it). The runners still open at
exit are now closed first, which cancels the calls in flight. Each script here
runs in a child process with a local crunch of its own: a model that sleeps
30 s in ``predict`` and one that answers at once; the round's deadline is 15 s,
and the process must end within a few seconds of the signal or of its last
line, with nothing on stderr but what the script itself caused.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase
from test_shutdown import Child

DEADLINE = 15.0  # the round's deadline in every script
EXIT_BOUND = 5.0  # from the signal (or the script's last line) to the end of the process: far below DEADLINE
START_WAIT = 60.0  # the child's start-up: imports, two nodes, the orchestrator, init()
WAIT = 10.0

PRELUDE = """\
import asyncio, json, sys, threading, time
from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator

class Base:
    def predict(self): ...

sleeping = threading.Event()  # the node runs in this process: set once a round is surely under way

class Sleepy(Base):
    def predict(self):
        print(json.dumps({"sleeping": True}), flush=True)
        sleeping.set()
        time.sleep(30)

class Quick(Base):
    def predict(self):
        return 1

sleepy, quick = LocalModelNode(classes=[Base, Sleepy]).start(), LocalModelNode(classes=[Base, Quick]).start()
orchestrator = LocalOrchestrator(crunch_id="exit").start()
orchestrator.add_model(port=sleepy.port, name="sleepy")
orchestrator.add_model(port=quick.port, name="quick")
runner = DynamicSubclassModelConcurrentRunner(
    timeout=DEADLINE, crunch_id="exit", host="127.0.0.1", port=orchestrator.port, base_classname="Base",
)
""".replace("DEADLINE", repr(DEADLINE))

SCRIPTS = {
    # The plain blocking script of the issue: no close(), no with; Ctrl-C lands mid-round.
    "ctrl-c": PRELUDE + """
runner.init()
runner.call("predict")
print(json.dumps({"returned": True}), flush=True)
""",
    # It ends while a round is under way on another thread (say a daemon thread of the coordinator's).
    "ends-mid-round": PRELUDE + """
runner.init()
threading.Thread(target=runner.call, args=("predict",), daemon=True).start()
assert sleeping.wait(30)
print(json.dumps({"ending": True}), flush=True)
""",
    # It ends after its rounds, never closing, a live view still drawing: nothing to wait for, nothing on stderr.
    "ends-after-rounds": PRELUDE + """
from mrclient.notebook import LiveView

runner.init()
LiveView(runner, lambda bundle: None, every=0.05).start()
quick_only = [model for model in runner.models if model.model_name == "quick"]
print(json.dumps({"called": runner.call("predict", model_runs=quick_only).summary.called}), flush=True)
print(json.dumps({"ending": True}), flush=True)
""",
    # The same script looping over a map: Ctrl-C lands while input 0 waits for the sleepy model.
    "ctrl-c-mid-map": PRELUDE + """
from mrclient import Args

runner.init()
for results in runner.map("predict", [Args() for _ in range(3)]):
    print(json.dumps({"input": True}), flush=True)
print(json.dumps({"returned": True}), flush=True)
""",
    # An asyncio coordinator without aclose(): Ctrl-C cancels asyncio.run()'s task mid-round.
    "asyncio-ctrl-c": PRELUDE + """
from mrclient.aio import AsyncRunner

async def main():
    facade = AsyncRunner(runner)
    await facade.init()
    await facade.call("predict")

asyncio.run(main())
""",
}


@pytest.fixture
def script(tmp_path: Path) -> Iterator[Callable[[str], Child]]:
    """Start one of SCRIPTS in a child process (its JSON lines read on a thread); killed at the end."""
    started: list[Child] = []

    def start(name: str) -> Child:
        path = tmp_path / f"{name}.py"
        path.write_text(SCRIPTS[name])
        started.append(Child(str(path)))
        return started[-1]

    yield start
    for child in started:
        child.kill()


def ended_after(child: Child, since: float) -> float:
    """Seconds from ``since`` to the end of the child (killed, and the test fails, after twice the deadline)."""
    child.wait(DEADLINE * 2)
    return time.monotonic() - since


Figures = Callable[[str, object], None]


def interrupted(child: Child, record_property: Figures, what: str) -> tuple[float, str]:
    """SIGINT to ``child`` mid-round (its sleepy model called): seconds to its end, against the deadline; its stderr."""
    assert child.said("sleeping", START_WAIT)  # the round is under way: the model sleeps 30 s, the round waits 15
    sent = time.monotonic()
    child.process.send_signal(signal.SIGINT)
    took = ended_after(child, sent)
    record_property("figures", f"[exit] {what}: ended {took:.2f}s after SIGINT, round deadline {DEADLINE:g}s")
    stderr = child.stderr()
    assert took < EXIT_BOUND, f"{took:.1f}s after Ctrl-C, with a {DEADLINE}s round"
    return took, stderr


@pytest.mark.serial  # a signal, and a bound on the wall clock
@pytest.mark.subprocess
def test_ctrl_c_mid_round_in_a_plain_script_ends_the_process_at_once(
    script: Callable[[str], Child], record_property: Figures
) -> None:
    child = script("ctrl-c")
    _, stderr = interrupted(child, record_property, "plain script, Ctrl-C mid-round")
    assert child.process.returncode in (-signal.SIGINT, 130, 1), stderr
    assert "KeyboardInterrupt" in stderr
    assert "Exception ignored" not in stderr and not any("returned" in line for line in child.lines)


@pytest.mark.serial  # a signal, and a bound on the wall clock
@pytest.mark.subprocess
def test_ctrl_c_mid_map_in_a_plain_script_ends_the_process_at_once(
    script: Callable[[str], Child], record_property: Figures
) -> None:
    """A map in progress runs on the call pool too: the close at exit ends it, as it ends a round."""
    child = script("ctrl-c-mid-map")
    _, stderr = interrupted(child, record_property, "plain script, Ctrl-C mid-map")
    assert child.process.returncode in (-signal.SIGINT, 130, 1), stderr
    assert "KeyboardInterrupt" in stderr
    assert "Exception ignored" not in stderr
    assert not any("input" in line or "returned" in line for line in child.lines)  # input 0 never came back


@pytest.mark.serial  # a signal, and a bound on the wall clock
@pytest.mark.subprocess
def test_asyncio_ctrl_c_mid_round_without_aclose_ends_the_process_at_once(
    script: Callable[[str], Child], record_property: Figures
) -> None:
    child = script("asyncio-ctrl-c")
    _, stderr = interrupted(child, record_property, "asyncio, Ctrl-C mid-round, no aclose()")
    assert "KeyboardInterrupt" in stderr and "Exception ignored" not in stderr, stderr


@pytest.mark.serial  # a bound on the wall clock
@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["ends-mid-round", "ends-after-rounds"])
def test_a_script_that_never_closes_ends_at_once_and_quietly(
    script: Callable[[str], Child], record_property: Figures, name: str
) -> None:
    child = script(name)
    assert child.said("ending", START_WAIT)
    took = ended_after(child, time.monotonic())
    record_property("figures", f"[exit] {name}: ended {took:.2f}s after its last line, round deadline {DEADLINE:g}s")
    stderr = child.stderr()
    assert took < EXIT_BOUND, f"{took:.1f}s after its last line, with a {DEADLINE}s round"
    assert child.process.returncode == 0, stderr
    assert stderr == ""


# -- a runner dropped without close() -------------------------------------------------------------


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[LocalOrchestrator]:
    with LocalOrchestrator(crunch_id="dropped") as orchestrator:
        orchestrator.add_model(port=local_node(classes=[TrackerBase, EwmaTracker]).port)
        yield orchestrator


def test_a_runner_dropped_without_close_is_collected_and_closed(crunch: LocalOrchestrator) -> None:
    left: list[str] = []

    def a_job_that_forgets_to_close() -> weakref.ref[DynamicSubclassModelConcurrentRunner]:
        runner = DynamicSubclassModelConcurrentRunner(
            timeout=5, crunch_id="dropped", host="127.0.0.1", port=crunch.port, base_classname=BASE_CLASSNAME,
        )
        runner.on_model_left(lambda model: left.append(model.model_id))  # a listener that does not hold the runner
        runner.init()
        assert [r.status.name for r in runner.call("predict").values()] == ["SUCCESS"]
        return weakref.ref(runner)

    dropped = a_job_that_forgets_to_close()
    gc.collect()
    assert dropped() is None, "nothing of mrclient's keeps a runner alive: its orchestrator thread held it"
    assert crunch.wait_for_clients(0, WAIT), "its orchestrator connection was closed"
    deadline = time.monotonic() + WAIT
    while left == [] and time.monotonic() < deadline:  # the left event is delivered on the listener thread
        threading.Event().wait(0.01)
    assert len(left) == 1, "its model left, as at close()"
    names = ("mrclient-orchestrator-dropped", "mrclient-close")
    for thread in [t for t in threading.enumerate() if t.name.startswith(names)]:
        thread.join(WAIT)
    assert [t.name for t in threading.enumerate() if t.name.startswith(names)] == []


def test_closing_wakes_a_round_whose_calls_were_still_queued() -> None:
    """The calls a round queued on the pool, not yet started when close() shuts it, end the round's wait at once.

    ``shutdown(cancel_futures=True)`` cancelled them without waking
    ``concurrent.futures.wait()``: under load, an AsyncRunner closed just after
    its round began waited out the round's 30 s deadline.
    """
    from concurrent.futures import ThreadPoolExecutor, wait

    from mrclient.concurrent.base import _CallPools

    shut = threading.Event()

    class Observed(ThreadPoolExecutor):
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            super().shutdown(wait=False, cancel_futures=cancel_futures)
            shut.set()  # what close() does to the queue is done: the running call may end now
            if wait:
                super().shutdown(wait=True)

    release = threading.Event()
    calls = _CallPools()
    calls.pool = pool = Observed(1, thread_name_prefix="test-call")
    pool.submit(release.wait, WAIT)  # a call under way (its runner closed, it would end at once)
    queued = pool.submit(lambda: "MODEL_LEFT")  # the round's next call, not started: one worker only
    closer = threading.Thread(target=calls.close, name="test-closer")
    closer.start()
    try:
        assert shut.wait(WAIT)
        release.set()
        began = time.monotonic()
        done, _ = wait([queued], timeout=WAIT)
        assert queued in done and time.monotonic() - began < WAIT / 2, "the round waited out its deadline"
    finally:
        release.set()
        closer.join(WAIT)
    assert not closer.is_alive()


@pytest.mark.subprocess
def test_the_exit_hook_runs_before_concurrent_futures_joins_its_workers(tmp_path: Path) -> None:
    """The order the design rests on, on this Python: threading's exit hooks run in reverse registration order."""
    source = """\
import threading, time
from concurrent.futures import ThreadPoolExecutor
import mrclient._support.lifetime as lifetime
from mrclient._support.shutdown import Shutdown

released = threading.Event()
pool = ThreadPoolExecutor(1)
pool.submit(released.wait, 30)  # a worker the interpreter's exit joins
owner = type("Owner", (), {})()
lifetime.close_when_abandoned(owner, Shutdown(released.set, name="test-close"))
"""
    (tmp_path / "order.py").write_text(source)
    began = time.monotonic()
    done = subprocess.run([sys.executable, "order.py"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert time.monotonic() - began < EXIT_BOUND + 5, "the worker was released by our hook, not after 30 s"


def test_listeners_that_cannot_get_a_thread_at_exit_are_skipped_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.12 starts no thread during exit: a close then must still finish (its left events are dropped)."""
    import types

    from mrclient.cluster import listeners

    class NoThreadAtExit(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't create new thread at interpreter shutdown")

    no_threads = types.SimpleNamespace(Thread=NoThreadAtExit, Lock=threading.Lock, current_thread=threading.current_thread)
    monkeypatch.setattr(listeners, "threading", no_threads)
    heard: list[str] = []
    dispatcher: listeners.ListenerDispatcher[str] = listeners.ListenerDispatcher("test-listeners")
    dispatcher.add("left", heard.append)
    dispatcher.post("left", "model-1")  # no thread, no exception
    dispatcher.close()
    assert heard == []
