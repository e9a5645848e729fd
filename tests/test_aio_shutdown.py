"""Every way an asyncio coordinator shuts an AsyncRunner down, each many times in a row in one process.

``aclose()``, ``async with``, cancelling ``sync()`` and SIGTERM through the
loop's signal handler, with the coordinator's tasks created in each order:
the ``sync()`` task before or after the round's, the close while ``init()``
still runs, the close after a failed ``init()``. A close used to join an
operation thread that had not started yet ("cannot join thread before it is
started", about half the time with a ``sync()`` task), or two closes joined
each other for 10 s. Each repetition waits a little longer before closing, so
the close lands at a different point of the others' start.

A map under way (``async for results in runner.map(...)``) ends with the
close too: the input under way is handed over, then ``MrclientError`` is
raised, as the synchronous map does (its thread used to end without
answering the loop's next request, which then waited for good).

The round calls ``hold`` on two models: one answers at once, the other holds
its call until the test lets it go, so every close finds a round under way
(or about to be) whose deadline is far away.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from conftest import free_port
from mrclient import Args, DynamicSubclassModelConcurrentRunner, MrclientError
from mrclient.aio import AsyncRunner
from mrclient.runners.base import MODEL_LEFT
from mrclient.testing import LocalModelNode, LocalOrchestrator

CRUNCH = "aio-shutdown"
WAIT = 10.0
ROUND = 30.0  # the held model's deadline: every close must cut it short
HOLD = 3.0  # the longest a hold lasts on the node, whoever waits for it (a call the close cut, say)
CLOSE_BOUND = 5.0  # a whole repetition, start-up included: far below ROUND, generous on a busy machine
REPEATS = 8
DELAYS = (0.0, 0.0005, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)  # before the close, one per repetition

Runner = AsyncRunner[DynamicSubclassModelConcurrentRunner]


class ShutdownBase:
    """The base class of the models here."""


class Quick(ShutdownBase):
    def hold(self) -> str:
        return "quick"


class Held(ShutdownBase):
    """``hold`` waits until the test releases it (HOLD at most): a round under way with a far deadline."""

    release = threading.Event()
    active = 0  # holds running on the node, guarded by idle
    idle = threading.Condition()

    def hold(self) -> str:
        with Held.idle:
            Held.active += 1
        try:
            Held.release.wait(HOLD)
        finally:
            with Held.idle:
                Held.active -= 1
                Held.idle.notify_all()
        return "released"

    @staticmethod
    def let_go() -> None:
        """End every hold on the node and wait until none runs, so the next runner's setup finds it free."""
        Held.release.set()
        with Held.idle:
            assert Held.idle.wait_for(lambda: Held.active == 0, HOLD + WAIT)
        Held.release.clear()


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[LocalOrchestrator]:
    with LocalOrchestrator(crunch_id=CRUNCH) as orchestrator:
        orchestrator.add_model(port=local_node(classes=[ShutdownBase, Quick]).port, name="quick")
        orchestrator.add_model(port=local_node(classes=[ShutdownBase, Held]).port, name="held")
        Held.release.clear()
        try:
            yield orchestrator
        finally:
            Held.let_go()  # no hold left waiting when the nodes stop


def new_runner(port: int, **options: Any) -> Runner:
    settings: dict[str, Any] = dict(
        timeout=ROUND, crunch_id=CRUNCH, host="127.0.0.1", port=port, base_classname="ShutdownBase",
        retry_backoff_factor=0.01, init_timeout=WAIT,
    )
    settings.update(options)
    return AsyncRunner(DynamicSubclassModelConcurrentRunner(**settings))


def threads_of_the_facade(before: set[threading.Thread]) -> list[str]:
    """The facade's and its runner's threads still running, of those started since ``before``.

    Another test's, in the same xdist worker, may still run: a round it left to its deadline, say.
    """
    names = ("mrclient-aio-", f"mrclient-orchestrator-{CRUNCH}", "mrclient-close")
    return [t.name for t in threading.enumerate() if t.name.startswith(names) and t not in before]


