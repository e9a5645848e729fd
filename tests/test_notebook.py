"""The notebook side: the live view in a real IPython kernel, the figures, and what the plain install loads.

The live view is tested in a Jupyter kernel started with jupyter_client (the
kernel the docs build uses): the cells start a local crunch and a runner,
``mrclient.notebook.show(runner)`` displays the view, and the test reads the
kernel's IOPub messages (``display_data``, then ``update_display_data`` with
the same display id) while cells run rounds, add a model, stop one and close
the runner. The kernel is shut down by its manager at the end of the test.
"""

from __future__ import annotations

import io
import json
import queue
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _html_tables import Table, tables, text_outside_tables
from mrclient import ModelStats, RoundSummary

WAIT = 30.0  # kernel start-up and cells: generous, the machine is shared


# -- a kernel -------------------------------------------------------------------------------------


class Kernel:
    """A running IPython kernel: run cells, and read the display updates it publishes."""

    def __init__(self, manager: Any, client: Any) -> None:
        self.manager, self.client = manager, client
        self.displays: dict[str, list[str]] = {}  # display id -> its HTML, first display then each update
        self.stdout: dict[str, str] = {}  # cell message id -> what it printed

    def run(self, code: str) -> str:
        """Run one cell; returns what it printed. Raises AssertionError when it fails."""
        msg_id = self.client.execute(code)
        deadline = time.monotonic() + WAIT
        while True:
            reply = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        self._read_until(lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                         and m["parent_header"].get("msg_id") == msg_id)  # fmt: skip
        content = reply["content"]
        assert content["status"] == "ok", "\n".join(content.get("traceback", [])) or content
        return self.stdout.get(msg_id, "")

    def wait_display(self, display_id: str, predicate: Callable[[str], bool]) -> str:
        """The first HTML of ``display_id`` (already seen or still to come) for which ``predicate`` holds."""
        for page in self.displays.get(display_id, []):
            if predicate(page):
                return page
        found: list[str] = []

        def matches(message: dict[str, Any]) -> bool:
            if message["msg_type"] not in ("display_data", "update_display_data"):
                return False
            if message["content"].get("transient", {}).get("display_id") != display_id:
                return False
            page = message["content"]["data"]["text/html"]
            if predicate(page):
                found.append(page)
            return bool(found)

        self._read_until(matches)
        return found[0]

    def _read_until(self, done: Callable[[dict[str, Any]], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                break
            self._note(message)
            if done(message):
                return
        raise AssertionError(f"nothing awaited came from the kernel within {WAIT}s")

    def _note(self, message: dict[str, Any]) -> None:
        kind, content = message["msg_type"], message["content"]
        if kind in ("display_data", "update_display_data"):
            display_id = content.get("transient", {}).get("display_id")
            if display_id:
                self.displays.setdefault(display_id, []).append(content["data"]["text/html"])
        elif kind == "stream" and content["name"] == "stdout":
            cell = message["parent_header"].get("msg_id", "")
            self.stdout[cell] = self.stdout.get(cell, "") + content["text"]


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    manager_module = pytest.importorskip("jupyter_client.manager")
    manager, client = manager_module.start_new_kernel(kernel_name="python3", startup_timeout=WAIT)
    try:
        yield Kernel(manager, client)
    finally:
        try:
            client.execute("try:\n    runner.close()\nexcept NameError:\n    pass\n_stop_servers()")
            client.get_shell_msg(timeout=WAIT)
        except Exception:  # noqa: BLE001 - the shutdown below ends the kernel all the same
            pass
        client.stop_channels()
        manager.shutdown_kernel(now=False)  # asks, then kills the kernel process by its PID


SETUP = """
import threading
from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.notebook import show
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import TrackerBase

class Counting(TrackerBase):
    calls = 0  # every call any model of this kernel received
    def predict(self):
        Counting.calls += 1
        return 1

class Broken(TrackerBase):
    def predict(self):
        Counting.calls += 1
        raise RuntimeError("broken")

_servers = [LocalOrchestrator(crunch_id="live").start()]
orchestrator = _servers[0]

def _stop_servers():
    for server in reversed(_servers):
        server.stop()

def add(name, cls):
    node = LocalModelNode(classes=[TrackerBase, cls]).start()
    _servers.append(node)
    return orchestrator.add_model(host="127.0.0.1", port=node.port, name=name)

first = add("counting", Counting)
runner = DynamicSubclassModelConcurrentRunner(
    timeout=5, crunch_id="live", host="127.0.0.1", port=orchestrator.port,
    base_classname="mrclient.testing.examples.TrackerBase", report_failure=False, max_consecutive_failures=0,
)
runner.init()
live = show(runner, every=0.05)
print(json.dumps({"display_id": live.display_id, "thread_alive": live._thread.is_alive(), "calls": Counting.calls}))
"""


def _table(page: str) -> Table:
    [table] = tables(page)
    return table


@pytest.mark.subprocess
def test_the_live_view_updates_on_a_round_and_a_join_and_stops_at_close(kernel: Kernel) -> None:
    shown = json.loads(kernel.run("import json\n" + SETUP).strip())
    display_id = shown["display_id"]
    assert shown["thread_alive"] and shown["calls"] == 0, "the cell returned with the view live; no call made"
    first = kernel.wait_display(display_id, lambda page: True)
    assert "0 rounds" in first and _table(first).column("name") == ["counting"]

    kernel.run("results = runner.call('predict')")
    after_round = kernel.wait_display(display_id, lambda page: "last round: predict" in page)
    assert "1 round>" in text_outside_tables(after_round)
    assert "1 called, 1 SUCCESS, 0 FAILED, 0 TIMEOUT" in text_outside_tables(after_round)
    assert _table(after_round).by("name")["counting"]["last"] == "SUCCESS"

    kernel.run("broken = add('broken', Broken)\nassert runner.wait_for_models(2, 10)")
    after_join = kernel.wait_display(display_id, lambda page: "broken" in _table(page).column("name"))
    table = _table(after_join)
    assert sorted(table.column("name")) == ["broken", "counting"] and table.caption == "2 models ready"
    assert table.by("name")["broken"]["state"] == "ready" and "1 round>" in text_outside_tables(after_join)

    kernel.run("orchestrator.stop_model(first)")
    after_leave = kernel.wait_display(
        display_id, lambda page: _table(page).caption == "1 model ready, 1 left" and "broken" in _table(page).column("name")
    )
    assert re.fullmatch(r"left: stopped at \d\d:\d\d:\d\d", _table(after_leave).by("name")["counting"]["state"])
    assert _table(after_leave).column("name")[0] == "counting", "who left comes first"

    # A model joins, and the runner closes at once: the last frame is the table the close left, the newcomer in it.
    printed = kernel.run(
        "late = add('late', Counting)\nassert runner.wait_for_models(2, 10)\n"
        "runner.close()\n"
        "print(json.dumps({'joined': live.join(10), 'stopped': live.stopped, 'updates': live.updates,"
        " 'threads': [t.name for t in threading.enumerate() if t.name == 'mrclient-notebook'],"
        " 'calls': Counting.calls}))"
    )
    stopped = json.loads(printed.strip())
    assert stopped["joined"] and stopped["stopped"] and stopped["threads"] == [], "its thread ended"
    assert stopped["calls"] == 1, "the view never called a model: the one call is the cell's round"
    final = kernel.wait_display(display_id, lambda page: "this view stopped" in page)
    assert "the runner is closed" in text_outside_tables(final) and "closed, 0 ready, 1 round>" in text_outside_tables(final)
    table = _table(final)
    assert table.caption == "2 models ready when the runner closed, 1 left", "the count is the rows'"
    states = {name: row["state"] for name, row in table.by("name").items()}
    assert sorted(states) == ["broken", "counting", "late"], "every model that was there, the newcomer included"
    assert re.fullmatch(r"left: closed at \d\d:\d\d:\d\d", states["late"]), states
    assert re.fullmatch(r"left: closed at \d\d:\d\d:\d\d", states["broken"]), states
    assert states["counting"].startswith("left: stopped at "), "the one that left before keeps its own reason"
    assert table.column("name")[-1] == "counting", "the table at the close first, then who left before"
    assert "last round: predict" in text_outside_tables(final), "and the last round it saw"
    assert kernel.displays[display_id][-1] == final, "nothing after the last redraw"
    assert len(kernel.displays[display_id]) == stopped["updates"] + 1, "the first display, then each update"


@pytest.mark.subprocess
def test_show_needs_ipython_and_the_plain_install_loads_neither_ipython_pandas_nor_matplotlib() -> None:
    script = (
        "import sys\n"
        "import mrclient, mrclient.notebook, mrclient.plotting\n"
        "loaded = [name for name in ('IPython', 'pandas', 'matplotlib') if name in sys.modules]\n"
        "assert not loaded, loaded\n"
        "sys.modules['IPython'] = None\n"
        "try:\n"
        "    mrclient.notebook.show(None)\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mrclient.notebook.show() runs in a Jupyter notebook (it needs IPython)"


# -- figures --------------------------------------------------------------------------------------------


def _stats(name: str, p50: float | None, p90: float | None) -> ModelStats:
    return ModelStats(
        model_id=f"id-{name}", model_name=name, deployment_id="d", address="127.0.0.1:1", joined_at=None,
        calls=1, successes=1, failures=0, timeouts=0, rest_skips=0, latency_p50_ms=p50, latency_p90_ms=p90,
        latency_p99_ms=p90, latency_samples=1, last_status="SUCCESS", last_latency_ms=p50, last_call_at=None,
        last_error=None, last_error_at=None,
    )  # fmt: skip


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_the_latency_figure_draws_p50_and_p90_per_model_and_the_deadline() -> None:
    pytest.importorskip("matplotlib")
    from mrclient.plotting import latency_figure

    stats = [_stats("quick", 2.0, 3.0), _stats("slow", 300.0, 480.0), _stats("new", None, None)]
    figure = latency_figure(stats, deadline=0.5)
    [axes] = figure.axes
    assert [label.get_text() for label in axes.get_yticklabels()] == ["quick", "slow"], "slowest on top; none unmeasured"
    widths = sorted(round(bar.get_width(), 3) for bar in axes.patches)
    assert widths == [2.0, 3.0, 300.0, 480.0]
    [deadline] = axes.get_lines()
    assert list(deadline.get_xdata()) == [500.0, 500.0] and deadline.get_label() == "deadline 0.5 s"
    assert _png(figure).startswith(b"\x89PNG")


def test_the_status_figure_stacks_each_rounds_statuses() -> None:
    pytest.importorskip("matplotlib")
    from mrclient.plotting import status_figure

    def summary(method: str, ok: int, failed: int, late: int) -> RoundSummary:
        return RoundSummary(method, 0.0, 0.1, ok + failed + late, ok, failed, late, 0, 0, ())

    rounds = [summary("tick", 3, 0, 0), summary("predict", 1, 1, 1), summary("predict", 2, 0, 1)]
    figure = status_figure(rounds, rounds=2)
    [axes] = figure.axes
    heights = [(round(bar.get_x() + bar.get_width() / 2), bar.get_y(), bar.get_height()) for bar in axes.patches]
    assert sorted(heights) == sorted([(0, 0, 1), (1, 0, 2), (0, 1, 1), (1, 2, 0), (0, 2, 1), (1, 2, 1)])
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["SUCCESS", "FAILED", "TIMEOUT"]
    assert axes.get_title() == "Status of the last 2 rounds"
    assert _png(figure).startswith(b"\x89PNG")


def test_figures_without_matplotlib_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from mrclient.plotting import latency_figure, status_figure

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    for draw in (lambda: latency_figure([]), lambda: status_figure([])):
        with pytest.raises(ImportError, match=re.escape("pip install '.[notebook]'")):
            draw()
