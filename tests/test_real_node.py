"""Wire compatibility with the reference model node (``model-runner`` from crunch-model-runner 0.4.2).

Our generated stubs and codec against the real server, in its own process and
virtualenv: the first run builds that virtualenv (a one-time cost).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import grpc
import pandas as pd
import pytest
from google.protobuf.empty_pb2 import Empty
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import TRACKER_BASE, RealNode
from mrclient.wire.codec import decode_variant, to_arguments, to_kw_arguments
from mrclient.wire.proto import dynamic_subclass_pb2_grpc
from mrclient.wire.proto.commons_pb2 import Argument, Variant, VariantType
from mrclient.wire.proto.dynamic_subclass_pb2 import CallRequest, SetupRequest

# the timeout covers building the model-runner virtualenv on a first run; every test starts the reference node
pytestmark = [pytest.mark.timeout(900), pytest.mark.subprocess]

WAIT = 30.0


@pytest.fixture
def stub(real_model_node: RealNode, open_channel: Callable[..., grpc.Channel]) -> Any:
    return dynamic_subclass_pb2_grpc.DynamicSubclassServiceStub(open_channel(f"127.0.0.1:{real_model_node.port}"))


def call(stub: Any, method: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None) -> Any:
    request = CallRequest(methodName=method, methodArguments=to_arguments(args), methodKwArguments=to_kw_arguments(kwargs))
    return stub.Call(request, timeout=WAIT)


def test_setup_and_call(stub: Any) -> None:
    response = stub.Setup(
        SetupRequest(className=TRACKER_BASE, instanceArguments=to_arguments([2.5])), timeout=WAIT
    )
    assert (response.status.code, response.status.message) == ("SUCCESS", "Instance created successfully")

    payload = {"bird": "é🐦", "x": [1.5, None, True], "n": 2**40}
    response = call(stub, "tick", [payload], {"horizon": 3, "added_later": "ignored"})
    assert response.status.code == "SUCCESS", response.status.message
    assert not response.HasField("methodResponse")  # tick returns None

    response = call(stub, "predict")
    assert response.status.code == "SUCCESS", response.status.message
    assert response.methodResponse.type == VariantType.JSON
    assert decode_variant(response.methodResponse) == {"last": payload, "ticks": 1, "scale": 2.5, "horizon": 3}


def test_values_cross_both_codecs(stub: Any) -> None:
    """Our encoding decoded by the node, the node's encoding decoded by us (one node for all values)."""
    stub.Setup(SetupRequest(className=TRACKER_BASE), timeout=WAIT)
    for value, variant_type in [
        (7, VariantType.INT),
        (-(2**63), VariantType.INT),
        (2**63 - 1, VariantType.INT),
        (-2.25, VariantType.DOUBLE),
        (float("inf"), VariantType.DOUBLE),
        ("ünï 🐦", VariantType.STRING),
        ([1, "a", None], VariantType.JSON),
        ({"nested": {"list": [1.5, True]}}, VariantType.JSON),
    ]:
        response = call(stub, "echo", [value])
        assert response.status.code == "SUCCESS", (value, response.status.message)
        assert response.methodResponse.type == variant_type, value
        assert decode_variant(response.methodResponse) == value


def test_dataframe_crosses_both_codecs(stub: Any) -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5], "n": [1, 2], "s": ["a", "b"]})
    stub.Setup(SetupRequest(className=TRACKER_BASE), timeout=WAIT)
    response = call(stub, "echo", [frame])
    assert response.status.code == "SUCCESS", response.status.message
    assert response.methodResponse.type == VariantType.PARQUET
    pd.testing.assert_frame_equal(decode_variant(response.methodResponse), frame, check_dtype=False)


def test_reference_node_quirks(stub: Any) -> None:
    """Facts coordinators meet: a bool result comes back as INT; None as no response."""
    stub.Setup(SetupRequest(className=TRACKER_BASE), timeout=WAIT)
    response = call(stub, "echo", [True])
    assert (response.methodResponse.type, decode_variant(response.methodResponse)) == (VariantType.INT, 1)
    response = call(stub, "echo", [None])  # sent as JSON null by to_variant...
    assert response.status.code == "SUCCESS" and not response.HasField("methodResponse")
    none = CallRequest(methodName="echo", methodArguments=[Argument(position=1, data=Variant(type=VariantType.NONE))])
    assert stub.Call(none, timeout=WAIT).status.code == "MODEL_FAILED"  # ...because the node cannot decode NONE


def test_one_call_at_a_time_and_health_while_busy(
    real_model_node: RealNode, stub: Any, open_channel: Callable[..., grpc.Channel]
) -> None:
    stub.Setup(SetupRequest(className=TRACKER_BASE), timeout=WAIT)
    with socket.create_server(("127.0.0.1", 0)) as gate:
        gate.settimeout(WAIT)
        held = stub.Call.future(
            CallRequest(methodName="hold", methodArguments=to_arguments([gate.getsockname()[1]])), timeout=WAIT
        )
        connection, _ = gate.accept()  # the model is now inside `hold`
        with connection:
            with pytest.raises(grpc.RpcError) as caught:
                call(stub, "predict")
            assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "Server busy")
            health = health_pb2_grpc.HealthStub(open_channel(f"127.0.0.1:{real_model_node.port}"))
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            connection.sendall(b"released")
            assert decode_variant(held.result(timeout=WAIT).methodResponse) == "released"
    assert call(stub, "predict").status.code == "SUCCESS"