async def round_outcome(round_task: asyncio.Task[Any]) -> str:
    """What the round under way came to: cut by the close, refused as closed, or not run (cancelled)."""
    try:
        results = await asyncio.wait_for(round_task, WAIT)
    except MrclientError as error:
        assert "the runner is closed" in str(error)
        return "closed"
    except asyncio.CancelledError:
        return "cancelled"
    statuses = {model.model_name: (result.status.name, result.detail) for model, result in results.items()}
    assert statuses.get("held", ("FAILED", MODEL_LEFT)) == ("FAILED", MODEL_LEFT), statuses
    assert statuses.get("quick", ("SUCCESS", None)) in {("SUCCESS", None), ("FAILED", MODEL_LEFT)}, statuses
    return "cut"


async def ended(task: asyncio.Task[Any]) -> None:
    """Await ``task`` to its end, however it ends (a sync() task returns or is cancelled)."""
    try:
        await asyncio.wait_for(task, WAIT)
    except asyncio.CancelledError:
        pass


# -- the paths: each a coroutine given the runner and how long to wait before closing ---------------


async def aclose_sync_task_first(runner: Runner, delay: float) -> str:
    sync_task = asyncio.create_task(runner.sync())
    await runner.init()
    round_task = asyncio.create_task(runner.call("hold"))
    await asyncio.sleep(delay)
    await runner.aclose()
    await ended(sync_task)
    return await round_outcome(round_task)


async def aclose_round_task_first(runner: Runner, delay: float) -> str:
    await runner.init()
    round_task = asyncio.create_task(runner.call("hold"))
    sync_task = asyncio.create_task(runner.sync())
    await asyncio.sleep(delay)
    await runner.aclose()
    await ended(sync_task)
    return await round_outcome(round_task)


async def async_with_and_a_sync_task(runner: Runner, delay: float) -> str:
    async with runner:
        sync_task = asyncio.create_task(runner.sync())
        round_task = asyncio.create_task(runner.call("hold"))
        await asyncio.sleep(delay)
    await ended(sync_task)
    return await round_outcome(round_task)


async def cancel_sync_mid_round(runner: Runner, delay: float) -> str:
    sync_task = asyncio.create_task(runner.sync())
    await runner.init()
    round_task = asyncio.create_task(runner.call("hold"))
    await asyncio.sleep(delay)
    sync_task.cancel()  # a host's shutdown: the kernel's only way to stop the client
    with pytest.raises(asyncio.CancelledError):
        await sync_task
    assert runner.closed, "sync() raised CancelledError once the runner was closed"
    return await round_outcome(round_task)


async def aclose_while_init_runs(runner: Runner, delay: float) -> str:
    sync_task = asyncio.create_task(runner.sync())
    init_task = asyncio.create_task(runner.init())
    await asyncio.sleep(delay)
    await runner.aclose()
    await ended(sync_task)
    try:
        await asyncio.wait_for(init_task, WAIT)  # returns (closed while it waited) or says the runner is closed
    except MrclientError as error:
        assert "the runner is closed" in str(error)
    round_task = asyncio.create_task(runner.call("hold"))
    return await round_outcome(round_task)


async def aclose_after_a_failed_init(runner: Runner, delay: float) -> str:
    sync_task = asyncio.create_task(runner.sync())
    with pytest.raises(ConnectionError):
        await runner.init(timeout=0.1)  # nobody listens on this runner's port
    retry = asyncio.create_task(runner.init(timeout=WAIT))  # the kernel's next tick, cut by the close
    await asyncio.sleep(delay)
    await runner.aclose()
    await ended(sync_task)
    try:
        await asyncio.wait_for(retry, WAIT)
    except MrclientError as error:
        assert "the runner is closed" in str(error)
    return await round_outcome(asyncio.create_task(runner.call("hold")))


async def sigterm_through_the_loop(runner: Runner, delay: float) -> str:
    """The production kernel under a host's SIGTERM: the handler cancels the kernel, whose finally cancels sync()."""
    round_outcomes: list[str] = []

    async def kernel() -> None:
        sync_task = asyncio.create_task(runner.sync())
        try:
            await runner.init()
            round_task = asyncio.create_task(runner.call("hold"))
            try:
                await asyncio.shield(round_task)
            finally:
                round_outcomes.append(await round_outcome_after_close(round_task, sync_task))
        finally:
            sync_task.cancel()
            await ended(sync_task)

    async def round_outcome_after_close(round_task: asyncio.Task[Any], sync_task: asyncio.Task[None]) -> str:
        sync_task.cancel()
        await ended(sync_task)
        return await round_outcome(round_task)

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(kernel())
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await asyncio.sleep(0.05 + delay)  # init() under way or done, the round about to start or started
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    return round_outcomes[0] if round_outcomes else "not started"


