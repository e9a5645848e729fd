"""Reaching the orchestrator: what the command says at once, and when it stops waiting.

Real servers on loopback: a plain HTTP server (another service on the port,
answering 404 or a web page), a closed port, a host name that does not
resolve (``name.invalid``), and a ``LocalOrchestrator`` started after the
command. ``watch`` and ``call`` say where they connect and for how long at
once; an answer that says the address is wrong ends them early, in one
line; a refused connection (an orchestrator restarting) is tried for the
whole ``--init-timeout``. The library's ``init()`` says the same in its
``ConnectionError`` (tests/test_init_retry.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import websocket

from _processes import Process, run_fixture  # noqa: F401 (the run fixture)
from _web_server import PAGE, WebServer, web_server_fixture  # noqa: F401 (the web_server fixture)
from conftest import free_port
from mrclient.orchestrator.failures import Verdict, attempt_failure
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

WAIT = 60.0  # bound of every wait on a process
EARLY = 30.0  # a command that gives up early ends well before its --init-timeout of 60 s
URL = "ws://orchestrator.example:8000/bird-game"

# -- the verdicts, with the errors websocket-client raises ------------------------------------------


@pytest.mark.parametrize(
    "error, verdict, summary",
    [
        (websocket.WebSocketBadStatusException("Handshake status 404 Not Found -+-+- {} -+-+- " + PAGE.decode(), 404,
                                               "Not Found", {"content-type": "text/html"}, PAGE),
         Verdict.NOT_THE_ORCHESTRATOR, f"HTTP 404 Not Found from {URL}: is this the orchestrator's port?"),
        (websocket.WebSocketBadStatusException("Handshake status 200 OK", 200, "OK", {}, PAGE),
         Verdict.NOT_THE_ORCHESTRATOR, f"HTTP 200 OK from {URL}: is this the orchestrator's port?"),
        (websocket.WebSocketBadStatusException("Handshake status 401", 401, None, {}, b""),
         Verdict.NOT_THE_ORCHESTRATOR, f"HTTP 401 Unauthorized from {URL}: is this the orchestrator's port?"),
        (websocket.WebSocketBadStatusException("Handshake status 503", 503, "Service Unavailable", {}, PAGE),
         Verdict.RETRY, f"HTTP 503 Service Unavailable from {URL} (not ready?)"),
        (websocket.WebSocketBadStatusException("Handshake status 429", 429, "Too Many Requests", {}, b""),
         Verdict.RETRY, f"HTTP 429 Too Many Requests from {URL} (not ready?)"),
        (websocket.WebSocketAddressException(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
         Verdict.UNKNOWN_HOST, f"the host name 'orchestrator.example' does not resolve ({URL}): is the host right?"),
        (websocket.WebSocketAddressException(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
         Verdict.RETRY, f"could not resolve 'orchestrator.example' (Temporary failure in name resolution), for {URL}"),
        (ConnectionRefusedError(111, "Connection refused"),
         Verdict.RETRY, f"connection refused: nothing listens at orchestrator.example:8000 ({URL})"),
        (TimeoutError("timed out"), Verdict.RETRY, f"no answer from orchestrator.example:8000 within 10s ({URL})"),
        (websocket.WebSocketConnectionClosedException("Connection to remote host was lost."), Verdict.RETRY,
         f"orchestrator.example:8000 closed the connection during the WebSocket handshake ({URL})"),
        (websocket.WebSocketException("Invalid status line: 'SSH-2.0-OpenSSH_9.6'"), Verdict.NOT_THE_ORCHESTRATOR,
         f"{URL} answered 'SSH-2.0-OpenSSH_9.6', not HTTP: is this the orchestrator's port?"),
        (OSError(113, "No route to host\nand more"), Verdict.RETRY, f"OSError: [Errno 113] No route to host ({URL})"),
    ],
    ids=["404", "200-page", "401", "503", "429", "unknown-host", "dns-again", "refused", "timeout", "closed",
         "not-http", "other"],
)
def test_each_failed_attempt_is_one_line_with_its_verdict(error: BaseException, verdict: Verdict, summary: str) -> None:
    failure = attempt_failure(error, URL, "orchestrator.example", 8000, open_timeout=10.0)
    assert failure.verdict is verdict
    assert failure.summary == summary
    for text in (failure.reason, failure.summary):
        assert "\n" not in text and "lorem" not in text and "<html" not in text and len(text) < 200, text


# -- real servers on loopback ---------------------------------------------------------------------


def command(name: str, host: str, port: int, *options: str) -> list[str]:
    argv = [name, "--host", host, "--port", str(port), "--crunch-id", "c", *options]
    return argv + (["--base-classname", BASE_CLASSNAME, "predict"] if name == "call" else ["--output", "lines"])


def mrclient(*argv: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mrclient", *argv], capture_output=True, text=True, timeout=WAIT * 2)
    return done, time.monotonic() - started


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.subprocess
@pytest.mark.parametrize("status", [404, 200])
@pytest.mark.parametrize("name", ["watch", "call"])
def test_a_web_server_on_the_port_ends_the_command_early_in_one_line(
    web_server: Callable[..., WebServer], name: str, status: int
) -> None:
    server = web_server(status)
    done, took = mrclient(*command(name, "127.0.0.1", server.port))
    url = f"ws://127.0.0.1:{server.port}/c"
    assert done.returncode == 1, done.stderr
    assert took < EARLY, f"{took:.1f}s: not the whole --init-timeout"
    lines = done.stderr.splitlines()
    assert lines[0] == f"mrclient: connecting to {url} (up to 60s: --init-timeout)", lines
    reason = "OK" if status == 200 else "Not Found"
    assert f"mrclient: error: HTTP {status} {reason} from {url}: is this the orchestrator's port?" in flat(done.stderr)
    assert "lorem" not in done.stderr and "<" not in done.stderr, "the page is not quoted"
    assert all(len(line) <= 80 for line in lines), lines


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["watch", "call"])
def test_a_host_name_that_does_not_resolve_ends_the_command_early(name: str) -> None:
    done, took = mrclient(*command(name, "name.invalid", 8000))
    assert done.returncode == 1, done.stderr
    assert took < EARLY, f"{took:.1f}s: not the whole --init-timeout"
    assert "the host name 'name.invalid' does not resolve (ws://name.invalid:8000/c): is the host right?" in flat(done.stderr)


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["watch", "call"])
def test_a_closed_port_is_said_at_once_then_tried_for_the_whole_init_timeout(
    run: Callable[..., Process], name: str
) -> None:
    port = free_port()
    started = time.monotonic()
    process = run(*command(name, "127.0.0.1", port, "--init-timeout", "5"))
    note = process.line_with(process.err, "mrclient:")
    assert note == f"mrclient: connecting to ws://127.0.0.1:{port}/c (up to 5s: --init-timeout)\n"
    assert process.popen.poll() is None, "said before the wait, not after"
    assert process.popen.wait(WAIT) == 1
    assert time.monotonic() - started >= 5.0, "a refused connection is tried for the whole --init-timeout"
    said = flat(process.stderr())
    assert (f"mrclient: error: could not connect to the orchestrator at ws://127.0.0.1:{port}/c within --init-timeout "
            f"(5s): connection refused: nothing listens at 127.0.0.1:{port}") in said, said


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["watch", "call"])
def test_an_orchestrator_started_after_the_command_is_reached(
    run: Callable[..., Process], local_node: Callable[..., LocalModelNode], name: str
) -> None:
    port = free_port()
    process = run(*command(name, "127.0.0.1", port, "-v"))
    process.line_with(process.err, "reconnecting in")  # refused: the orchestrator is not there yet
    with LocalOrchestrator(crunch_id="c", port=port) as orchestrator:
        model = orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[TrackerBase, EwmaTracker]).port)
        if name == "call":
            assert process.popen.wait(WAIT) == 0, process.stderr()
            row = process.line_with(process.out, model)
            assert "SUCCESS" in row, row
        else:
            assert model in process.line_with(process.out, "running")
            status, _ = process.stop_with(2)  # SIGINT
            assert status == 130
