"""A coordinator's mistake never costs a participant: the misuse breaker and serialized rounds, on real nodes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _crunch_kit import Crunch as CrunchKit
from conftest import PARTICIPANT, free_port
from mrclient import (
    Args,
    DynamicSubclassModelConcurrentRunner,
    EmptyCrunchWarning,
    InvalidCoordinatorUsageError,
    ModelPredictResult,
    MrclientError,
)
from mrclient.cluster.misuse import SETUP_FAILED, coordinator_mistake, names_missing_class
from mrclient.runners.base import CallOutcome, ErrorType
from mrclient.testing import LocalModelNode, LocalOrchestrator

WAIT = 10.0
QUIET = 0.3
SUCCESS = ModelPredictResult.Status.SUCCESS


class Base:
    """The participants' base class."""


class Model(Base):
    def predict(self) -> str:
        return "ok"

    def busy(self, seconds: float) -> str:
        threading.Event().wait(seconds)  # the model's own work
        return "done"


class Crunch(CrunchKit):
    """The kit, with this file's helpers."""

    def add_models(self, count: int) -> None:
        for _ in range(count):
            self.add(Model)

    def no_report(self) -> bool:
        return not self.orchestrator.wait_for_reports(1, QUIET)


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[Crunch]:
    with Crunch.running("mistakes", local_node, Base, base_classname=f"{__name__}.Base") as kit:
        yield kit


@pytest.mark.parametrize("models", [1, 3])
def test_a_typo_in_the_method_name_raises_and_costs_nobody_anything(crunch: Crunch, models: int) -> None:
    crunch.add_models(models)
    runner = crunch.runner()
    assert runner.wait_for_models(models, WAIT)
    table = runner.models

    with pytest.raises(InvalidCoordinatorUsageError) as raised:
        runner.call("predcit")
    message = str(raised.value)
    assert "method 'predcit'" in message and 'Method "predcit" not found' in message

    assert runner.models == table
    assert all(model.consecutive_failures == 0 and not model.closed for model in table)
    assert crunch.no_report()
    assert {result.status for result in runner.call("predict").values()} == {SUCCESS}


@pytest.mark.parametrize("models", [1, 3])
def test_a_typo_in_the_base_class_raises_at_init_and_reports_nobody(crunch: Crunch, models: int) -> None:
    crunch.add_models(models)
    runner = crunch.runner(init=False, base_classname=f"{__name__}.Bsae")
    with pytest.raises(InvalidCoordinatorUsageError) as raised:
        runner.init(timeout=WAIT)
    message = str(raised.value)
    assert "BAD_IMPLEMENTATION for the setup" in message and f"{__name__}.Bsae" in message
    assert crunch.no_report()


# -- a failed Setup: the coordinator's base class, or a participant's constructor ----------------

BASE = "trackers.base.TrackerBase"
BSAE = "trackers.base.TrackerBsae"


def setup_failed(message: str, base: str = BASE) -> CallOutcome:
    """A Setup the node answered SETUP_FAILED, as the runner records it."""
    return CallOutcome(error=ErrorType.FAILED, detail=f"setup of {base!r} answered SETUP_FAILED: {message}", code=SETUP_FAILED)


TYPO = setup_failed("Class 'TrackerBsae' not found in module 'trackers.base'.", BSAE)
RAISED = setup_failed("the tracker needs a window")
RAISED_OTHER = setup_failed("could not open weights.pkl")
SILENT = CallOutcome(error=ErrorType.TIMEOUT, detail="DEADLINE_EXCEEDED")
UNREACHABLE = CallOutcome(error=ErrorType.GRPC_CONNECTION_FAILED, detail="no connection")


