"""Ctrl-C and SIGTERM end the ``mrclient`` command at once, with the status shells expect, wherever the signal lands.

Each command runs as a process of its own. Ctrl-C exits 130 and SIGTERM 143
(128 + the signal's number), connected or not. ``_cli_signal_child.py``
runs the command with both signals blocked on its main thread, so that the
kernel hands them to another thread: what a busy machine does now and then
(the signal lands just before the main thread blocks), made certain; or with
both blocked on every thread, as a parent's mask is inherited. Before the
waits were cut in slices and the stop relayed by a thread, such a Ctrl-C was
heard only when the wait under way ended (a whole ``--init-timeout``, or a
``--refresh``), or never.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest

from _processes import Process, run_fixture  # noqa: F401 (the run fixture)
from conftest import free_port
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import EwmaTracker, TrackerBase

# Signals, and a bound on how soon the process ends: alone, after the parallel pass.
pytestmark = [pytest.mark.serial, pytest.mark.subprocess]

PROMPT = 10.0  # what "at once" allows on a loaded machine: far below the waits the signal must cut short
LONG = "120"  # an --init-timeout or --refresh the signal must not wait out


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[LocalOrchestrator]:
    with LocalOrchestrator(crunch_id="signalled") as orchestrator:
        orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[TrackerBase, EwmaTracker]).port)
        yield orchestrator


def connecting(command: str, port: int) -> list[str]:
    """``command`` against ``port``, where nothing listens: it connects for ``LONG`` seconds, logging each attempt."""
    argv = [command, "-v", "--host", "127.0.0.1", "--port", str(port), "--crunch-id", "c", "--init-timeout", LONG]
    return argv + (["--base-classname", "a.B", "predict"] if command == "call" else [])


@pytest.mark.parametrize("child", [None, "other-thread", "blocked"], ids=["main-thread", "other-thread", "blocked"])
@pytest.mark.parametrize("command", ["watch", "call"])
def test_ctrl_c_while_connecting_ends_the_command_at_once_with_130(
    run: Callable[..., Process], command: str, child: str | None
) -> None:
    process = run(*connecting(command, free_port()), child=child)
    process.line_with(process.err, "reconnecting in")  # connecting, and refused: it would go on for 120 s
    status, took = process.stop_with(signal.SIGINT)
    assert status == 130, process.stderr()
    assert took < PROMPT, f"Ctrl-C took {took:.1f}s to end {command}, connecting"
    assert "Traceback" not in process.stderr()


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("child", [None, "other-thread", "blocked"], ids=["main-thread", "other-thread", "blocked"])
def test_a_signal_ends_a_connected_watch_at_once_with_128_plus_its_number(
    run: Callable[..., Process], crunch: LocalOrchestrator, child: str | None, signum: int, status: int
) -> None:
    """Connected, the display waits ``--refresh`` (120 s here) between two looks: a signal does not wait for it."""
    process = run("watch", "--host", "127.0.0.1", "--port", str(crunch.port), "--crunch-id", "signalled",
                  "--output", "lines", "--refresh", LONG, child=child)
    process.line_with(process.out, "running")
    exited, took = process.stop_with(signum)
    assert exited == status, process.stderr()
    assert took < PROMPT, f"the watch took {took:.1f}s to end"
    assert "Traceback" not in process.stderr()
