"""mrclient.aio.AsyncRunner: an asyncio coordinator shaped like a production kernel, on real local nodes.

The kernel runs ``runner.sync()`` as a task that it cancels at shutdown (and
does nothing else to stop the client), retries ``await runner.init()`` each
tick until it works, and awaits one ``runner.call(method, (args, kwargs))`` per
tick. Three models: one answers, one is slower than the round, one raises.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from conftest import TESTS, free_port
from mrclient import (
    DynamicSubclassModelConcurrentRunner,
    InvalidCoordinatorUsageError,
    ModelRunner,
    MrclientError,
    TrainInferModelConcurrentRunner,
)
from mrclient.aio import AsyncRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, BrokenTracker, EwmaTracker, SlowTracker, TrackerBase
from mrclient.wire.codec import to_arguments
from test_shutdown import Child

CRUNCH = "aio"
WAIT = 10.0
ROUND = 1.0  # the round's deadline: the slow model (2 s) makes each of its rounds last this long
LAG_BOUND = 0.05  # the event loop's lag during a round: a behaviour bound, generous on purpose
TICK = 0.005  # the lag ticker's period
EXPECTED = {"ewma": "SUCCESS", "slow": "TIMEOUT", "broken": "FAILED"}

Runner = AsyncRunner[DynamicSubclassModelConcurrentRunner]


def mrclient_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mrclient")]


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[LocalOrchestrator]:
    """Three models (one answers, one is slow, one raises) on an orchestrator that is not started yet."""
    orchestrator = LocalOrchestrator(crunch_id=CRUNCH, port=free_port())
    for name, tracker in (("ewma", EwmaTracker), ("slow", SlowTracker), ("broken", BrokenTracker)):
        orchestrator.add_model(port=local_node(classes=[TrackerBase, tracker]).port, name=name)
    try:
        yield orchestrator
    finally:
        orchestrator.stop()


def async_runner(port: int, **options: Any) -> Runner:
    settings: dict[str, Any] = dict(
        timeout=ROUND, crunch_id=CRUNCH, host="127.0.0.1", port=port, base_classname=BASE_CLASSNAME,
        retry_backoff_factor=0.01, init_timeout=WAIT,
    )
    settings.update(options)
    return AsyncRunner(DynamicSubclassModelConcurrentRunner(**settings))


@dataclass
class Kernel:
    """What the kernel saw: init failures, each round's statuses and when it ran, when shutdown began."""

    init_errors: list[BaseException] = field(default_factory=list)
    rounds: list[dict[str, str]] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    shutdown_at: float = 0.0


async def kernel(
    runner: Runner, ticks: int, after_failed_init: Callable[[], object] = lambda: None
) -> Kernel:
    """A production kernel's shape: sync() as a task, init() retried each tick, one call per tick."""
    seen = Kernel()
    sync_task = asyncio.create_task(runner.sync())
    ready = False
    payload = to_arguments([{"dove_location": 19.16, "time": 230.96}])
    try:
        for _ in range(ticks):
            if not ready:
                try:
                    await runner.init()
                    ready = True
                except ConnectionError as error:
                    seen.init_errors.append(error)
                    after_failed_init()
                    continue
            await runner.call("tick", (payload, []))
            began = time.monotonic()
            results = await runner.call("predict", ([], []))
            seen.windows.append((began, time.monotonic()))
            seen.rounds.append({model.model_name or "": result.status.name for model, result in results.items()})
            await asyncio.sleep(0.01)
    finally:
        seen.shutdown_at = time.monotonic()
        sync_task.cancel()  # the kernel's only way to stop the client
        try:
            await sync_task
        except asyncio.CancelledError:
            pass
    return seen


async def with_lag_ticker(work: Awaitable[Kernel], samples: list[tuple[float, float, float]]) -> Kernel:
    """Run ``work`` while a task samples the loop's lag: (when, how late, the GIL switch interval then)."""

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + TICK
            await asyncio.sleep(TICK)
            samples.append((time.monotonic(), loop.time() - expected, sys.getswitchinterval()))

    ticking = asyncio.create_task(ticker())
    try:
        return await work
    finally:
        ticking.cancel()


@pytest.mark.serial
def test_a_kernel_under_asyncio_run_retries_init_runs_rounds_off_the_loop_and_ends_clean(
    crunch: LocalOrchestrator,
) -> None:
    samples: list[tuple[float, float, float]] = []
    runner = async_runner(crunch.port, init_timeout=0.5)
    switch_interval = sys.getswitchinterval()
    assert mrclient_threads() == []

    async def main() -> Kernel:
        # The orchestrator is down at the first tick: init() fails, and the kernel starts it before the next.
        return await with_lag_ticker(kernel(runner, ticks=5, after_failed_init=crunch.start), samples)

    seen = asyncio.run(main())
    returned_after = time.monotonic() - seen.shutdown_at

    assert len(seen.init_errors) == 1 and f"ws://127.0.0.1:{crunch.port}/{CRUNCH}" in str(seen.init_errors[0])
    assert seen.rounds == [EXPECTED] * 4, "every round right, from the tick after the orchestrator came up"
    begin, end = seen.windows[0]
    assert end - begin >= ROUND * 0.9, "the first round waits out the slow model"
    during = [(lag, interval) for when, lag, interval in samples if begin <= when <= end]
    assert len(during) > 20, "the loop ticked all through the round"
    assert max(lag for lag, _ in during) < LAG_BOUND
    assert {interval for _, interval in during} == {switch_interval}, "rounds leave the switch interval alone"

    assert runner.closed, "cancelling the sync task closed the runner"
    assert returned_after < 2.0
    assert mrclient_threads() == []
    assert not crunch.wait_for_reports(1, 0.3), "the broken model's ticks succeed: its failures never run to 4 in a row"