async def consume_map(runner: Runner, seen: list[dict[str, tuple[str, str | None]]]) -> None:
    """An ``async for`` over a map of three inputs, each model's outcome per input into ``seen``."""
    async for results in runner.map("hold", [Args(), Args(), Args()]):
        seen.append({model.model_name or "": (result.status.name, result.detail) for model, result in results.items()})


async def map_outcome(map_task: asyncio.Task[None], seen: list[dict[str, tuple[str, str | None]]]) -> str:
    """What the map under way came to: ended by the close (MrclientError), or not run (cancelled)."""
    try:
        await asyncio.wait_for(map_task, WAIT)  # a map the close did not end would hang here: TimeoutError
    except MrclientError as error:
        assert "closed" in str(error)
        outcome = "closed"
    except asyncio.CancelledError:
        outcome = "cancelled"
    else:
        raise AssertionError(f"the map ended as if nothing closed it: {seen}")
    for answers in seen:  # the input under way when the close came: the held model left
        assert answers.get("held", ("FAILED", MODEL_LEFT)) == ("FAILED", MODEL_LEFT), seen
    return outcome


async def aclose_mid_map(runner: Runner, delay: float) -> str:
    sync_task = asyncio.create_task(runner.sync())
    await runner.init()
    seen: list[dict[str, tuple[str, str | None]]] = []
    map_task = asyncio.create_task(consume_map(runner, seen))
    await asyncio.sleep(delay)
    await runner.aclose()
    await ended(sync_task)
    return await map_outcome(map_task, seen)


async def cancel_sync_mid_map(runner: Runner, delay: float) -> str:
    sync_task = asyncio.create_task(runner.sync())
    await runner.init()
    seen: list[dict[str, tuple[str, str | None]]] = []
    map_task = asyncio.create_task(consume_map(runner, seen))
    await asyncio.sleep(delay)
    sync_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sync_task
    return await map_outcome(map_task, seen)


PATHS: dict[str, Callable[[Runner, float], Awaitable[str]]] = {
    "aclose, the sync task created before the round task": aclose_sync_task_first,
    "aclose, the sync task created after the round task": aclose_round_task_first,
    "async with, a sync task and a round task inside": async_with_and_a_sync_task,
    "cancelling sync() mid-round": cancel_sync_mid_round,
    "aclose while init() runs": aclose_while_init_runs,
    "aclose after a failed init()": aclose_after_a_failed_init,
    "aclose mid-map (an async for under way)": aclose_mid_map,
    "cancelling sync() mid-map": cancel_sync_mid_map,
}


def run_repeatedly(crunch: LocalOrchestrator, path: Callable[[Runner, float], Awaitable[str]], port: int = 0) -> list[str]:
    """Run ``path`` REPEATS times, a fresh runner each time; each must end cleanly within CLOSE_BOUND."""
    outcomes = []
    for delay in DELAYS[:REPEATS]:
        before = set(threading.enumerate())
        runner = new_runner(port or crunch.port)
        began = time.monotonic()
        outcomes.append(asyncio.run(path(runner, delay)))  # raises what the path raised: RuntimeError, say
        took = time.monotonic() - began
        assert runner.closed
        assert took < CLOSE_BOUND, f"closing after {delay}s took {took:.1f}s"
        assert threads_of_the_facade(before) == [], f"after closing at {delay}s"
        Held.let_go()
    return outcomes


@pytest.mark.parametrize("name", list(PATHS))
def test_each_shutdown_path_ends_cleanly_every_time(crunch: LocalOrchestrator, name: str) -> None:
    port = free_port() if name == "aclose after a failed init()" else 0
    outcomes = run_repeatedly(crunch, PATHS[name], port)
    assert set(outcomes) <= ({"closed"} if "map" in name else {"cut", "closed", "cancelled"}), outcomes


@pytest.mark.serial  # SIGTERM to this very process, through the loop's signal handler
def test_sigterm_through_the_loops_signal_handler_ends_cleanly_every_time(crunch: LocalOrchestrator) -> None:
    outcomes = run_repeatedly(crunch, sigterm_through_the_loop)
    assert set(outcomes) <= {"cut", "closed", "cancelled", "not started"}, outcomes
