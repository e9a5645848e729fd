"""The per-model runners against LocalModelNode on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from conftest import TlsMaterial, free_port
from mrclient import DynamicSubclassModelRunner, InvalidCoordinatorUsageError, ModelRunner, TrainInferModelRunner
from mrclient.runners import MODEL_LEFT, node_lost_setup
from mrclient.testing import LocalModelNode
from mrclient.wire.codec import to_arguments, to_kw_arguments

ErrorType = ModelRunner.ErrorType
WAIT = 10.0


class RunnerBase:
    pass


class Model(RunnerBase):
    entered = threading.Event()
    release = threading.Event()

    def __init__(self, scale: float = 1.0, *, offset: float = 0.0) -> None:
        self.scale, self.offset = scale, offset

    def compute(self, x: float, bonus: float = 0.0) -> float:
        return x * self.scale + self.offset + bonus

    def nothing(self) -> None:
        return None

    def fail(self) -> None:
        raise ValueError("the model broke")

    def odd(self) -> Any:
        return object()  # the node cannot encode it: a failure, not a crash

    def hold(self) -> str:
        Model.entered.set()
        Model.release.wait(WAIT)
        return "released"


class BrokenConstructor(RunnerBase):
    def __init__(self) -> None:
        raise RuntimeError("cannot start")


class Unrelated:
    pass


@pytest.fixture(autouse=True)
def reset_events() -> Iterator[None]:
    Model.entered.clear()
    Model.release.clear()
    yield
    Model.release.set()


@pytest.fixture
def runners() -> Iterator[Callable[..., ModelRunner]]:
    """Factory of runners (DynamicSubclass by default), all closed after the test."""
    made: list[ModelRunner] = []

    def make(port: int, cls: type[ModelRunner] = DynamicSubclassModelRunner, **kwargs: Any) -> ModelRunner:
        options: dict[str, Any] = dict(
            deployment_id="deployment-1", model_id="model-1", model_name="model", ip="127.0.0.1", port=port,
            infos={"cruncher_id": "c"}, retry_backoff_factor=0.01,
        )
        if cls is DynamicSubclassModelRunner:
            options["base_classname"] = "RunnerBase"
        options.update(kwargs)
        runner = cls(**options)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def ready(make: Callable[..., ModelRunner], node: LocalModelNode, **kwargs: Any) -> Any:
    runner = make(node.port, **kwargs)
    assert runner.init() == (True, None)
    return runner


# -- setup -----------------------------------------------------------------------------------


def test_setup_passes_instance_arguments(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    node = local_node(classes=[RunnerBase, Model])
    plain = ready(runners, node, instance_args=[2.0], instance_kwargs={"offset": 1.0})
    assert plain.call("compute", (to_arguments([3.0]), []), timeout=WAIT) == (7.0, None)
    assert plain.health_channel is None  # opened on first use
    assert plain.health() is True
    assert plain.channel is not None and plain.health_channel is not None and plain.channel is not plain.health_channel


def test_setup_status_codes(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    unrelated = runners(local_node(classes=[RunnerBase, Unrelated]).port)
    assert unrelated.init() == (False, ErrorType.BAD_IMPLEMENTATION)
    assert unrelated.channel is None  # a failed setup leaves no channel open

    broken = runners(local_node(classes=[RunnerBase, BrokenConstructor]).port)
    assert broken.init() == (False, ErrorType.FAILED)  # SETUP_FAILED

    with pytest.raises(InvalidCoordinatorUsageError, match="base_classname must be"):
        runners(local_node(classes=[RunnerBase, Model]).port, base_classname="  ")
    empty = runners(local_node(classes=[RunnerBase, Model]).port)
    empty.base_classname = "  "  # past the constructor's check: what a node answers, and what the runner makes of it
    with pytest.raises(InvalidCoordinatorUsageError, match="rejected"):  # INVALID_ARGUMENT
        empty.init()
    assert empty.channel is None


# -- calls and their status codes ------------------------------------------------------------


def test_call_status_codes(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    runner = ready(runners, local_node(classes=[RunnerBase, Model]))

    # SUCCESS, with keyword arguments passed only where the method declares them
    assert runner.call("compute", (to_arguments([2.0]), to_kw_arguments({"bonus": 1.0, "unknown": 5})), WAIT) == (3.0, None)
    assert runner.call("compute", lambda r: (to_arguments([float(len(r.model_id))]), None), WAIT) == (7.0, None)
    assert runner.call("nothing", timeout=WAIT) == (None, None)  # no methodResponse
    assert runner.call("fail", timeout=WAIT) == (None, ErrorType.FAILED)  # MODEL_FAILED
    assert runner.call("odd", timeout=WAIT) == (None, ErrorType.FAILED)
    assert runner.call("missing", timeout=WAIT) == (None, ErrorType.BAD_IMPLEMENTATION)
    with pytest.raises(InvalidCoordinatorUsageError, match="method_name must be a non-empty string"):
        runner.call("", timeout=WAIT)  # refused before the node (which answers INVALID_ARGUMENT):
    assert runner.execute(b"", WAIT).code == "INVALID_ARGUMENT"  # CallRequest(methodName="")

    outcome = runner.execute(b"\x0a\x04fail", WAIT)  # pre-serialized CallRequest(methodName="fail")
    assert outcome.error is ErrorType.FAILED and outcome.detail and "the model broke" in outcome.detail


def test_a_node_restarted_in_place_lost_the_setup(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    """Not the coordinator's misuse: this runner's Setup succeeded, the node forgot it (issue 11, fault 4)."""
    node = local_node(classes=[RunnerBase, Model])
    runner = ready(runners, node)
    node.stop()
    node.start()  # same port, fresh node: gRPC reconnects, the instance is gone
    assert runner.call("nothing", timeout=WAIT) == (None, ErrorType.SETUP_LOST)
    outcome = runner.execute(b"\x0a\x07nothing", WAIT)
    assert outcome.detail == (
        "SETUP_LOST: the node lost the model's instance (FAILED_PRECONDITION: Setup has not been called yet)"
    )


def test_a_train_infer_node_restarted_in_place_lost_the_setup(
    local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]
) -> None:
    node = local_node(infer=doubler)
    runner = ready(runners, node, cls=TrainInferModelRunner)
    node.stop()
    node.start()
    assert runner.infer(1, timeout=WAIT) == (None, ErrorType.SETUP_LOST)
    assert runner.reinitialize(timeout=WAIT) == (False, ErrorType.SETUP_LOST)


@pytest.mark.parametrize(
    ("code", "message", "setup_succeeded", "lost"),
    [
        ("FAILED_PRECONDITION", "Setup has not been called yet", True, True),
        ("FAILED_PRECONDITION", "Call Setup first", True, True),
        ("FAILED_PRECONDITION", "anything", True, True),
        ("MODEL_FAILED", "Setup has not been called yet", True, True),
        ("FAILED_PRECONDITION", "Setup has not been called yet", False, False),  # never set up: misuse
        ("MODEL_FAILED", "The model raised an exception: boom", True, False),
        ("INVALID_ARGUMENT", "methodName cannot be empty", True, False),
    ],
)
def test_what_counts_as_a_lost_setup(code: str, message: str, setup_succeeded: bool, lost: bool) -> None:
    assert node_lost_setup(code, message, setup_succeeded) is lost


def test_a_lost_setup_before_any_setup_is_coordinator_misuse(
    local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]
) -> None:
    node = local_node(classes=[RunnerBase, Model])
    runner = ready(runners, node)
    node.stop()
    node.start()
    runner.setup_succeeded = False  # as if this runner had never set the model up
    with pytest.raises(InvalidCoordinatorUsageError, match="FAILED_PRECONDITION"):
        runner.call("nothing", timeout=WAIT)


@pytest.mark.serial
def test_deadline_expiry_and_busy_node(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    runner = ready(runners, local_node(classes=[RunnerBase, Model]))
    started = time.monotonic()
    assert runner.call("hold", timeout=0.3) == (None, ErrorType.TIMEOUT)
    assert time.monotonic() - started < 0.3 + 1.0
    assert Model.entered.is_set()

    # The node still computes the held call: the next one is refused at once.
    outcome = runner.execute(b"\x0a\x07nothing", WAIT)
    assert outcome.error is ErrorType.TIMEOUT and outcome.detail and outcome.detail.startswith("RESOURCE_EXHAUSTED")
    assert runner.health() is True  # health answers on its own channel while the model is busy
    Model.release.set()


# -- connecting ------------------------------------------------------------------------------


def test_retries_then_gives_up_on_a_closed_port(runners: Callable[..., ModelRunner], caplog: pytest.LogCaptureFixture) -> None:
    runner = runners(free_port(), connect_attempts=4)
    caplog.set_level("INFO", logger="mrclient.runners.base")
    started = time.monotonic()
    assert runner.init() == (False, ErrorType.GRPC_CONNECTION_FAILED)
    assert time.monotonic() - started < WAIT
    assert sum("Retrying" in record.getMessage() for record in caplog.records) == 3
    assert runner.channel is None and runner.health() is False


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:  # the server socket was closed
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
    server.close()
    thread.join(WAIT)
    assert not thread.is_alive()
    for connection in accepted:
        connection.close()


@pytest.mark.serial
def test_a_node_that_never_answers_fails_each_attempt_quickly(runners: Callable[..., ModelRunner], silent_port: int) -> None:
    runner = runners(silent_port, connect_attempts=2)
    started = time.monotonic()
    assert runner.init() == (False, ErrorType.GRPC_CONNECTION_FAILED)
    # Each attempt is bounded by gRPC's connect timeout (1 s), plus one TLS probe (1 s) per init.
    assert time.monotonic() - started < 2 * 1.0 + 1.0 + 2.0
    assert runner.channel is None


def test_connects_once_the_node_comes_up(runners: Callable[..., ModelRunner]) -> None:
    port = free_port()
    runner = runners(port, retry_backoff_factor=0.2)
    node = LocalModelNode(classes=[RunnerBase, Model], port=port)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(runner.init()))
    thread.start()
    try:
        node.start()
        thread.join(WAIT)
        assert outcome == [(True, None)]
    finally:
        node.stop()


def test_a_tls_port_without_credentials_is_coordinator_misuse(
    local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner], tls_material: TlsMaterial
) -> None:
    credentials = grpc.ssl_server_credentials([(tls_material.server_key, tls_material.server_cert)])
    node = local_node(classes=[RunnerBase, Model], server_credentials=credentials)
    runner = runners(node.port, retry_backoff_factor=5.0)  # a retry would take seconds: it must not happen
    started = time.monotonic()
    with pytest.raises(InvalidCoordinatorUsageError, match="secure mode"):
        runner.init()
    assert time.monotonic() - started < 5.0
    assert runner.channel is None


@pytest.mark.serial
def test_close_aborts_a_running_init(runners: Callable[..., ModelRunner]) -> None:
    runner = runners(free_port(), retry_backoff_factor=30.0)  # it would wait 30 s before a second attempt
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(runner.init()))
    thread.start()
    time_limit = time.monotonic() + WAIT
    while runner.channel is None and not outcome and time.monotonic() < time_limit:
        thread.join(0.01)  # until the first attempt has opened its channels
    started = time.monotonic()
    runner.close()
    thread.join(WAIT)
    assert outcome == [(False, ErrorType.ABORTED)]
    assert time.monotonic() - started < 2.0
    assert runner.closed and runner.channel is None


def test_close_aborts_a_setup_in_flight(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    node = local_node(classes=[RunnerBase, Model])
    blocker = runners(node.port, model_id="blocker")
    assert blocker.init() == (True, None)
    holding = threading.Thread(target=blocker.call, args=("hold",), kwargs={"timeout": WAIT})
    holding.start()
    assert Model.entered.wait(WAIT)
    # A second client's Setup now gets RESOURCE_EXHAUSTED and retries; close() ends that.
    runner = runners(node.port, model_id="second", retry_backoff_factor=30.0)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(runner.init()))
    thread.start()
    thread.join(0.5)
    runner.close()
    thread.join(WAIT)
    Model.release.set()
    holding.join(WAIT)
    assert outcome == [(False, ErrorType.ABORTED)]


def test_calls_after_close_are_aborted(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    runner = ready(runners, local_node(classes=[RunnerBase, Model]))
    runner.close()
    runner.close()
    assert runner.call("nothing", timeout=WAIT) == (None, ErrorType.ABORTED)
    assert runner.execute(b"\x0a\x07nothing", WAIT).detail == MODEL_LEFT
    assert runner.health() is False


def test_a_call_cut_by_close_is_model_left_not_a_timeout(
    local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]
) -> None:
    """The CANCELLED a close() causes is a departure, not the model's timeout (issue 10 item 6)."""
    runner = ready(runners, local_node(classes=[RunnerBase, Model]))
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.append(runner.execute(b"\x0a\x04hold", WAIT)))
    thread.start()
    assert Model.entered.wait(WAIT)
    runner.close()
    thread.join(WAIT)
    Model.release.set()
    assert [(o.error, o.detail) for o in outcomes] == [(ErrorType.ABORTED, MODEL_LEFT)]


# -- train / infer ---------------------------------------------------------------------------


def doubler(stream: Any) -> Any:
    yield
    count = 0
    for value in stream:
        count += 1
        if value == "raise":
            raise RuntimeError("bad value")
        yield {"double": value * 2, "count": count}


def test_infer_and_reinitialize(local_node: Callable[..., LocalModelNode], runners: Callable[..., ModelRunner]) -> None:
    node = local_node(infer=doubler)
    for service in ("TrainInferStreamService", "TrainInferService"):
        runner = ready(runners, node, cls=TrainInferModelRunner, service_name=service)
        assert runner.infer(2, timeout=WAIT)[0]["double"] == 4
        assert runner.infer(5, timeout=WAIT)[0]["count"] >= 2
        assert runner.reinitialize(timeout=WAIT) == (True, None)
        assert runner.infer(1, timeout=WAIT) == ({"double": 2, "count": 1}, None)
        result, error = runner.infer("raise", timeout=WAIT)
        assert (result, error) == (None, ErrorType.FAILED)
        runner.close()
        assert runner.reinitialize(timeout=WAIT) == (False, ErrorType.ABORTED)