@pytest.mark.serial
@pytest.mark.subprocess
def test_sigterm_through_the_loops_signal_handler_ends_the_kernel_cleanly(
    crunch: LocalOrchestrator,
) -> None:
    crunch.start()
    child = Child(str(TESTS / "_aio_signal_child.py"), str(crunch.port))
    try:
        assert child.said("ready") == 3
        assert child.said("round") == EXPECTED
        sent = time.monotonic()
        os.kill(child.process.pid, signal.SIGTERM)  # most likely mid-round: a round lasts 1 s
        code = child.wait(WAIT)
        ended_after = time.monotonic() - sent
        assert code == 0, child.stderr()
        assert child.said("cancelled") is True
        assert child.said("closed") is True
        assert child.said("threads") == []
        assert ended_after < 2.0
    finally:
        child.kill()


def test_sync_returns_once_the_runner_is_closed_from_elsewhere(crunch: LocalOrchestrator) -> None:
    crunch.start()
    runner = async_runner(crunch.port)

    async def main() -> None:
        async with runner:
            assert len(runner.models) == 3 and runner.connected
            waiting = asyncio.create_task(runner.sync())
            await asyncio.sleep(0.05)
            assert not waiting.done()
            threading.Thread(target=runner.runner.close).start()  # a close that is not the facade's
            await asyncio.wait_for(waiting, WAIT)
            with pytest.raises(MrclientError, match="the runner is closed"):
                await runner.call("predict")

    asyncio.run(main())
    assert runner.closed and mrclient_threads() == []


def test_the_facade_reads_through_to_the_runner(crunch: LocalOrchestrator) -> None:
    crunch.start()
    runner = async_runner(crunch.port, timeout=0.5)
    joined: list[ModelRunner] = []
    runner.on_model_joined(joined.append)
    assert repr(runner).startswith("<AsyncRunner over <")

    async def main() -> None:
        with pytest.raises(MrclientError, match=r"init\(\) has not succeeded"):
            await runner.call("predict")
        await runner.init()
        assert await runner.wait_for_models(3, WAIT)
        assert {m.model_name for m in runner.models} == set(EXPECTED)
        assert runner.model_cluster is runner.runner.model_cluster and len(runner.model_cluster.models_run) == 3
        assert runner.connection_state.connected
        roster = runner.joined_since_last()
        assert set(roster.joined) == set(runner.models)
        results = await runner.call("predict", model_runs=[m for m in runner.models if m.model_name == "ewma"])
        assert [r.status.name for r in results.values()] == ["SUCCESS"]
        assert runner.totals().rounds.get("predict") == 1
        assert {m.model_name for m in runner.stats()} == set(EXPECTED)
        with pytest.raises(InvalidCoordinatorUsageError, match="method_name must be a non-empty string"):
            await runner.call("")
        await runner.aclose()
        await runner.aclose()  # idempotent

    asyncio.run(main())
    assert {m.model_name for m in joined} == set(EXPECTED) and runner.closed and mrclient_threads() == []


def test_a_train_infer_runner_predicts_and_has_no_call(local_node: Callable[..., LocalModelNode]) -> None:
    def running_sum(stream: Iterator[float]) -> Iterator[float | None]:
        total = 0.0
        yield None
        for value in stream:
            total += value
            yield total

    with LocalOrchestrator(crunch_id="infer") as orchestrator:
        orchestrator.add_model(port=local_node(infer=running_sum).port)
        runner = AsyncRunner(TrainInferModelConcurrentRunner(
            timeout=5.0, crunch_id="infer", host="127.0.0.1", port=orchestrator.port, retry_backoff_factor=0.01
        ))

        async def main() -> None:
            async with runner:
                assert await runner.wait_for_models(1, WAIT)
                assert [r.result for r in (await runner.predict(1.5)).values()] == [1.5]
                assert [r.result for r in (await runner.predict(2.0)).values()] == [3.5]
                assert all(r.status.name == "SUCCESS" for r in (await runner.reinitialize()).values())
                with pytest.raises(InvalidCoordinatorUsageError, match=r"call\(\) is a method of DynamicSubclass"):
                    await runner.call("predict")  # type: ignore[misc]  # mypy says so too

        asyncio.run(main())
    assert runner.closed and mrclient_threads() == []


def test_only_a_runner_can_be_wrapped() -> None:
    with pytest.raises(InvalidCoordinatorUsageError, match="AsyncRunner wraps a constructed runner"):
        AsyncRunner("ws://127.0.0.1:8000/crunch")  # type: ignore[type-var]
