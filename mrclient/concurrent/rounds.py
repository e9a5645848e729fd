"""One round: every model called at once under one deadline, one outcome each.

``call_models`` submits one blocking call per model to a thread pool (sized by
its owner so that no call queues behind another), waits for them until the
deadline plus a small margin (``concurrent.futures.wait``, in short slices:
``_support.waits``, so that a signal's handler runs at once), and reads each
future as a ``CallOutcome``: the model's answer as it came back (the runner
itself says ``MODEL_LEFT`` when a close cut its call), a timeout for a call
still running, or ``MODEL_LEFT`` for a call still running whose runner was
closed meanwhile. Every call carries what is left of the round's deadline, so
a hung model costs its own thread until then and nothing else. This module
decides nothing about penalties or reports: the concurrent runner does,
afterwards, on the coordinator's thread.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

from .._support.waits import wait_futures
from ..runners import CLOSED_OUTCOME, CallOutcome, ErrorType, ModelRunner

__all__ = ["Answer", "Invoke", "ROUND_MARGIN", "ROUND_SWITCH_INTERVAL", "call_models", "execute", "switch_interval"]

logger = logging.getLogger(__name__)

#: How long past its deadline a round still waits for answers already on their way.
ROUND_MARGIN = 0.05

#: The GIL switch interval while a round runs, in seconds (Python's default is 0.005). When
#: hundreds of answers come back at once, every pool thread wakes for a few microseconds of
#: work; a longer interval lets each finish instead of being preempted, which cut the CPU per
#: call of a round at N = 1000 by about 5 % at 0 ms model latency and 15 % at 50 ms in A/B
#: runs (docs/performance.rst). It is process-wide, so it is set only while a round runs and
#: restored when the last round running ends.
ROUND_SWITCH_INTERVAL = 0.02

_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextlib.contextmanager
def switch_interval(seconds: float | None) -> Iterator[None]:
    """Run the block with ``sys.setswitchinterval(seconds)``, restored after; None leaves it alone.

    Rounds of several runners may overlap: the first to enter saves the
    interval in force, the last to leave restores it.
    """
    global _switch_users, _switch_saved
    if seconds is None:
        yield
        return
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(seconds)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


#: ``invoke(runner, request, seconds_left)``: one call to one model.
Invoke = Callable[[ModelRunner, Any, float], CallOutcome]
#: A model's outcome and how long its call took, in microseconds.
Answer = tuple[CallOutcome, int]


def execute(runner: ModelRunner, request: Any, timeout: float) -> CallOutcome:
    """The usual ``Invoke``: send the round's request (a message or its bytes) to the model."""
    return runner.execute(request, timeout)


def call_models(
    pool: ThreadPoolExecutor,
    runners: Iterable[ModelRunner],
    request_of: Callable[[ModelRunner], Any],
    timeout: float,
    invoke: Invoke = execute,
) -> dict[ModelRunner, Answer]:
    """Call every runner at once and return by ``timeout`` (plus ``ROUND_MARGIN``) with one answer each."""
    started = time.perf_counter()
    deadline = started + timeout
    futures = {runner: _submit(pool, invoke, runner, request_of(runner), started, deadline) for runner in runners}
    done = wait_futures(futures.values(), max(0.0, deadline - time.perf_counter()) + ROUND_MARGIN)
    late = CallOutcome(error=ErrorType.TIMEOUT, detail=f"DEADLINE_EXCEEDED: no answer within {timeout}s")
    late_us = int((time.perf_counter() - started) * 1_000_000)
    # ``done`` as the wait returned it: asking each future again would take its lock once more per model.
    return {
        runner: _answer_of(runner, future) if future in done else (_departed(runner, late), late_us)
        for runner, future in futures.items()
    }


def _submit(
    pool: ThreadPoolExecutor, invoke: Invoke, runner: ModelRunner, request: Any, started: float, deadline: float
) -> Future[Answer]:
    """Start one call; a pool that ``close()`` shut down meanwhile gives MODEL_LEFT instead of raising."""
    try:
        return pool.submit(_timed, invoke, runner, request, started, deadline)
    except RuntimeError:
        future: Future[Answer] = Future()
        future.set_result((CLOSED_OUTCOME, 0))
        return future


def _timed(invoke: Invoke, runner: ModelRunner, request: Any, round_started: float, deadline: float) -> Answer:
    """Run one call with what is left of the round's deadline; time it in microseconds.

    A call that ran out of the round's time counts as the time the round waited for it,
    from the round's start (its thread may have started later); any other call as the
    time it took.
    """
    started = time.perf_counter()
    remaining = deadline - started
    if remaining <= 0:
        return CallOutcome(error=ErrorType.TIMEOUT, detail="DEADLINE_EXCEEDED: no time left in the round"), 0
    outcome = invoke(runner, request, remaining)
    if outcome.error is ErrorType.TIMEOUT and (outcome.detail or "").startswith("DEADLINE_EXCEEDED"):
        started = round_started
    return outcome, int((time.perf_counter() - started) * 1_000_000)


def _answer_of(runner: ModelRunner, future: Future[Answer]) -> Answer:
    try:
        outcome, exec_us = future.result()
    except CancelledError:  # close() cancelled it before it started
        return CLOSED_OUTCOME, 0
    except Exception as error:  # a bug must cost one result, not the round
        logger.exception("unexpected error calling model %s", runner.model_id)
        return CallOutcome(error=ErrorType.FAILED, detail=f"client error: {error!r}"), 0
    return outcome, exec_us  # as it came back: a failure that came before a close stays that failure


def _departed(runner: ModelRunner, outcome: CallOutcome) -> CallOutcome:
    """A call still running at the deadline whose runner was closed meanwhile: the model left.

    Only for calls with no answer: an answer that came back is kept as it is,
    even when its runner was closed afterwards (``close()`` cutting the round
    short), because the runner already tells a call that the close itself cut
    (``CLOSED_OUTCOME``) from one that failed on its own.
    """
    return CLOSED_OUTCOME if runner.closed else outcome