@pytest.mark.parametrize(
    "outcomes, called, setup_class, mistake",
    [
        ([TYPO, TYPO, TYPO], 3, BSAE, "the model nodes cannot find the base class 'trackers.base.TrackerBsae'"),
        ([TYPO], 1, BSAE, "the model nodes cannot find the base class"),  # the only model
        ([TYPO, SILENT, UNREACHABLE], 3, BSAE, "the model nodes cannot find"),  # its own class named: one answer is enough
        ([TYPO, CallOutcome()], 2, BSAE, None),  # a model that was set up rules it out
        ([TYPO, TYPO], 2, None, "every model failed the setup with the same message"),  # same words from two
        ([RAISED], 1, BASE, None),  # the only model's constructor raised: the participant's, as far as anyone can tell
        ([RAISED, SILENT, SILENT], 3, BASE, None),
        ([RAISED, RAISED_OTHER], 2, BASE, None),  # constructors raising, each its own way
        ([RAISED, RAISED], 2, BASE, "every model failed the setup with the same message"),  # e.g. bad instance arguments
        ([TYPO, RAISED], 2, BSAE, None),  # not the same words
        ([setup_failed("Class 'Helper' not found in module 'my_tracker'.")], 1, BASE, None),  # names another class
    ],
)
def test_a_failed_setup_is_the_coordinators_only_when_every_node_says_the_same_or_names_its_class(
    outcomes: list[CallOutcome], called: int, setup_class: str | None, mistake: str | None
) -> None:
    found = coordinator_mistake(outcomes, called, "the setup", setup_class=setup_class)
    if mistake is None:
        assert found is None
    else:
        assert found is not None and found.startswith(mistake) and found.endswith(f"the node said: {outcomes[0].detail}")


@pytest.mark.parametrize(
    "message, setup_class, names_it",
    [
        ("Class 'TrackerBsae' not found in module 'trackers.base'.", BSAE, True),
        ("Object 'TrackerBase' in module 'trackers.base' is not a class.", BASE, True),
        ("Invalid class name 'TrackerBase'. Use 'module.ClassName' format.", "TrackerBase", True),
        ("Class 'TrackerBsae' not found in module 'trackers.base'.", BASE, False),  # not the class we asked for
        ("Class 'Helper' not found in module 'trackers.base'.", BSAE, False),
        ("the tracker needs a window", BASE, False),
        ("Class 'TrackerBsae' not found in module 'trackers.base'.", None, False),
        (None, BASE, False),
    ],
)
def test_a_message_names_the_coordinators_class_as_missing_only_by_its_full_name(
    message: str | None, setup_class: str | None, names_it: bool
) -> None:
    assert names_missing_class(message, setup_class) is names_it


@pytest.mark.parametrize("models", [1, 3])
def test_a_class_typo_with_the_module_right_raises_at_init_and_reports_nobody(
    crunch: Crunch, local_node: Callable[..., LocalModelNode], models: int
) -> None:
    for _ in range(models):  # nodes that load the participant's code as the reference node does
        crunch.orchestrator.add_model(port=local_node(code_directory=PARTICIPANT).port)
    runner = crunch.runner(init=False, base_classname=BSAE)
    for _ in range(2):  # a retried init() judges afresh, and says the same
        with pytest.raises(InvalidCoordinatorUsageError) as raised:
            runner.init(timeout=WAIT)
        message = str(raised.value)
        assert message.startswith(f"the model nodes cannot find the base class {BSAE!r}: is base_classname right")
        assert "SETUP_FAILED: Class 'TrackerBsae' not found in module 'trackers.base'." in message
    assert crunch.no_report()


class RaisesOnInit(Base):
    def __init__(self) -> None:
        raise ValueError(f"{type(self).__name__} needs a window")


class AlsoRaisesOnInit(RaisesOnInit):
    pass


def test_constructors_that_raise_are_still_reported(crunch: Crunch, local_node: Callable[..., LocalModelNode]) -> None:
    raising = {
        crunch.orchestrator.add_model(port=local_node(classes=[Base, cls]).port): cls.__name__
        for cls in (RaisesOnInit, AlsoRaisesOnInit)
    }
    crunch.add_models(1)
    runner = crunch.runner()
    assert len(runner.models) == 1
    assert crunch.orchestrator.wait_for_reports(2, WAIT)
    reports = {r["model_id"]: (r["failure_code"], r["failure_reason"]) for r in crunch.orchestrator.reports}
    assert reports == {
        model_id: ("MULTIPLE_FAILED", f"setup of '{__name__}.Base' answered SETUP_FAILED: {name} needs a window")
        for model_id, name in raising.items()
    }


def test_the_only_models_constructor_that_raises_is_reported(crunch: Crunch, local_node: Callable[..., LocalModelNode]) -> None:
    model_id = crunch.orchestrator.add_model(port=local_node(classes=[Base, RaisesOnInit]).port)
    runner = crunch.runner()
    assert runner.models == []
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert [(r["model_id"], r["failure_code"]) for r in crunch.orchestrator.reports] == [(model_id, "MULTIPLE_FAILED")]


