"""LocalModelNode against raw generated stubs: the reference node's behaviour, over a real socket."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pytest
from google.protobuf.empty_pb2 import Empty
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import PARTICIPANT, TRACKER_BASE, TlsMaterial
from mrclient.testing import LocalModelNode
from mrclient.wire.codec import decode_variant, to_variant
from mrclient.wire.proto import dynamic_subclass_pb2_grpc, train_infer_pb2_grpc
from mrclient.wire.proto.commons_pb2 import Argument, KwArgument, VariantType
from mrclient.wire.proto.dynamic_subclass_pb2 import CallRequest, SetupRequest
from mrclient.wire.proto.train_infer_pb2 import InferRequest
from participant.main import infer as running_sum  # the participant's infer: yields None, then the running sum

WAIT = 10.0  # bound on every wait for the node


class TrackerBase:
    def tick(self, payload: Any) -> None:
        raise NotImplementedError


class MyTracker(TrackerBase):
    not_a_method = 42

    def __init__(self, scale: float = 1.0, label: str = "none") -> None:
        self.scale, self.label = scale, label
        self.seen: list[Any] = []
        self.horizon: Any = None

    def tick(self, payload: Any, horizon: int = 0) -> None:
        self.seen.append(payload)
        self.horizon = horizon

    def predict(self) -> dict[str, Any]:
        return {"seen": self.seen, "scale": self.scale, "label": self.label, "horizon": self.horizon}

    def pair(self, first: Any, second: Any) -> list[Any]:
        return [first, second]

    def fail(self) -> None:
        raise RuntimeError("participant bug")

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"x": [1, 2, 3]})


class Outer:
    class TrackerBase:  # same bare name as the top-level base, another full name
        pass


class OtherTracker(Outer.TrackerBase):
    pass


class BrokenTracker(TrackerBase):
    def __init__(self) -> None:
        raise ValueError("bad constructor")


BASE = f"{TrackerBase.__module__}.TrackerBase"


def setup(className: str = BASE, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> SetupRequest:
    return SetupRequest(
        className=className,
        instanceArguments=[Argument(position=i, data=to_variant(v)) for i, v in enumerate(args, 1)],
        instanceKwArguments=[KwArgument(keyword=k, data=to_variant(v)) for k, v in (kwargs or {}).items()],
    )


def call(method: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> CallRequest:
    return CallRequest(
        methodName=method,
        methodArguments=[Argument(position=i, data=to_variant(v)) for i, v in enumerate(args, 1)],
        methodKwArguments=[KwArgument(keyword=k, data=to_variant(v)) for k, v in (kwargs or {}).items()],
    )


@pytest.fixture
def subclass_stub(open_channel: Callable[..., grpc.Channel]) -> Callable[[LocalModelNode], Any]:
    def make(node: LocalModelNode) -> Any:
        return dynamic_subclass_pb2_grpc.DynamicSubclassServiceStub(open_channel(node.address))

    return make


@pytest.fixture
def health_of(open_channel: Callable[..., grpc.Channel]) -> Callable[[LocalModelNode], int]:
    """Health status over its own channel, as clients are told to check it."""

    def check(node: LocalModelNode) -> int:
        stub = health_pb2_grpc.HealthStub(open_channel(node.address))
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT).status
        return status

    return check


# -- DynamicSubclassService status codes -------------------------------------


def test_setup_call_round_trip(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    stub = subclass_stub(local_node(classes=[TrackerBase, MyTracker]))
    response = stub.Setup(setup(args=(2.5,), kwargs={"label": "ünï"}), timeout=WAIT)
    assert (response.status.code, response.status.message) == ("SUCCESS", "Instance created successfully")

    assert stub.Call(call("tick", ({"x": 1},), {"horizon": 7}), timeout=WAIT).status.code == "SUCCESS"
    response = stub.Call(call("predict"), timeout=WAIT)
    assert response.status.code == "SUCCESS"
    assert response.methodResponse.type == VariantType.JSON
    assert decode_variant(response.methodResponse) == {"seen": [{"x": 1}], "scale": 2.5, "label": "ünï", "horizon": 7}


def test_none_result_has_no_method_response(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    stub = subclass_stub(local_node(classes=[MyTracker]))
    stub.Setup(setup(), timeout=WAIT)
    response = stub.Call(call("tick", (1,)), timeout=WAIT)
    assert response.status.code == "SUCCESS"
    assert not response.HasField("methodResponse")


def test_dataframe_result_travels_as_parquet(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    stub = subclass_stub(local_node(classes=[MyTracker]))
    stub.Setup(setup(), timeout=WAIT)
    response = stub.Call(call("frame"), timeout=WAIT)
    assert response.methodResponse.type == VariantType.PARQUET
    pd.testing.assert_frame_equal(decode_variant(response.methodResponse), pd.DataFrame({"x": [1, 2, 3]}))


def test_positional_arguments_sorted_by_position(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    stub = subclass_stub(local_node(classes=[MyTracker]))
    stub.Setup(setup(), timeout=WAIT)
    request = CallRequest(
        methodName="pair",
        methodArguments=[Argument(position=2, data=to_variant("second")), Argument(position=1, data=to_variant("first"))],
    )
    assert decode_variant(stub.Call(request, timeout=WAIT).methodResponse) == ["first", "second"]


def test_undeclared_keywords_are_dropped(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    node = local_node(classes=[MyTracker])
    stub = subclass_stub(node)
    stub.Setup(setup(), timeout=WAIT)
    response = stub.Call(call("tick", ("p",), {"horizon": 3, "added_later": True}), timeout=WAIT)
    assert response.status.code == "SUCCESS", response.status.message
    assert node.instance.horizon == 3
    # a keyword naming a parameter already filled positionally is dropped too
    response = stub.Call(call("tick", ("p", 5), {"horizon": 9}), timeout=WAIT)
    assert response.status.code == "SUCCESS", response.status.message
    assert node.instance.horizon == 5


def test_setup_twice_keeps_the_instance(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    node = local_node(classes=[MyTracker])
    stub = subclass_stub(node)
    stub.Setup(setup(args=(1.0,)), timeout=WAIT)
    first = node.instance
    response = stub.Setup(setup(args=(9.0,)), timeout=WAIT)
    assert (response.status.code, response.status.message) == ("SUCCESS", "Instance already exists")
    assert node.instance is first and first.scale == 1.0


@pytest.mark.parametrize("class_name", ["", "   "])
def test_setup_empty_class_name_is_invalid_argument(
    local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any], class_name: str
) -> None:
    node = local_node(classes=[MyTracker])
    response = subclass_stub(node).Setup(setup(class_name), timeout=WAIT)
    assert response.status.code == "INVALID_ARGUMENT"
    assert node.instance is None


def test_setup_without_subclass_is_bad_implementation(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    response = subclass_stub(local_node(classes=[MyTracker])).Setup(setup("birdgame.NoSuchBase"), timeout=WAIT)
    assert response.status.code == "BAD_IMPLEMENTATION"
    assert "NoSuchBase" in response.status.message


def test_setup_constructor_raising_is_setup_failed(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    node = local_node(classes=[BrokenTracker])
    response = subclass_stub(node).Setup(setup(), timeout=WAIT)
    assert (response.status.code, response.status.message) == ("SETUP_FAILED", "bad constructor")
    assert node.instance is None


def test_call_before_setup_is_failed_precondition(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    response = subclass_stub(local_node(classes=[MyTracker])).Call(call("predict"), timeout=WAIT)
    assert response.status.code == "FAILED_PRECONDITION"


def test_call_empty_method_is_invalid_argument(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    stub = subclass_stub(local_node(classes=[MyTracker]))
    stub.Setup(setup(), timeout=WAIT)
    assert stub.Call(call(""), timeout=WAIT).status.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize("method", ["no_such_method", "not_a_method"])
def test_call_missing_method_is_bad_implementation(
    local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any], method: str
) -> None:
    stub = subclass_stub(local_node(classes=[MyTracker]))
    stub.Setup(setup(), timeout=WAIT)
    response = stub.Call(call(method), timeout=WAIT)
    assert response.status.code == "BAD_IMPLEMENTATION"
    assert method in response.status.message


def test_call_raising_is_model_failed(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    stub = subclass_stub(local_node(classes=[MyTracker]))
    stub.Setup(setup(), timeout=WAIT)
    response = stub.Call(call("fail"), timeout=WAIT)
    assert response.status.code == "MODEL_FAILED"
    assert "participant bug" in response.status.message
    # wrong arity is the model's failure too, not the node's
    assert stub.Call(call("predict", (1, 2, 3)), timeout=WAIT).status.code == "MODEL_FAILED"


def test_rest_drops_the_instance(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    node = local_node(classes=[MyTracker])
    stub = subclass_stub(node)
    assert stub.Rest(Empty(), timeout=WAIT).status.message == "No instance exists to reset"
    stub.Setup(setup(args=(1.0,)), timeout=WAIT)
    stub.Call(call("tick", ("old",)), timeout=WAIT)
    response = stub.Rest(Empty(), timeout=WAIT)
    assert (response.status.code, response.status.message) == ("SUCCESS", "Instance successfully reset")
    assert node.instance is None
    assert stub.Call(call("predict"), timeout=WAIT).status.code == "FAILED_PRECONDITION"
    # a new Setup gets a new instance, and calls reach it (not a method cached from the old one)
    stub.Setup(setup(args=(3.0,)), timeout=WAIT)
    assert decode_variant(stub.Call(call("predict"), timeout=WAIT).methodResponse)["seen"] == []


# -- finding the subclass -------------------------------------------------------


def test_base_matched_by_full_name_before_bare_name(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    node = local_node(classes=[MyTracker, OtherTracker])
    subclass_stub(node).Setup(setup(f"{Outer.__module__}.Outer.TrackerBase"), timeout=WAIT)
    assert type(node.instance) is OtherTracker


@pytest.mark.parametrize("name", ["TrackerBase", "birdgame.trackers.trackerbase.TrackerBase"])
def test_base_matched_by_bare_name(
    local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any], name: str
) -> None:
    node = local_node(classes=[TrackerBase, MyTracker])
    assert subclass_stub(node).Setup(setup(name), timeout=WAIT).status.code == "SUCCESS"
    assert type(node.instance) is MyTracker


def test_code_directory_like_the_reference_node(local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]) -> None:
    node = local_node(code_directory=PARTICIPANT)
    stub = subclass_stub(node)
    assert stub.Setup(setup(TRACKER_BASE, args=(2.0,)), timeout=WAIT).status.code == "SUCCESS"
    assert type(node.instance).__name__ == "MyTracker"
    stub.Call(call("tick", (41,)), timeout=WAIT)
    assert decode_variant(stub.Call(call("predict"), timeout=WAIT).methodResponse)["last"] == 41


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def test_code_directory_skips_broken_modules_and_isolates_same_names(
    local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any], tmp_path: Path
) -> None:
    # same module names as tests/participant, other behaviour: the node must not reuse those modules
    write(tmp_path, {
        "trackers/__init__.py": "",
        "trackers/base.py": "class TrackerBase:\n    pass\n",
        "aaa_broken.py": "raise RuntimeError('cannot import me')\n",
        "my_tracker.py": "from trackers.base import TrackerBase\n\nclass Other(TrackerBase):\n    def who(self):\n        return 'tmp'\n",
    })
    first = local_node(code_directory=PARTICIPANT)  # loads the participant's modules first
    subclass_stub(first).Setup(setup(TRACKER_BASE), timeout=WAIT)
    assert type(first.instance).__name__ == "MyTracker"
    node = local_node(code_directory=tmp_path)
    stub = subclass_stub(node)
    assert stub.Setup(setup(TRACKER_BASE), timeout=WAIT).status.code == "SUCCESS"
    assert decode_variant(stub.Call(call("who"), timeout=WAIT).methodResponse) == "tmp"


@pytest.mark.parametrize(
    ("files", "class_name", "code"),
    [
        ({"only_base.py": "class Base:\n    pass\n"}, "only_base.Base", "BAD_IMPLEMENTATION"),  # no subclass
        ({"x.py": ""}, "missing_package.Base", "BAD_IMPLEMENTATION"),  # base module not importable
        ({"x.py": ""}, "x.Missing", "SETUP_FAILED"),  # the reference node answers ValueError this way
        ({"x.py": ""}, "NoDots", "SETUP_FAILED"),
    ],
)
def test_code_directory_failures(
    local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any], tmp_path: Path,
    files: dict[str, str], class_name: str, code: str,
) -> None:
    node = local_node(code_directory=write(tmp_path, files))
    assert subclass_stub(node).Setup(setup(class_name), timeout=WAIT).status.code == code


# -- one call at a time, health --------------------------------------------------


def holding(started: threading.Event, gate: threading.Event) -> type:
    class HoldingTracker(TrackerBase):
        def hold(self) -> str:
            started.set()
            assert gate.wait(WAIT)
            return "released"

    return HoldingTracker


def test_busy_node_answers_resource_exhausted_and_stays_healthy(
    local_node: Callable[..., LocalModelNode],
    subclass_stub: Callable[..., Any],
    open_channel: Callable[..., grpc.Channel],
    health_of: Callable[[LocalModelNode], int],
    gate: threading.Event,
) -> None:
    started = threading.Event()
    node = local_node(classes=[holding(started, gate)], infer=running_sum)
    stub = subclass_stub(node)
    stub.Setup(setup(), timeout=WAIT)
    held = stub.Call.future(call("hold"), timeout=WAIT)
    assert started.wait(WAIT)

    other = dynamic_subclass_pb2_grpc.DynamicSubclassServiceStub(open_channel(node.address))
    train_infer = train_infer_pb2_grpc.TrainInferStreamServiceStub(open_channel(node.address))
    for attempt in (
        lambda: other.Call(call("hold"), timeout=WAIT),
        lambda: other.Setup(setup(), timeout=WAIT),
        lambda: other.Rest(Empty(), timeout=WAIT),
        lambda: train_infer.Setup(Empty(), timeout=WAIT),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            attempt()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caught.value.details() == "Server busy"
    assert health_of(node) == health_pb2.HealthCheckResponse.SERVING

    gate.set()
    response = held.result(timeout=WAIT)
    assert decode_variant(response.methodResponse) == "released"
    assert other.Call(call("hold"), timeout=WAIT).status.code == "SUCCESS"  # free again


def test_set_serving(local_node: Callable[..., LocalModelNode], health_of: Callable[[LocalModelNode], int]) -> None:
    node = local_node(classes=[MyTracker])
    assert health_of(node) == health_pb2.HealthCheckResponse.SERVING
    node.set_serving(False)
    assert health_of(node) == health_pb2.HealthCheckResponse.NOT_SERVING
    node.set_serving(True)
    assert health_of(node) == health_pb2.HealthCheckResponse.SERVING


# -- TrainInfer ---------------------------------------------------------------------


def infer(stub: Any, value: Any) -> Any:
    return decode_variant(stub.Infer(InferRequest(argument=to_variant(value)), timeout=WAIT).prediction)


@pytest.mark.parametrize("service", ["TrainInferStreamServiceStub", "TrainInferServiceStub"])
def test_infer_and_reinitialize(
    local_node: Callable[..., LocalModelNode], open_channel: Callable[..., grpc.Channel], service: str
) -> None:
    node = local_node(infer=running_sum)
    stub = getattr(train_infer_pb2_grpc, service)(open_channel(node.address))
    stub.Setup(Empty(), timeout=WAIT)
    assert [infer(stub, value) for value in (1, 2, 3.5)] == [1, 3, 6.5]
    stub.Reinitialize(Empty(), timeout=WAIT)
    assert infer(stub, 10) == 10


def test_infer_errors_are_grpc_status_codes(local_node: Callable[..., LocalModelNode], open_channel: Callable[..., grpc.Channel]) -> None:
    node = local_node(infer=running_sum)
    stub = train_infer_pb2_grpc.TrainInferStreamServiceStub(open_channel(node.address))
    for before_setup in (lambda: infer(stub, 1), lambda: stub.Reinitialize(Empty(), timeout=WAIT)):
        with pytest.raises(grpc.RpcError) as caught:
            before_setup()
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    stub.Setup(Empty(), timeout=WAIT)
    assert infer(stub, 5) == 5
    with pytest.raises(grpc.RpcError) as caught:
        infer(stub, "boom")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "cannot add boom"
    assert infer(stub, 1) == 1  # the generator was restarted after the failure


def test_infer_from_main_py(local_node: Callable[..., LocalModelNode], open_channel: Callable[..., grpc.Channel]) -> None:
    node = local_node(code_directory=PARTICIPANT)
    stub = train_infer_pb2_grpc.TrainInferServiceStub(open_channel(node.address))
    stub.Setup(Empty(), timeout=WAIT)
    assert [infer(stub, value) for value in (2, 2)] == [2, 4]


def test_infer_setup_without_main_is_internal(
    local_node: Callable[..., LocalModelNode], open_channel: Callable[..., grpc.Channel], tmp_path: Path
) -> None:
    node = local_node(code_directory=tmp_path)
    stub = train_infer_pb2_grpc.TrainInferServiceStub(open_channel(node.address))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Setup(Empty(), timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "main.py" in caught.value.details()


# -- lifecycle ------------------------------------------------------------------------


@pytest.mark.serial
def test_stop_is_prompt_idempotent_and_joins_threads() -> None:
    before = set(threading.enumerate())
    node = LocalModelNode(classes=[MyTracker])
    try:
        node.start()
        with grpc.insecure_channel(node.address) as channel:
            stub = dynamic_subclass_pb2_grpc.DynamicSubclassServiceStub(channel)
            stub.Setup(setup(), timeout=WAIT)
        assert set(threading.enumerate()) - before, "the node should run threads"
    finally:
        started = time.monotonic()
        node.stop()
        assert time.monotonic() - started < 2.0
    node.stop()
    assert not node.running
    leftover = set(threading.enumerate()) - before
    assert not [thread for thread in leftover if not thread.daemon or thread.name.startswith("local-model-node")]
    for thread in leftover:  # gRPC's own daemon helpers end right after the shutdown they signal
        thread.join(WAIT)
    assert not [thread for thread in leftover if thread.is_alive()]
    with grpc.insecure_channel(node.address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            dynamic_subclass_pb2_grpc.DynamicSubclassServiceStub(channel).Call(call("predict"), timeout=1)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_restart_reuses_the_port_and_forgets_the_instance(
    local_node: Callable[..., LocalModelNode], subclass_stub: Callable[..., Any]
) -> None:
    node = local_node(classes=[MyTracker])
    port = node.port
    stub = subclass_stub(node)
    stub.Setup(setup(), timeout=WAIT)
    node.stop()
    node.start()
    assert node.port == port
    response = stub.Call(call("predict"), timeout=WAIT, wait_for_ready=True)
    assert response.status.code == "FAILED_PRECONDITION"  # a restarted node process has no instance


def test_context_manager() -> None:
    with LocalModelNode(classes=[MyTracker]) as node:
        assert node.running and node.port > 0
        with pytest.raises(RuntimeError):
            node.start()
    assert not node.running


def test_classes_and_code_directory_are_exclusive() -> None:
    with pytest.raises(ValueError):
        LocalModelNode(classes=[MyTracker], code_directory=PARTICIPANT)


def test_tls_port(
    local_node: Callable[..., LocalModelNode], open_channel: Callable[..., grpc.Channel], tls_material: TlsMaterial
) -> None:
    credentials = grpc.ssl_server_credentials([(tls_material.server_key, tls_material.server_cert)])
    node = local_node(classes=[MyTracker], server_credentials=credentials)
    secure = open_channel(
        node.address,
        grpc.ssl_channel_credentials(root_certificates=tls_material.ca_cert),
        (("grpc.ssl_target_name_override", tls_material.server_name),),
    )
    response = dynamic_subclass_pb2_grpc.DynamicSubclassServiceStub(secure).Setup(setup(), timeout=WAIT)
    assert response.status.code == "SUCCESS"

    plain = dynamic_subclass_pb2_grpc.DynamicSubclassServiceStub(open_channel(node.address))
    with pytest.raises(grpc.RpcError) as caught:
        plain.Call(call("predict"), timeout=2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


class SleepyTracker(TrackerBase):
    """A model whose ``predict`` holds its call for up to 30 s, until ``release`` is set."""

    entered = threading.Event()
    release = threading.Event()
    thread: threading.Thread | None = None

    def predict(self) -> int:
        SleepyTracker.thread = threading.current_thread()
        SleepyTracker.entered.set()
        SleepyTracker.release.wait(30.0)
        return 1


@pytest.mark.serial
def test_stop_returns_at_once_while_a_model_sleeps_and_a_restart_is_not_busy(
    subclass_stub: Callable[..., Any],
) -> None:
    SleepyTracker.entered.clear()
    SleepyTracker.release.clear()
    node = LocalModelNode(classes=[SleepyTracker]).start()
    try:
        stub = subclass_stub(node)
        stub.Setup(setup(), timeout=WAIT)
        sleeping = stub.Call.future(call("predict"), timeout=60)
        assert SleepyTracker.entered.wait(WAIT)
        model_thread = SleepyTracker.thread
        assert model_thread is not None
        started = time.monotonic()
        node.stop()
        assert time.monotonic() - started < 1.0, "stop() waited for the sleeping model"
        assert model_thread.daemon, "a model thread left running must not hold the interpreter at exit"
        assert sleeping.exception(WAIT).code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
        node.start()  # the old call still sleeps; the restarted node is not busy with it
        assert stub.Setup(setup(), timeout=WAIT, wait_for_ready=True).status.code == "SUCCESS"
        assert model_thread.is_alive()
    finally:
        SleepyTracker.release.set()
        node.stop()
    model_thread.join(WAIT)
    assert not model_thread.is_alive(), "the model's thread ends once its method returns"


SLEEPY_SCRIPT = '''
import sys
import time

from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator


class Base:
    def predict(self):
        raise NotImplementedError


class Sleepy(Base):
    def predict(self):
        print("sleeping", flush=True)
        time.sleep(30)


with LocalOrchestrator(crunch_id="c") as orchestrator, LocalModelNode(classes=[Base, Sleepy]) as node:
    orchestrator.add_model(host="127.0.0.1", port=node.port)
    with DynamicSubclassModelConcurrentRunner(
        timeout=float(sys.argv[1]), crunch_id="c", host="127.0.0.1", port=orchestrator.port,
        base_classname="Base", report_failure=False,
    ) as runner:
        print(runner.call("predict"), flush=True)
'''


@pytest.mark.parametrize("ending", ["ctrl-c", "the script ends"])
@pytest.mark.serial
@pytest.mark.subprocess
def test_a_script_with_a_sleeping_model_exits_at_once(ending: str, tmp_path: Path) -> None:
    """Ctrl-C mid-round, or the script's end after the round timed out: the process is gone in seconds, not 30."""
    script = tmp_path / "sleepy.py"
    script.write_text(SLEEPY_SCRIPT)
    timeout = "60" if ending == "ctrl-c" else "0.5"
    process = subprocess.Popen([sys.executable, str(script), timeout], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60.0)
        assert ready and process.stdout.readline() == "sleeping\n"
        started = time.monotonic()
        if ending == "ctrl-c":
            process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60.0)
        elapsed = time.monotonic() - started
    finally:
        process.kill()
        process.wait(WAIT)
    assert elapsed < 5.0, f"{elapsed:.1f}s to exit: something waited for the sleeping model"
    assert "Fatal Python error" not in err, err
    if ending == "ctrl-c":  # one traceback: the KeyboardInterrupt's
        assert process.returncode != 0 and err.count("Traceback") == 1 and "KeyboardInterrupt" in err, err
    else:
        assert process.returncode == 0 and "Traceback" not in err and "TIMEOUT" in out, err
