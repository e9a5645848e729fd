"""A failed init() is undone and can be tried again; no round runs on a runner that is not running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _web_server import BannerServer, WebServer, banner_server_fixture, web_server_fixture  # noqa: F401 (fixtures)
from conftest import free_port
from mrclient import (
    DynamicSubclassModelConcurrentRunner,
    InvalidCoordinatorUsageError,
    ModelPredictResult,
    ModelRunner,
    MrclientError,
    TrainInferModelConcurrentRunner,
)
from mrclient.cluster.listeners import ListenerDispatcher
from mrclient.testing import LocalModelNode, LocalOrchestrator

WAIT = 10.0
SLOW = 60.0  # an init() that waits through several attempts, each after a backoff
QUIET = 0.3
CRUNCH = "retry"
SUCCESS = ModelPredictResult.Status.SUCCESS
NOT_INITIALIZED = r"init\(\) has not succeeded on this runner: call init\(\) first"


class RetryBase:
    """The participants' base class."""


class Model(RetryBase):
    def predict(self) -> str:
        return "ok"


def mrclient_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before and t.name.startswith("mrclient")]


@pytest.fixture
def runners() -> Iterator[Callable[..., DynamicSubclassModelConcurrentRunner]]:
    made: list[DynamicSubclassModelConcurrentRunner] = []

    def make(port: int, **options: Any) -> DynamicSubclassModelConcurrentRunner:
        settings: dict[str, Any] = dict(
            timeout=5.0, crunch_id=CRUNCH, host="127.0.0.1", port=port, base_classname=f"{__name__}.RetryBase",
            retry_backoff_factor=0.01,
        )
        settings.update(options)
        made.append(DynamicSubclassModelConcurrentRunner(**settings))
        return made[-1]

    yield make
    for runner in made:
        runner.close()


@pytest.mark.serial
def test_init_fails_with_the_orchestrator_down_and_succeeds_on_the_same_runner_once_it_is_up(
    runners: Callable[..., DynamicSubclassModelConcurrentRunner], local_node: Callable[..., LocalModelNode]
) -> None:
    port = free_port()
    runner = runners(port)
    joined: list[ModelRunner] = []
    runner.on_model_joined(joined.append)  # registered before init: kept through the failed attempts
    before = set(threading.enumerate())

    for _ in range(2):  # the orchestrator is not up yet: each init() fails, and leaves nothing behind
        with pytest.raises(ConnectionError, match=f"ws://127.0.0.1:{port}/{CRUNCH}"):
            runner.init(timeout=0.5)
        assert mrclient_threads(before) == []
        with pytest.raises(MrclientError, match=NOT_INITIALIZED):
            runner.call("predict")
        assert not runner.closed and not runner.connected

    with LocalOrchestrator(crunch_id=CRUNCH, port=port) as orchestrator:
        nodes = [local_node(classes=[RetryBase, Model]) for _ in range(2)]
        for node in nodes:
            orchestrator.add_model(port=node.port)
        runner.init(timeout=WAIT)
        assert runner.connected and len(runner.models) == 2
        for _ in range(3):
            results = runner.call("predict")
            assert [(r.status, r.result) for r in results.values()] == [(SUCCESS, "ok")] * 2
        deadline = time.monotonic() + WAIT
        while len(joined) < 2 and time.monotonic() < deadline:  # the listener runs on its own thread
            threading.Event().wait(0.01)
        assert sorted(m.model_id for m in joined) == sorted(m.model_id for m in runner.models)

        began = time.monotonic()
        runner.init(timeout=WAIT)  # after a success: returns at once, changes nothing
        assert time.monotonic() - began < 0.1 and len(runner.models) == 2
        assert orchestrator.wait_for_clients(1, WAIT) and not orchestrator.wait_for_reports(1, QUIET)
        runner.close()
    assert mrclient_threads(before) == []


def test_every_round_kind_refuses_a_runner_whose_init_has_not_succeeded() -> None:
    port = free_port()
    subclass = DynamicSubclassModelConcurrentRunner(
        timeout=5, crunch_id=CRUNCH, host="127.0.0.1", port=port, base_classname="a.B"
    )
    train_infer = TrainInferModelConcurrentRunner(timeout=5, crunch_id=CRUNCH, host="127.0.0.1", port=port)
    try:
        rounds: list[Callable[[], object]] = [
            lambda: subclass.call("predict"),
            lambda: subclass.call("predict", arguments=lambda model: ([], [])),
            lambda: subclass.call("predict", args=[1]),
            lambda: train_infer.predict(1),
            lambda: train_infer.reinitialize(),
        ]
        for call in rounds:
            with pytest.raises(InvalidCoordinatorUsageError, match=NOT_INITIALIZED):
                call()
    finally:
        subclass.close()
        train_infer.close()