def test_two_threads_calling_at_once_take_turns(crunch: Crunch) -> None:
    crunch.add_models(3)
    runner = crunch.runner()
    assert runner.wait_for_models(3, WAIT)
    results: list[dict[Any, ModelPredictResult]] = []
    start = threading.Barrier(2)

    def round_() -> None:
        start.wait(WAIT)
        results.append(runner.call("busy", args=[0.2]))

    threads = [threading.Thread(target=round_) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(results) == 2
    # Each node serves one call at a time: overlapping rounds would get "Server busy" TIMEOUTs.
    assert [{result.status for result in round_results.values()} for round_results in results] == [{SUCCESS}] * 2


# -- checks at the door ------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, None, "5", float("nan")])
def test_a_bad_timeout_is_refused_at_once_everywhere(crunch: Crunch, timeout: Any) -> None:
    with pytest.raises(InvalidCoordinatorUsageError, match=r"^timeout must be"):
        crunch.runner(init=False, timeout=timeout)
    crunch.add_models(1)
    runner = crunch.runner()
    if timeout is not None:  # None means "the runner's default" in a call
        with pytest.raises(InvalidCoordinatorUsageError, match=r"^timeout must be"):
            runner.call("predict", timeout=timeout)
        with pytest.raises(InvalidCoordinatorUsageError, match=r"^timeout must be"):
            runner.init(timeout=timeout)
    assert crunch.no_report()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"host": "ws://127.0.0.1:8000/mistakes"}, "host must be the host only, not a URL"),
        ({"host": "127.0.0.1:8000"}, "pass the port separately"),
        ({"port": "eighty"}, "port must be a TCP port number"),
        ({"crunch_id": ""}, "crunch_id must be"),
        ({"max_consecutive_failures": -1}, "max_consecutive_failures must be an integer, 0 or more"),
        ({"max_consecutive_timeouts": 1.5}, "max_consecutive_timeouts must be an integer, 0 or more"),
        ({"init_timeout": 0}, "init_timeout must be a positive"),
    ],
)
def test_bad_constructor_arguments_are_named(crunch: Crunch, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCoordinatorUsageError, match=message):
        crunch.runner(init=False, **options)


def test_a_port_read_from_the_environment_is_accepted(crunch: Crunch) -> None:
    crunch.add_models(1)
    runner = crunch.runner(port=str(crunch.orchestrator.port))
    assert runner.port == crunch.orchestrator.port and runner.wait_for_models(1, WAIT)


def test_calls_before_init_and_after_close_are_refused(crunch: Crunch) -> None:
    crunch.add_models(1)
    runner = crunch.runner(init=False)
    with pytest.raises(InvalidCoordinatorUsageError, match=r"call init\(\) first"):
        runner.call("predict")
    runner.init(timeout=WAIT)
    runner.close()
    with pytest.raises(MrclientError, match="the runner is closed"):
        runner.call("predict")
    with pytest.raises(MrclientError, match="the runner is closed"):
        runner.init()


@pytest.mark.parametrize(
    "call, message",
    [
        (dict(arguments=[1, 2, 3]), r"arguments must be \(args, kwargs\)"),
        (dict(arguments=([1], [])), r"arguments must be \(args, kwargs\), two lists of Argument"),
        (dict(arguments=lambda model: "oops"), r"arguments\(<DynamicSubclassModelRunner .*\) must be \(args, kwargs\)"),
        (dict(args=[1, object()]), r"^args: argument 2: cannot encode a value of type object"),
        (dict(kwargs={"when": {1, 2}}), r"^kwargs: keyword 'when': cannot encode a value of type set"),
        (dict(args="abc"), "^args: positional arguments must be a list or tuple"),
        (dict(args=5), "^args: positional arguments must be a list or tuple, got int"),
        (dict(kwargs=[1]), "^kwargs: keyword arguments must be a mapping or KwArgument items, got int"),
    ],
)
def test_bad_arguments_are_named_before_any_model_is_called(crunch: Crunch, call: dict[str, Any], message: str) -> None:
    crunch.add_models(2)
    runner = crunch.runner()
    assert runner.wait_for_models(2, WAIT)
    with pytest.raises(InvalidCoordinatorUsageError, match=message):
        runner.call("predict", **call)
    assert crunch.no_report()


