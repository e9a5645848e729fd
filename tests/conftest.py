"""Shared fixtures: local model nodes, and the real reference model node in its own venv.

Every server started here is stopped by its fixture, every process killed by
PID, and every wait is bounded.
"""

from __future__ import annotations

import _posixsubprocess
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mrclient.testing import LocalModelNode

pytest_plugins = ("pytester",)  # tests/test_passes.py runs pytest on the hooks below

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
PARTICIPANT = TESTS / "participant"
TRACKER_BASE = "trackers.base.TrackerBase"  # the base class's dotted name with PARTICIPANT on sys.path

MODEL_RUNNER_REQUIREMENT = "crunch-model-runner==0.4.2"
MODEL_RUNNER_VENV = REPO_ROOT / ".venv-model-runner"
MODEL_RUNNER_STAMP = MODEL_RUNNER_VENV / ".installed"
NODE_START_TIMEOUT = 60.0  # importing pandas, pyarrow and river takes a while on a cold disk
VENV_INSTALL_TIMEOUT = 900.0


#: Marks of the threads of the servers tests run in-process (LocalModelNode, and
#: the websockets threads of LocalOrchestrator), as opposed to the client's.
SERVER_THREAD_MARKS = ("sock_handler", "conn_handler", "recv_events", "keepalive", "local-model-node")