def test_an_init_every_model_refused_can_be_tried_again_and_says_the_same(
    runners: Callable[..., DynamicSubclassModelConcurrentRunner], local_node: Callable[..., LocalModelNode]
) -> None:
    with LocalOrchestrator(crunch_id=CRUNCH) as orchestrator:
        for _ in range(2):
            orchestrator.add_model(port=local_node(classes=[RetryBase, Model]).port)
        runner = runners(orchestrator.port, base_classname=f"{__name__}.RetryBsae")  # a typo
        before = set(threading.enumerate())
        for _ in range(2):  # not "the model cluster is closed": the same judgement, made again
            with pytest.raises(InvalidCoordinatorUsageError, match="BAD_IMPLEMENTATION for the setup"):
                runner.init(timeout=WAIT)
            assert orchestrator.wait_for_clients(0, WAIT), "the failed attempt's connection is closed"
            assert mrclient_threads(before) == []
            with pytest.raises(MrclientError, match=NOT_INITIALIZED):
                runner.call("predict")
        assert not orchestrator.wait_for_reports(1, QUIET)
        runner.close()
        with pytest.raises(MrclientError, match="the runner is closed"):
            runner.init(timeout=WAIT)


def test_close_after_a_failed_init_leaves_nothing_and_refuses_the_next(
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    runner = runners(free_port())
    before = set(threading.enumerate())
    with pytest.raises(ConnectionError):
        runner.init(timeout=0.3)
    runner.close()
    assert runner.closed and mrclient_threads(before) == []
    with pytest.raises(MrclientError, match="the runner is closed"):
        runner.init(timeout=0.3)
    with pytest.raises(MrclientError, match="the runner is closed"):
        runner.call("predict")


def test_a_stopped_listener_thread_keeps_its_listeners_and_the_next_event_starts_another() -> None:
    dispatcher: ListenerDispatcher[int] = ListenerDispatcher("mrclient-test-listeners")
    heard: list[int] = []
    second = threading.Event()

    def listener(item: int) -> None:
        heard.append(item)
        if item == 2:
            second.set()

    dispatcher.add("joined", listener)
    dispatcher.post("joined", 1)
    dispatcher.stop_thread()  # delivers what was posted, then ends the thread
    assert heard == [1]
    assert [t for t in threading.enumerate() if t.name == "mrclient-test-listeners"] == []
    dispatcher.post("joined", 2)
    assert second.wait(WAIT) and heard == [1, 2]
    dispatcher.close()
    assert [t for t in threading.enumerate() if t.name == "mrclient-test-listeners"] == []


# -- answers that say the address is wrong ---------------------------------------------------------


def test_init_against_a_web_server_gives_up_early_in_one_line(
    web_server: Callable[..., WebServer], runners: Callable[..., DynamicSubclassModelConcurrentRunner]
) -> None:
    server = web_server(404)
    started = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        runners(server.port).init()
    assert time.monotonic() - started < SLOW / 2
    assert str(caught.value) == (
        f"HTTP 404 Not Found from ws://127.0.0.1:{server.port}/{CRUNCH}: is this the orchestrator's port? (3 attempts)"
    )


@pytest.mark.parametrize("banner", [b"SSH-2.0-OpenSSH_9.6\r\n", b"\xff\xfe\x00garbage\r\n", b"HTTP/1.1 abc\r\n\r\n"],
                         ids=["ssh", "binary", "bad-status"])
def test_init_against_a_service_that_is_not_http_gives_up_early_in_one_line(
    banner: bytes, banner_server: Callable[[bytes], BannerServer],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner], caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever the websocket-client version reads there, init() says what it is, and the thread logs no bug."""
    server = banner_server(banner)
    started = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        runners(server.port).init()
    assert time.monotonic() - started < SLOW / 2
    assert "is this the orchestrator's port? (3 attempts)" in str(caught.value), caught.value
    assert "\n" not in str(caught.value)
    assert not [record for record in caplog.records if record.levelname == "ERROR"], caplog.text


def test_init_waits_out_a_host_name_that_does_not_resolve(runners: Callable[..., DynamicSubclassModelConcurrentRunner]) -> None:
    """A container's name does not resolve while it restarts: the library waits its whole init_timeout."""
    started = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        runners(8000, host="name.invalid", init_timeout=2.0).init()
    assert time.monotonic() - started >= 2.0
    message = str(caught.value)
    assert "within 2s (last error: the host name 'name.invalid' does not resolve)" in message, message
    assert "How long init() waits (2s here)" in message


def test_a_retry_loop_reaches_the_orchestrator_that_replaces_a_web_server(
    web_server: Callable[..., WebServer], local_node: Callable[..., LocalModelNode],
    runners: Callable[..., DynamicSubclassModelConcurrentRunner],
) -> None:
    """init() gives up early on a 404 and may be called again; it waits through a proxy's 503 and refused connections."""
    port = free_port()
    runner = runners(port)
    server = web_server(404, port)
    with pytest.raises(ConnectionError, match="HTTP 404"):
        runner.init()
    server.stop()
    proxy = web_server(503, port)  # a proxy in front of an orchestrator that restarts
    failed: list[BaseException] = []

    def init() -> None:
        try:
            runner.init()
        except BaseException as error:  # noqa: BLE001 (the test reads it)
            failed.append(error)

    initializing = threading.Thread(target=init, name="test-init")
    initializing.start()
    try:
        assert proxy.requested.wait(SLOW), "init() asked the proxy"
        proxy.stop()  # refused connections, for a moment
        with LocalOrchestrator(crunch_id=CRUNCH, port=port) as orchestrator:
            orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[RetryBase, Model]).port)
            initializing.join(SLOW)
            assert not initializing.is_alive() and failed == [], failed
            assert runner.initialized and runner.wait_for_models(1, SLOW)
    finally:
        runner.close()
        initializing.join(SLOW)