def test_status_codes(stub: Any) -> None:
    assert call(stub, "predict").status.code == "FAILED_PRECONDITION"
    assert stub.Setup(SetupRequest(className=" "), timeout=WAIT).status.code == "INVALID_ARGUMENT"
    assert stub.Setup(SetupRequest(className="nowhere.Base"), timeout=WAIT).status.code == "BAD_IMPLEMENTATION"
    assert stub.Setup(SetupRequest(className=TRACKER_BASE), timeout=WAIT).status.code == "SUCCESS"
    assert stub.Setup(SetupRequest(className=TRACKER_BASE), timeout=WAIT).status.message == "Instance already exists"
    assert call(stub, "").status.code == "INVALID_ARGUMENT"
    assert call(stub, "no_such_method").status.code == "BAD_IMPLEMENTATION"
    response = call(stub, "fail")
    assert (response.status.code, response.status.message) == ("MODEL_FAILED", "The model raised an exception: participant bug")
    assert stub.Rest(Empty(), timeout=WAIT).status.message == "Instance successfully reset"
    assert call(stub, "predict").status.code == "FAILED_PRECONDITION"


def test_dynamic_subclass_runner_against_the_real_node(real_model_node: RealNode) -> None:
    """Our runner, not just our stubs: Setup with instance arguments, calls, every outcome."""
    from mrclient import DynamicSubclassModelRunner, InvalidCoordinatorUsageError, ModelRunner

    runner = DynamicSubclassModelRunner(
        base_classname=TRACKER_BASE, instance_kwargs={"scale": 0.5},
        deployment_id="d", model_id="m", model_name="real", ip="127.0.0.1", port=real_model_node.port,
        retry_backoff_factor=0.05,
    )
    try:
        assert runner.init() == (True, None)
        assert runner.health() is True
        arguments = (to_arguments([{"x": 1}]), to_kw_arguments({"horizon": 2, "not_in_signature": 1}))
        assert runner.call("tick", arguments, timeout=WAIT) == (None, None)
        assert runner.call("predict", timeout=WAIT) == ({"last": {"x": 1}, "ticks": 1, "scale": 0.5, "horizon": 2}, None)
        assert runner.call("fail", timeout=WAIT) == (None, ModelRunner.ErrorType.FAILED)
        assert runner.call("absent", timeout=WAIT) == (None, ModelRunner.ErrorType.BAD_IMPLEMENTATION)
        with pytest.raises(InvalidCoordinatorUsageError):
            runner.call("", timeout=WAIT)
    finally:
        runner.close()


# -- a failed Setup on the real node: the coordinator's class typo, or the participant's constructor --------


def test_a_class_typo_on_the_real_node_is_the_coordinators_mistake_and_nobody_is_reported(
    real_nodes: Callable[..., RealNode],
) -> None:
    """The module right, the class misspelt: every node answers SETUP_FAILED naming the class; init raises."""
    from mrclient import DynamicSubclassModelConcurrentRunner, InvalidCoordinatorUsageError
    from mrclient.testing import LocalOrchestrator

    nodes = [real_nodes(), real_nodes()]
    with LocalOrchestrator(crunch_id="real") as orchestrator:
        for node in nodes:
            orchestrator.add_model(port=node.port)
        runner = DynamicSubclassModelConcurrentRunner(
            timeout=WAIT, crunch_id="real", host="127.0.0.1", port=orchestrator.port,
            base_classname="trackers.base.TrackerBsae", retry_backoff_factor=0.05,
        )
        try:
            with pytest.raises(InvalidCoordinatorUsageError) as raised:
                runner.init(timeout=WAIT)
        finally:
            runner.close()
        message = str(raised.value)
        assert message.startswith("the model nodes cannot find the base class 'trackers.base.TrackerBsae'")
        assert "answered SETUP_FAILED: Class 'TrackerBsae' not found in module 'trackers.base'." in message
        assert not orchestrator.wait_for_reports(1, 0.5)


def test_a_constructor_that_raises_on_the_real_node_is_still_reported(real_model_node: RealNode) -> None:
    from mrclient import DynamicSubclassModelConcurrentRunner
    from mrclient.testing import LocalOrchestrator

    with LocalOrchestrator(crunch_id="real") as orchestrator:
        model_id = orchestrator.add_model(port=real_model_node.port)
        runner = DynamicSubclassModelConcurrentRunner(
            timeout=WAIT, crunch_id="real", host="127.0.0.1", port=orchestrator.port, base_classname=TRACKER_BASE,
            instance_kwargs={"window": 3}, retry_backoff_factor=0.05,  # MyTracker.__init__ takes no window: it raises
        )
        try:
            runner.init(timeout=WAIT)
            assert runner.models == []
            assert orchestrator.wait_for_reports(1, WAIT)
        finally:
            runner.close()
        [report] = orchestrator.reports
        assert (report["model_id"], report["failure_code"]) == (model_id, "MULTIPLE_FAILED")
        assert "answered SETUP_FAILED: " in report["failure_reason"] and "'window'" in report["failure_reason"]