def client_threads_since(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` that are not the in-process servers'."""
    return [t for t in threading.enumerate() if t not in before and not any(m in t.name for m in SERVER_THREAD_MARKS)]


def read_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a constraints file of ``name==version`` lines (.ci/pins-*.txt)."""
    pins = {}
    for line in path.read_text().splitlines():
        requirement = line.partition("#")[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fast_channel(target: str) -> grpc.Channel:
    """An insecure channel that retries connecting quickly (tests wait on it)."""
    return grpc.insecure_channel(
        target,
        options=[("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 200)],
    )


def wait_serving(target: str, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Block until the health service at ``target`` says SERVING; AssertionError after ``timeout``.

    Health ``Watch`` streams status changes, so no polling: each attempt waits
    (at most a second, then ``alive`` is checked again) for the port to open and
    the status to become SERVING.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    with fast_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while (remaining := deadline - time.monotonic()) > 0:
            assert alive(), f"the server at {target} exited before serving"
            request = health_pb2.HealthCheckRequest(service="")
            try:
                for response in stub.Watch(request, timeout=min(1.0, remaining), wait_for_ready=True):
                    last = response.status
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            except grpc.RpcError as error:
                last = error.code()
    raise AssertionError(f"no SERVING health answer from {target} within {timeout}s (last: {last})")


# -- the passes of make: which tests start processes, and what each run selected -------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--forbid-processes", action="store_true",
        help="fail a test that starts a process (make check runs the tests not marked 'subprocess' with it)",
    )
    parser.addoption(
        "--record-selection", metavar="FILE",
        help="write the test ids this run selected and deselected to FILE, as JSON (.ci/check-passes reads them)",
    )


#: What a test calls to start a process: subprocess (and what runs on it), fork and spawn, multiprocessing's spawn.
PROCESS_STARTERS = (
    (subprocess.Popen, "_execute_child"), (os, "fork"), (os, "forkpty"), (os, "posix_spawn"), (os, "posix_spawnp"),
    (os, "system"), (_posixsubprocess, "fork_exec"),
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """With --forbid-processes, a test (its fixtures included) that starts a process fails, saying to mark it."""
    if not item.config.getoption("forbid_processes"):
        return (yield)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{item.nodeid} starts a process: mark it @pytest.mark.subprocess (make check leaves those out)")

    with pytest.MonkeyPatch.context() as patch:
        for owner, name in PROCESS_STARTERS:
            if hasattr(owner, name):
                patch.setattr(owner, name, refuse)
        return (yield)


_deselected: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start processes first (they are the slow ones), the rest after, each in file order.

    xdist hands tests out in this order: the long ones then overlap the many
    short ones, instead of one worker finishing a long one while the others wait.
    """
    items.sort(key=lambda item: item.get_closest_marker("subprocess") is None)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(item.nodeid for item in items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """With --record-selection FILE: the ids this run selected and deselected (once, from the first xdist worker)."""
    path = session.config.getoption("record_selection")
    if path and os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0":
        record = {"selected": [item.nodeid for item in session.items], "deselected": _deselected}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(record, indent=0))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures tests record (``record_property("figures", line)``), after the results, from xdist workers too.

    A test's own print would be lost on a worker (or shown only with -s); docs/reliability.rst quotes these lines.
    """
    lines = [value for reports in terminalreporter.stats.values() for report in reports if getattr(report, "when", "") == "call"
             for name, value in report.user_properties if name == "figures"]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(str(line))


# -- local model nodes -------------------------------------------------------


@pytest.fixture
def local_node() -> Iterator[Callable[..., LocalModelNode]]:
    """Factory: ``local_node(classes=[...])`` starts a LocalModelNode; all are stopped after the test."""
    nodes: list[LocalModelNode] = []

    def start(*args: Any, **kwargs: Any) -> LocalModelNode:
        node = LocalModelNode(*args, **kwargs)
        nodes.append(node)
        node.start()
        return node

    yield start
    for node in reversed(nodes):
        node.stop()


@pytest.fixture
def gate(local_node: Callable[..., LocalModelNode]) -> Iterator[threading.Event]:
    """An event model code can wait on to hold a call; set at teardown, before nodes stop.

    It depends on ``local_node`` so that its teardown runs first and no node is
    stopped while a model call is still held.
    """
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def open_channel() -> Iterator[Callable[..., grpc.Channel]]:
    """Factory: ``open_channel("127.0.0.1:port", credentials=None, options=())``; closed after the test."""
    channels: list[grpc.Channel] = []

    def open_(target: str, credentials: grpc.ChannelCredentials | None = None, options: tuple[tuple[str, Any], ...] = ()) -> grpc.Channel:
        if credentials is None:
            channel = grpc.insecure_channel(target, options=options)
        else:
            channel = grpc.secure_channel(target, credentials, options=options)
        channels.append(channel)
        return channel

    yield open_
    for channel in channels:
        channel.close()


class TlsMaterial(NamedTuple):
    """PEM bytes: a CA and a server certificate it signed, valid for localhost and 127.0.0.1."""

    ca_cert: bytes
    server_cert: bytes
    server_key: bytes
    server_name: str


@pytest.fixture(scope="session")
def tls_material() -> TlsMaterial:
    """A throwaway CA and server certificate, made in memory with cryptography."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("mrclient test CA"))
        .issuer_name(name("mrclient test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TlsMaterial(
        ca_cert=ca_cert.public_bytes(pem),
        server_cert=cert.public_bytes(pem),
        server_key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        server_name="localhost",
    )


# -- the real reference model node -------------------------------------------


def _python_for_model_runner() -> str:
    """A python >= 3.11 (crunch-model-runner's floor): this one's base interpreter, or one on PATH."""
    if sys.version_info >= (3, 11):
        return str(getattr(sys, "_base_executable", sys.executable))
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        path = shutil.which(name)
        if path is None:
            continue
        check = subprocess.run([path, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"], timeout=60)
        if check.returncode == 0:
            return path
    pytest.fail("crunch-model-runner needs python >= 3.11 and none is on PATH")


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=VENV_INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {VENV_INSTALL_TIMEOUT}s: {' '.join(command)}")
    if done.returncode != 0:
        pytest.fail(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def model_runner_venv() -> Path:
    """A separate virtualenv with the reference node (it pins protobuf<6, so it cannot share ours).

    Made once: a stamp file naming the requirement marks it complete, and a file
    lock keeps two test sessions from building it at the same time.
    """
    MODEL_RUNNER_VENV.mkdir(parents=True, exist_ok=True)
    with open(MODEL_RUNNER_VENV / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if MODEL_RUNNER_STAMP.exists() and MODEL_RUNNER_STAMP.read_text() == MODEL_RUNNER_REQUIREMENT:
                return MODEL_RUNNER_VENV
            _run([_python_for_model_runner(), "-m", "venv", str(MODEL_RUNNER_VENV)])  # keeps .lock
            python = str(MODEL_RUNNER_VENV / "bin" / "python")
            _run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-compile", MODEL_RUNNER_REQUIREMENT])
            MODEL_RUNNER_STAMP.write_text(MODEL_RUNNER_REQUIREMENT)
            return MODEL_RUNNER_VENV
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class RealNode(NamedTuple):
    """A running ``model-runner`` process and its port."""

    port: int
    process: subprocess.Popen[bytes]


def start_real_node(venv: Path, port: int, workdir: Path) -> RealNode:
    """Start the reference node serving tests/participant on ``127.0.0.1:port``; wait until it serves.

    The caller kills the process (by PID); if it does not come up, it is killed here.
    """
    log_path = workdir / f"model-runner-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                str(venv / "bin" / "model-runner"),
                "--address", f"127.0.0.1:{port}",
                "--code-directory", str(PARTICIPANT),
                "--resource-directory", str(workdir / "resources"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    try:
        wait_serving(f"127.0.0.1:{port}", NODE_START_TIMEOUT, alive=lambda: process.poll() is None)
    except AssertionError as error:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"{error}\n--- model-runner log ---\n{log_path.read_text(errors='replace')}") from None
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return RealNode(port, process)


@pytest.fixture
def real_model_node(model_runner_venv: Path, tmp_path: Path) -> Iterator[RealNode]:
    """The reference node serving tests/participant on 127.0.0.1; killed by PID afterwards."""
    node = start_real_node(model_runner_venv, free_port(), tmp_path)
    try:
        yield node
    finally:
        node.process.kill()
        node.process.wait(timeout=10)


@pytest.fixture
def real_nodes(model_runner_venv: Path, tmp_path: Path) -> Iterator[Callable[..., RealNode]]:
    """Factory: ``real_nodes(port=None)`` starts a reference node (a free port by default); all killed afterwards."""
    started: list[RealNode] = []

    def start(port: int | None = None) -> RealNode:
        node = start_real_node(model_runner_venv, port or free_port(), tmp_path)
        started.append(node)
        return node

    yield start
    for node in started:
        node.process.kill()
        node.process.wait(timeout=10)