class Counted(Base):
    """Counts its calls, so a test sees that a refused round called nobody."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self) -> str:
        self.calls += 1
        return "ok"


def test_model_runs_takes_runners_and_model_ids_each_once(crunch: Crunch, caplog: pytest.LogCaptureFixture) -> None:
    first, second, third = (crunch.add(Counted, name) for name in ("first", "second", "third"))
    runner = crunch.runner(3)
    by_id = {model.model_id: model for model in runner.models}
    roster = runner.joined_since_last()

    results = runner.call("predict", model_runs=[first, by_id[second], first, by_id[first]])
    assert [model.model_id for model in results] == [first, second], "in the order given, each once"
    assert {result.status for result in results.values()} == {SUCCESS}
    with caplog.at_level(logging.WARNING, logger="mrclient"):
        results = runner.call("predict", model_runs=[third, "model-that-left"])
    assert [model.model_id for model in results] == [third]
    assert "1 model id(s) name no ready model" in caplog.text and "'model-that-left'" in caplog.text
    assert len(runner.call("predict", model_runs=roster.joined)) == 3
    assert len(runner.call("predict", model_runs=results)) == 1, "a round's results name their runners"
    assert [crunch.nodes[model_id].instance.calls for model_id in (first, second, third)] == [2, 2, 3]
    mapped = [list(results) for results in runner.map("predict", [Args(), Args()], model_runs=[second, by_id[third]])]
    assert [[model.model_id for model in models] for models in mapped] == [[second, third]] * 2, "a map takes them too"
    assert [crunch.nodes[model_id].instance.calls for model_id in (first, second, third)] == [2, 4, 5]


def test_a_bad_model_runs_is_named_and_calls_nobody(crunch: Crunch) -> None:
    model_id = crunch.add(Counted)
    runner, other_client = crunch.runner(1), crunch.runner(1)
    [model] = runner.models
    bad = {
        "model-1": r"model_runs must be a list of model runners .* not one string: model_runs=\['model-1'\]",
        model: r"not one runner: model_runs=\[runner\]",
        runner.joined_since_last(): "model_runs takes roster.models or roster.joined, not the roster itself",
        5: r"model_runs must be a list of model runners .*, got int 5",
    }
    for value, message in bad.items():
        with pytest.raises(InvalidCoordinatorUsageError, match=message):
            runner.call("predict", model_runs=value)
    for items, message in [
        ([None], r"model_runs\[0\] is NoneType None in model_runs=\[None\]"),
        ([model, 3.5], r"model_runs\[1\] is float 3.5"),
        (other_client.models, r"model_runs\[0\] is <DynamicSubclassModelRunner .*>, which this runner did not make"),
    ]:
        with pytest.raises(InvalidCoordinatorUsageError, match=message):
            runner.call("predict", model_runs=items)
        with pytest.raises(InvalidCoordinatorUsageError, match=message):
            runner.map("predict", [Args()], model_runs=items)  # when map() is called, before its first input
    assert crunch.nodes[model_id].instance.calls == 0
    assert crunch.no_report()


# -- sizes and extras are the coordinator's business --------------------------------------------


class Sizes(Base):
    def __init__(self) -> None:
        self.calls = 0

    def take(self, value: Any) -> None:
        self.calls += 1

    def huge(self) -> str:
        return "x" * (65 * 2**20)

    def frame(self) -> Any:
        import pandas

        return pandas.DataFrame({"location": [1.5, 2.5]})


def test_an_oversize_argument_is_refused_before_any_model_is_called(
    crunch: Crunch, local_node: Callable[..., LocalModelNode]
) -> None:
    node = local_node(classes=[Base, Sizes])
    crunch.orchestrator.add_model(port=node.port)
    runner = crunch.runner()
    with pytest.raises(InvalidCoordinatorUsageError, match=r"is 65\.0 MiB, over the 64 MiB a model node accepts"):
        runner.call("take", args=["x" * (65 * 2**20)])
    assert node.instance.calls == 0
    runner.call("take", args=["small"])
    assert node.instance.calls == 1


def test_an_oversize_result_costs_the_model_nothing(crunch: Crunch, local_node: Callable[..., LocalModelNode]) -> None:
    node = local_node(classes=[Base, Sizes])
    crunch.orchestrator.add_model(port=node.port)
    runner = crunch.runner(max_consecutive_failures=1)
    for _ in range(3):
        (result,) = runner.call("huge").values()
        assert result.status is ModelPredictResult.Status.FAILED
        assert result.detail is not None and result.detail.startswith("RESULT_TOO_LARGE: ")
    (model,) = runner.models
    assert model.consecutive_failures == 0 and model.consecutive_timeouts == 0
    assert crunch.no_report()


@pytest.mark.subprocess
def test_a_parquet_result_without_pandas_costs_the_model_nothing(
    crunch: Crunch, local_node: Callable[..., LocalModelNode], tmp_path: Path
) -> None:
    node = local_node(classes=[Base, Sizes])
    crunch.orchestrator.add_model(port=node.port)
    script = f"""
