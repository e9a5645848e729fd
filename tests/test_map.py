"""``runner.map``: many inputs, each model working through them alone, one ``RoundResults`` per input, in order.

Against LocalModelNodes on loopback (the reference node's behaviour: one call
at a time, ``RESOURCE_EXHAUSTED`` otherwise, which ``busy_refusals`` counts);
the same busy-node case against the real node is in tests/test_map_real_node.py.
Models pace themselves with waits on an event the fixture sets at teardown,
so no model call outlives its test; the deadlines are short, the bounds generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _crunch_kit import Crunch
from conftest import client_threads_since
from mrclient import (
    Args,
    Argument,
    DynamicSubclassModelConcurrentRunner,
    InvalidCoordinatorUsageError,
    ModelPredictResult,
    ModelRunner,
    MrclientError,
    RoundResults,
    RoundSummary,
    TrainInferModelConcurrentRunner,
    Variant,
    VariantType,
    encode_data,
)
from mrclient.aio import AsyncRunner
from mrclient.concurrent.maps import DEFAULT_WINDOW
from mrclient.testing import LocalModelNode, LocalOrchestrator

SUCCESS = ModelPredictResult.Status.SUCCESS
FAILED = ModelPredictResult.Status.FAILED
TIMEOUT = ModelPredictResult.Status.TIMEOUT
WAIT = 10.0  # bound of every wait for something the background threads do

#: Set at teardown: every model wait below ends then, so no call outlives its test.
RELEASE = threading.Event()


class MapBase:
    """The base class the test models extend."""


class Echo(MapBase):
    """Echoes its input after ``pace`` seconds; ``delays`` gives some inputs another time. It records its calls."""

    pace = 0.0
    delays: dict[int, float] = {}

    def __init__(self) -> None:
        self.calls: list[int] = []

    def echo(self, value: Any, tag: Any = None) -> Any:
        self.calls.append(value)
        delay = self.delays.get(value, self.pace) if isinstance(value, int) else 0.0
        if delay:
            RELEASE.wait(delay)  # the model's work: `delay` seconds
        return {"value": value, "tag": tag}


class Paced(Echo):
    pace = 0.06


class StuckOnThree(Paced):
    """Input 3 takes twice the deadline (0.3 s in the test below); the rest, the pace."""

    delays = {3: 0.6}


class Failing(Echo):
    def echo(self, value: Any, tag: Any = None) -> Any:
        raise RuntimeError("boom")


class Holding(Echo):
    """Input 1 holds until the test releases it."""

    started = threading.Event()

    def echo(self, value: Any, tag: Any = None) -> Any:
        if value == 1:
            Holding.started.set()
            RELEASE.wait(WAIT)
        return super().echo(value, tag)


class Waiting(Echo):
    """Input 0 waits until the other model has answered input 5: proof that it runs ahead alone."""

    reached_five = threading.Event()

    def echo(self, value: Any, tag: Any = None) -> Any:
        if value == 0:
            return {"value": value, "tag": Waiting.reached_five.wait(WAIT / 2)}
        return super().echo(value, tag)


class Racing(Echo):
    def echo(self, value: Any, tag: Any = None) -> Any:
        if value == 5:
            Waiting.reached_five.set()
        return super().echo(value, tag)


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[Crunch]:
    RELEASE.clear()
    Holding.started.clear()
    Waiting.reached_five.clear()
    with Crunch.running("map", local_node, MapBase, releases=(RELEASE,)) as kit:
        yield kit


def by_name(results: dict[ModelRunner, ModelPredictResult]) -> dict[str, ModelPredictResult]:
    return {runner.model_name or "": result for runner, result in results.items()}


def echoed(result: ModelPredictResult) -> Any:
    assert result.status is SUCCESS, result
    return result.result["value"]


def json_argument(position: int, value: Any) -> Argument:
    return Argument(position=position, data=Variant(type=VariantType.JSON, value=encode_data(VariantType.JSON, value)))


# -- order, forms, independence ----------------------------------------------------------------


def test_results_come_in_input_order_each_matching_its_input(crunch: Crunch) -> None:
    class Even(Echo):
        delays = {i: 0.02 for i in range(0, 30, 2)}  # slow on even inputs

    class Odd(Echo):
        delays = {i: 0.02 for i in range(1, 30, 2)}  # slow on odd ones: the two are never in step

    crunch.add(Even, name="even")
    crunch.add(Odd, name="odd")
    runner = crunch.runner(2)
    seen = [
        {name: echoed(result) for name, result in by_name(results).items()}
        for results in runner.map("echo", (Args(i) for i in range(30)))
    ]
    assert seen == [{"even": i, "odd": i} for i in range(30)]


def test_every_argument_form_is_one_input(crunch: Crunch) -> None:
    crunch.add(Echo, name="a")
    crunch.add(Echo, name="b")
    runner = crunch.runner(2)
    inputs = [
        Args(0, tag="plain"),
        ([json_argument(1, 1)], []),  # protobuf lists
        lambda model: Args(2, tag=model.model_name),  # per model, plain values
        lambda model: ([json_argument(1, 3)], []),  # per model, protobuf lists
    ]
    rows = [by_name(results) for results in runner.map("echo", inputs)]
    assert [[row[name].result for name in ("a", "b")] for row in rows] == [
        [{"value": 0, "tag": "plain"}] * 2,
        [{"value": 1, "tag": None}] * 2,
        [{"value": 2, "tag": "a"}, {"value": 2, "tag": "b"}],
        [{"value": 3, "tag": None}] * 2,
    ]
    # call() takes Args too
    assert [r.result for r in runner.call("echo", arguments=Args(9, tag="t")).values()] == [{"value": 9, "tag": "t"}] * 2


def test_a_model_runs_ahead_without_waiting_for_the_others(crunch: Crunch) -> None:
    crunch.add(Waiting, name="waiting")
    crunch.add(Racing, name="racing")
    runner = crunch.runner(2, timeout=WAIT)
    first, *rest = runner.map("echo", [Args(i) for i in range(8)])
    # input 0 of "waiting" returned only once "racing" had answered input 5: no barrier between inputs
    assert by_name(first)["waiting"].result == {"value": 0, "tag": True}
    assert [echoed(by_name(results)["racing"]) for results in rest] == list(range(1, 8))


def test_the_train_infer_runner_maps_its_predictions(local_node: Callable[..., LocalModelNode]) -> None:
    def infer(stream: Iterator[Any]) -> Iterator[Any]:
        yield None
        for value in stream:
            yield value * 10

    with LocalOrchestrator(crunch_id="map-infer") as orchestrator:
        for _ in range(2):
            orchestrator.add_model(host="127.0.0.1", port=local_node(infer=infer).port)
        with TrainInferModelConcurrentRunner(
            timeout=5, crunch_id="map-infer", host="127.0.0.1", port=orchestrator.port, retry_backoff_factor=0.01
        ) as runner:
            assert runner.wait_for_models(2, WAIT)
            rows = [sorted(r.result for r in results.values()) for results in runner.map_predict(range(10))]
            assert rows == [[value * 10] * 2 for value in range(10)]
            assert runner.totals().rounds == {"predict": 10}


# -- the busy node -------------------------------------------------------------------------------


def test_a_timeout_on_input_3_of_20_is_charged_once_and_the_node_is_never_called_busy(crunch: Crunch) -> None:
    stuck_id = crunch.add(StuckOnThree, name="stuck")
    for name in ("p1", "p2"):
        crunch.add(Paced, name=name)
    runner = crunch.runner(3, timeout=0.3, max_consecutive_timeouts=1)  # a second charged timeout would report it
    rows = [by_name(results) for results in runner.map("echo", [Args(i) for i in range(20)])]

    stuck = [row["stuck"] for row in rows]
    assert [echoed(result) for result in stuck[:3]] == [0, 1, 2]
    assert stuck[3].status is TIMEOUT and stuck[3].detail == "DEADLINE_EXCEEDED: no answer within 0.3s"
    skipped = [i for i, result in enumerate(stuck) if (result.detail or "").startswith("SKIPPED: busy with input 3")]
    assert skipped and skipped == list(range(4, 4 + len(skipped)))  # the inputs that passed while it was busy
    resumed = stuck[4 + len(skipped) :]
    assert resumed and [echoed(result) for result in resumed] == list(range(4 + len(skipped), 20))
    assert all(result.status is TIMEOUT and result.exec_time_us == 0 for result in stuck[4 : 4 + len(skipped)])
    assert all(echoed(row[name]) == i for i, row in enumerate(rows) for name in ("p1", "p2"))

    node = crunch.nodes[stuck_id]
    assert node.busy_refusals == 0 and all(n.busy_refusals == 0 for n in crunch.nodes.values())
    assert node.instance.calls == [0, 1, 2, 3, *range(4 + len(skipped), 20)]  # never called while busy
    (model,) = [m for m in runner.models if m.model_id == stuck_id]
    stats = model.stats
    assert (stats.timeouts, stats.rest_skips) == (1 + len(skipped), len(skipped))  # one timeout charged
    assert model.consecutive_timeouts == 0 and crunch.orchestrator.reports == []


def test_one_slow_input_costs_a_lone_model_a_few_inputs_not_the_rest(crunch: Crunch) -> None:
    class SlowOnOne(Echo):
        delays = {1: 0.7}

    model_id = crunch.add(SlowOnOne)
    runner = crunch.runner(1, timeout=0.2)
    started = time.monotonic()
    results = [next(iter(r.values())) for r in runner.map("echo", [Args(i) for i in range(12)])]
    elapsed = time.monotonic() - started
    assert results[1].status is TIMEOUT and not results[1].detail.startswith("SKIPPED")  # type: ignore[union-attr]
    skipped = [i for i, r in enumerate(results) if r.status is TIMEOUT and (r.detail or "").startswith("SKIPPED")]
    # Alone, a busy model is passed one input per timeout at most, then resumes: it keeps most of the inputs.
    assert 1 <= len(skipped) <= 4 and skipped == list(range(2, 2 + len(skipped)))
    assert [echoed(r) for r in results[2 + len(skipped) :]] == list(range(2 + len(skipped), 12))
    assert elapsed < 12 * 0.2 + 2.0  # the bound: inputs x timeout plus a margin
    assert crunch.nodes[model_id].busy_refusals == 0


def test_a_node_that_never_answers_is_charged_again_then_paused_not_flooded(crunch: Crunch) -> None:
    class NeverOnTwo(Paced):
        delays = {2: WAIT}

    stuck_id = crunch.add(NeverOnTwo, name="stuck")
    crunch.add(Paced, name="paced")
    # deadline 0.2 s, kept open 0.8 s more; 3 timeouts in a row allowed
    runner = crunch.runner(2, timeout=0.2, max_consecutive_timeouts=3)
    rows = [by_name(results)["stuck"] for results in runner.map("echo", [Args(i) for i in range(40)])]
    details = [row.detail or "" for row in rows]
    assert details[2] == "DEADLINE_EXCEEDED: no answer within 0.2s"
    still = [i for i, d in enumerate(details) if d.startswith("SKIPPED: still busy with input 2 after 1s")]
    refused = [i for i, d in enumerate(details) if d.startswith("RESOURCE_EXHAUSTED")]
    left = [i for i, d in enumerate(details) if d.startswith("MODEL_LEFT")]
    # 1 + 1 + 2 > 3 timeouts: reported at the second refusal, then gone. A third refusal can slip in when
    # its pause (0.2 s) ends before the coordinator has handed the second one over (it waits for "paced").
    assert len(still) == 1 and len(refused) in (2, 3) and left, details
    assert still[0] < refused[0] < refused[1] < left[0]
    assert all(d.startswith("SKIPPED: paused after input") for d in details[refused[0] + 1 : refused[1]])
    assert refused[1] - refused[0] >= 2  # a pause in between: one call per pause, not one per input
    assert crunch.nodes[stuck_id].busy_refusals == len(refused)
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert [r["failure_code"] for r in crunch.orchestrator.reports] == ["MULTIPLE_TIMEOUT"]


# -- penalties and statistics ------------------------------------------------------------------


def test_each_input_counts_as_a_round(crunch: Crunch) -> None:
    crunch.add(Echo, name="a")
    crunch.add(Echo, name="b")
    runner = crunch.runner(2)
    summaries: list[RoundSummary] = []
    heard = threading.Event()

    @runner.on_round
    def hear(summary: RoundSummary) -> None:
        summaries.append(summary)
        if len(summaries) == 5:
            heard.set()

    yielded = list(runner.map("echo", [Args(i) for i in range(5)]))
    assert heard.wait(WAIT)
    assert [(s.method, s.called, s.successes) for s in summaries] == [("echo", 2, 2)] * 5
    assert [results.summary for results in yielded] == summaries
    assert all(isinstance(results, RoundResults) and results.method == "echo" for results in yielded)
    assert runner.totals().rounds == {"echo": 5} and runner.rounds_run == 5
    assert [model.stats.calls for model in runner.models] == [5, 5]


def test_a_failing_model_is_reported_once_then_answered_model_left(crunch: Crunch) -> None:
    failing_id = crunch.add(Failing, name="failing")
    crunch.add(Paced, name="paced")
    runner = crunch.runner(2, max_consecutive_failures=2)
    # a small window: the failing model (which fails at once) cannot answer far ahead of its report
    rows = [by_name(results) for results in runner.map("echo", [Args(i) for i in range(20)], window=4)]
    details = [row["failing"].detail or "" for row in rows]
    assert all(row["failing"].status is FAILED for row in rows) and "boom" in details[0]
    gone = details.index("MODEL_LEFT: the model left the table during the round")
    assert 3 <= gone <= 3 + 4 and all(d.startswith("MODEL_LEFT") for d in details[gone:])  # reported at input 2
    assert all(echoed(row["paced"]) == i for i, row in enumerate(rows))
    assert crunch.orchestrator.wait_for_reports(1, WAIT)
    assert [(r["model_id"], r["failure_code"]) for r in crunch.orchestrator.reports] == [(failing_id, "MULTIPLE_FAILED")]
    assert [m.model_name for m in runner.models] == ["paced"]


def test_a_model_leaving_mid_map_is_answered_model_left_at_no_cost(crunch: Crunch) -> None:
    leaving_id = crunch.add(Paced, name="leaving")
    crunch.add(Paced, name="staying")
    runner = crunch.runner(2)
    (leaving,) = [m for m in runner.models if m.model_id == leaving_id]
    left = threading.Event()
    runner.on_model_left(lambda model: model is leaving and left.set())
    rows = []
    for index, results in enumerate(runner.map("echo", [Args(i) for i in range(15)], window=2)):
        rows.append(by_name(results))
        if index == 2:
            crunch.orchestrator.stop_model(leaving_id)
            assert left.wait(WAIT) and leaving.closed
    assert [echoed(row["staying"]) for row in rows] == list(range(15))
    assert rows[-1]["leaving"].detail == "MODEL_LEFT: the model left the table during the round"
    assert rows[-1].keys() == {"leaving", "staying"}
    assert rows[-1]["leaving"].status is FAILED and leaving.consecutive_failures == 0
    assert crunch.orchestrator.reports == []


# -- memory, stopping, misuse --------------------------------------------------------------------


def test_a_generator_of_100000_inputs_runs_in_bounded_memory(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner(1, keep_stats=False)
    pulled = 0

    def inputs(count: int) -> Iterator[Args]:
        nonlocal pulled
        for i in range(count):
            pulled += 1
            yield Args(i)

    # With a model: never more than the window pulled ahead of what was yielded.
    for index, _ in enumerate(runner.map("echo", inputs(300), window=8)):
        assert pulled <= index + 1 + 8
    # The whole machinery over 100,000 inputs (no model, so nothing crosses the network and it takes
    # seconds): the window holds, and the objects alive do not grow with the inputs.
    pulled, count, alive = 0, 0, 0
    for count, results in enumerate(runner.map("echo", inputs(100_000), model_runs=[]), start=1):
        assert results == {} and pulled <= count + DEFAULT_WINDOW
        if count in (1_000, 99_000):
            gc.collect()
            alive = len(gc.get_objects()) - alive
    assert count == 100_000
    assert alive < 1_000  # objects created between input 1,000 and input 99,000 and still alive


def test_close_from_another_thread_mid_map_returns_promptly_and_leaves_no_thread(crunch: Crunch) -> None:
    crunch.add(Holding, name="holding")
    crunch.add(Echo, name="echo")
    before = set(threading.enumerate())
    runner = crunch.runner(2, timeout=WAIT)  # only the close can end input 1 early
    # window=1: input 1 is pulled, so "holding" starts it, only once the test asks for it (close comes after)
    iterator = runner.map("echo", [Args(i) for i in range(5)], window=1)
    assert {name: echoed(result) for name, result in by_name(next(iterator)).items()} == {"holding": 0, "echo": 0}
    closer = threading.Thread(target=lambda: Holding.started.wait(WAIT) and runner.close(), name="test-closer")
    closer.start()
    started = time.monotonic()
    second = by_name(next(iterator))
    assert time.monotonic() - started < WAIT / 2
    assert second["holding"].status is FAILED and second["holding"].detail.startswith("MODEL_LEFT")  # type: ignore[union-attr]
    # "echo" answers input 1 at once, but the close races that answer to the client: either is right, not a wait
    echo = second["echo"]
    assert echoed(echo) == 1 if echo.status is not FAILED else echo.detail.startswith("MODEL_LEFT"), echo  # type: ignore[union-attr]
    with pytest.raises(MrclientError, match="closed"):
        next(iterator)
    closer.join(WAIT)
    assert runner.closed and not closer.is_alive()
    assert client_threads_since(before) == []


def test_breaking_out_of_the_loop_ends_the_map_and_frees_the_runner(crunch: Crunch) -> None:
    for name in ("a", "b"):
        crunch.add(Paced, name=name)
    runner = crunch.runner(2)
    pulled = 0

    def inputs() -> Iterator[Args]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield Args(i)

    for index, _ in enumerate(runner.map("echo", inputs())):
        if index == 2:
            break
    assert pulled <= 3 + DEFAULT_WINDOW
    # the map let go of the runner at once, and no node is still busy with it
    results = runner.call("echo", args=["after"])
    assert [echoed(result) for result in results.values()] == ["after", "after"]
    assert all(node.busy_refusals == 0 for node in crunch.nodes.values())


def test_a_call_while_a_map_is_open_raises_instead_of_waiting_forever(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner(1)
    iterator = runner.map("echo", [Args(i) for i in range(3)])
    next(iterator)
    with pytest.raises(InvalidCoordinatorUsageError, match="a map is open"):
        runner.call("echo", args=[1])
    with pytest.raises(InvalidCoordinatorUsageError, match="a map is open"):
        runner.map("echo", [Args(1)])
    iterator.close()
    assert [echoed(r) for r in runner.call("echo", args=[1]).values()] == [1]


def test_a_bad_input_is_raised_when_its_turn_comes(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner(1)
    yielded: list[Any] = []
    with pytest.raises(InvalidCoordinatorUsageError, match=r"input 2 must be \(args, kwargs\).*got 'oops'"):
        for results in runner.map("echo", [Args(0), Args(1), "oops", Args(3)]):
            yielded.append([echoed(r) for r in results.values()])
    assert yielded == [[0], [1]]

    def failing_inputs() -> Iterator[Args]:
        yield Args(0)
        raise ValueError("the coordinator's data ran out")

    with pytest.raises(ValueError, match="ran out"):
        for _ in runner.map("echo", failing_inputs()):
            pass
    assert [echoed(r) for r in runner.call("echo", args=[7]).values()] == [7]  # free again


def test_the_coordinators_mistake_raises_and_nobody_is_reported(crunch: Crunch) -> None:
    crunch.add(Echo)
    crunch.add(Echo)
    runner = crunch.runner(2, max_consecutive_failures=1)
    with pytest.raises(InvalidCoordinatorUsageError, match="ecoh"):  # every model lacks the method: a typo
        for _ in runner.map("ecoh", [Args(i) for i in range(5)]):
            pass
    assert not crunch.orchestrator.wait_for_reports(1, 0.5)
    assert len(runner.models) == 2 and all(model.consecutive_failures == 0 for model in runner.models)
    assert [echoed(r) for r in runner.call("echo", args=[1]).values()] == [1, 1]  # the map let go


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(method_name=""), "method_name must be a non-empty string"),
        (dict(timeout=0), "timeout must be a positive"),
        (dict(window=0), "window must be a positive whole number"),
        (dict(window=2.5), "window must be a positive whole number"),
        (dict(inputs=5), "inputs must be an iterable"),
    ],
)
def test_bad_map_arguments_are_refused_at_once(crunch: Crunch, arguments: dict[str, Any], message: str) -> None:
    crunch.add(Echo)
    runner = crunch.runner(1)
    call = {"method_name": "echo", "inputs": [Args(1)], **arguments}
    with pytest.raises(InvalidCoordinatorUsageError, match=message):
        runner.map(call.pop("method_name"), call.pop("inputs"), **call)


def test_a_map_before_init_or_after_close_is_refused(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner(init=False)
    with pytest.raises(InvalidCoordinatorUsageError, match="init"):
        runner.map("echo", [Args(1)])
    runner.close()
    with pytest.raises(MrclientError, match="closed"):
        runner.map("echo", [Args(1)])


# -- the async form ------------------------------------------------------------------------------


def test_the_async_form_under_asyncio_run(crunch: Crunch) -> None:
    crunch.add(Paced, name="a")
    crunch.add(Echo, name="b")
    before = set(threading.enumerate())
    runner = crunch.runner(2)

    async def main() -> tuple[list[dict[str, Any]], list[int]]:
        async with AsyncRunner(runner) as arunner:
            rows = [
                {name: echoed(result) for name, result in by_name(results).items()}
                async for results in arunner.map("echo", (Args(i) for i in range(10)))
            ]
            partial = []
            async with contextlib.aclosing(arunner.map("echo", [Args(i) for i in range(100)])) as mapped:
                async for results in mapped:
                    partial.append(echoed(by_name(results)["a"]))
                    if len(partial) == 3:
                        break  # leaving the block ends the map: the runner is free for the next call
            after = await arunner.call("echo", args=["after"])
            assert [echoed(r) for r in after.values()] == ["after", "after"]
            return rows, partial

    rows, partial = asyncio.run(main())
    assert rows == [{"a": i, "b": i} for i in range(10)]
    assert partial == [0, 1, 2]
    assert runner.closed and client_threads_since(before) == []


def test_an_async_map_needs_the_right_kind_of_runner(crunch: Crunch) -> None:
    crunch.add(Echo)
    runner = crunch.runner(1)
    with pytest.raises(InvalidCoordinatorUsageError, match="map_predict"):
        AsyncRunner(runner).map_predict([1])
    assert isinstance(runner, DynamicSubclassModelConcurrentRunner)