import json, logging, sys
sys.modules["pandas"] = sys.modules["pyarrow"] = None  # a coordinator without the parquet extra
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from mrclient import DynamicSubclassModelConcurrentRunner
with DynamicSubclassModelConcurrentRunner(
    timeout=10, crunch_id="{crunch.orchestrator.crunch_id}", host="127.0.0.1", port={crunch.orchestrator.port},
    base_classname="{__name__}.Base", max_consecutive_failures=1,
) as runner:
    rounds = [[(r.status.name, r.detail) for r in runner.call("frame").values()] for _ in range(3)]
    print(json.dumps({{"rounds": rounds, "failures": [m.consecutive_failures for m in runner.models]}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["failures"] == [0]
    for (status, detail), in seen["rounds"]:
        assert status == "FAILED" and detail.startswith("MISSING_EXTRA: ") and "pip install '.[parquet]'" in detail
    assert done.stderr.count("no penalty") == 3, done.stderr  # one clear line per round
    assert crunch.no_report()


# -- init() tells what it waits for ------------------------------------------------------------


@pytest.mark.serial
def test_init_returns_once_every_model_joined_or_failed_its_first_attempt(
    crunch: Crunch, caplog: pytest.LogCaptureFixture
) -> None:
    crunch.add_models(30)
    dead = crunch.orchestrator.add_model(port=free_port())
    caplog.set_level(logging.INFO, logger="mrclient.cluster.table")
    runner = crunch.runner(init=False, retry_backoff_factor=0.2)  # the dead one retries for ~3 s
    started = time.monotonic()
    runner.init(timeout=30)
    assert time.monotonic() - started < 3.0
    assert len(runner.models) == 30
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("init of mistakes: ")]
    assert progress and "30 of 31 models ready, 0 setting up, 1 retrying: 127.0.0.1:" in progress[-1]

    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert not crunch.orchestrator.wait_for_reports(2, QUIET)  # once
    assert [(r["model_id"], r["failure_code"]) for r in crunch.orchestrator.reports] == [(dead, "CONNECTION_FAILED")]


def test_init_warns_when_the_crunch_has_no_models(crunch: Crunch, caplog: pytest.LogCaptureFixture) -> None:
    runner = crunch.runner(init=False, crunch_id="mistakse")  # a typo: this orchestrator knows no such crunch
    with pytest.warns(EmptyCrunchWarning, match="'mistakse': is the crunch id right"):
        runner.init(timeout=WAIT)
    assert runner.models == []
    assert "no models for crunch 'mistakse': is the crunch id right?" in caplog.text


def test_a_with_block_waits_for_the_orchestrator_no_longer_than_init_timeout() -> None:
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=5, crunch_id="mistakes", host="127.0.0.1", port=free_port(), base_classname="a.B", init_timeout=1.5
    )  # nobody listens on that port
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionError), runner:
            pytest.fail("the with block must not be entered without an orchestrator")
    finally:
        runner.close()
    assert time.monotonic() - started < 15  # the default init_timeout is 60 s


def test_an_orchestrator_that_refuses_the_crunch_is_shown_not_retried_until_the_timeout() -> None:
    with LocalOrchestrator(crunch_id="mistakes", refuse_unknown_crunch=True) as orchestrator:
        runner = DynamicSubclassModelConcurrentRunner(
            timeout=5, crunch_id="mistakse", host="127.0.0.1", port=orchestrator.port, base_classname="a.B"
        )
        started = time.monotonic()
        try:
            with pytest.raises(ConnectionError, match="refused the connection 3 times: .*unknown crunch 'mistakse'"):
                runner.init(timeout=60)
        finally:
            runner.close()
        assert time.monotonic() - started < 30
