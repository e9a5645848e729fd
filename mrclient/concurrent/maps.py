"""A map: many inputs, each model working through them alone, one ``RoundResults`` per input, in order.

A loop of rounds waits, at every input, for the slowest model's answer: an
evaluation costs the sum over the inputs of the slowest answer. A node serves
one call at a time, so the best a client can do is let each model work
through its own inputs back to back; the evaluation then costs the slowest
model's own total. ``MapRun`` does that, in the card's shape.

Who does what:

* **One task per model on the runner's call pool** (a *lane*) takes the inputs
  in order and calls its model with a blocking stub, one call in flight per
  model; it never waits for another model. Blocking stubs, not gRPC futures:
  measured on loopback, a ``future()`` per call costs about twice the CPU of a
  blocking call (gRPC starts a thread to poll a channel that had no call in
  flight, which in a map is every call), and CPU is what a 2-core machine runs
  out of first. The price is that a call in flight cannot be cut alone; it
  ends by its deadline, or at once when its runner is closed (``close()``, or
  the model leaving), which closes its channel.
* **The coordinator's thread, inside the iterator,** pulls inputs from the
  coordinator's iterable (its code stays on its own thread, and a generator is
  not thread-safe), prepares each input's request once (the runner's
  ``prepare``: serialized once when shared, one per model for the function
  form), keeps at most ``window`` inputs in flight, and hands input ``i``'s
  answers over once every model has answered ``i`` or that model's call's
  deadline has passed. Penalties and statistics are then applied on that
  thread, in input order (the runner's job, as after a round).
* One lock guards the map's state, with two conditions: the coordinator waits
  on ``answered`` (notified only when the last model it waits for answers),
  the lanes wait on ``fed`` (new inputs, a pause that ends, the map's end).

Deadlines: ``timeout`` bounds each call from the moment that model's call
starts. Each input is handed over at most ``timeout`` (plus ``ROUND_MARGIN``)
after it became the next one: every model is then calling it (its deadline
passes within ``timeout``), has answered it, or is busy (below); so a map of
``n`` inputs takes at most ``n`` x ``timeout`` plus a margin, however the
models behave.

**The busy node.** A call past its deadline is answered ``TIMEOUT`` and
charged as one timeout, but its node is still computing: it would refuse the
model's next input with ``RESOURCE_EXHAUSTED``. So each call is sent with a
longer gRPC deadline, ``timeout`` x (1 + ``BUSY_BOUND_FACTOR``), and a call past
the input's deadline is kept open: its late answer, discarded, says the node
is free. Meanwhile the model is *busy*: an input passes it once every other
model has answered that input (or ``timeout`` after it became the next one,
when no other model answers), answered ``TIMEOUT`` with the detail ``SKIPPED:
busy with input i, whose call timed out``, uncharged and uncontacted (a rest
skip in the statistics). Once free, the model resumes on the first input not
yet handed over, unless the coordinator is already waiting on that one (its
time is then partly spent: the model skips it too, to keep the bound above).
If the longer deadline passes as well, the node may never answer: one more
timeout is charged, on the first input not yet handed over (``SKIPPED: still
busy ...``, a ``TIMEOUT`` that counts), and the model goes on with the next
input; a node still busy refuses it with ``RESOURCE_EXHAUSTED``, a timeout too
(PROTOCOL.md), and so on until ``max_consecutive_timeouts`` reports it. A
call that comes back with no answer before its deadline (``RESOURCE_EXHAUSTED``,
``UNAVAILABLE``) is a charged timeout, and the model pauses for ``timeout``
before its next call (the inputs passing meanwhile are skipped, uncharged), so
a busy or unreachable node is never called once per input.

**Rests.** Inside a map the busy rule replaces the rest that follows a round's
timeout: the map knows when the node is free, a round can only guess. A model
still resting from earlier rounds when the map starts skips its first inputs
as it would have skipped rounds (``SKIPPED: resting ...``); a map that ends
with a model busy leaves it resting, by the penalty rules, for the next round.

**The end, a stop, a close.** When the inputs run out, ``finish()`` stops the
lanes: calls still stuck past their deadline are left to end on their own (by
their longer deadline, on the pool; their answers are discarded). An
abandoned iterator stops the same way, after waiting for the calls in flight
that are not past their deadline (at most ``timeout``), so the next round
finds the nodes free; a ``KeyboardInterrupt`` does not wait. ``close()`` closes the runners first, which ends every
call at once; the input under way is then handed over with ``MODEL_LEFT`` for
the models that had not answered, at no cost, as a round does. A model that
leaves mid-map (stopped, replaced, reported) is answered ``MODEL_LEFT`` for
the rest of the map; models that join meanwhile wait for the next map or round.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .._support.waits import SIGNAL_CHECK_EVERY
from ..errors import InvalidCoordinatorUsageError
from ..runners import CLOSED_OUTCOME, CallOutcome, ErrorType, ModelRunner
from .results import RESTED, SKIPPED
from .rounds import ROUND_MARGIN, Answer, Invoke

__all__ = [
    "BUSY_BOUND_FACTOR", "DEFAULT_WINDOW", "InputAnswers", "MapRun", "Prepare", "STILL_BUSY", "check_window", "iterate",
]

logger = logging.getLogger(__name__)

#: Inputs in flight at most: pulled from the coordinator's iterable and not yet handed over.
#: A model can run this far ahead of the slowest; memory holds this many requests and answers.
DEFAULT_WINDOW = 32

#: A call past its input's deadline is kept open this many timeouts longer, to learn when its node is free.
BUSY_BOUND_FACTOR = 4.0

#: The code of a skip charged as a timeout: the node was still busy past the longer deadline.
STILL_BUSY = "STILL_BUSY"

#: ``prepare(item, index, runners)``: input ``index`` of the coordinator's iterable as a request per model.
#: It runs on the coordinator's thread; what it raises is raised when the input's turn comes.
Prepare = Callable[[Any, int, Sequence[ModelRunner]], Callable[[ModelRunner], Any]]

_TIMEOUT = ErrorType.TIMEOUT
_STOPPED = CallOutcome(error=ErrorType.ABORTED, detail="ABORTED: the map was stopped before this model answered")


def check_window(window: Any) -> int:
    """A map's window: a positive whole number of inputs."""
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
        raise InvalidCoordinatorUsageError(f"window must be a positive whole number of inputs, got {window!r}")
    return int(window)


def iterate(inputs: Iterable[Any], name: str = "inputs") -> Iterator[Any]:
    """An iterator over a map's inputs (the parameter ``name``); anything that cannot be iterated is refused at once.

    One string is refused too: iterating would make one input per character.
    """
    if isinstance(inputs, (str, bytes)):
        raise InvalidCoordinatorUsageError(
            f"{name} must be an iterable of inputs (a list, a generator), not one {type(inputs).__name__}: "
            f"{name}=[{inputs!r:.80}]"
        )
    try:
        return iter(inputs)
    except TypeError:
        raise InvalidCoordinatorUsageError(
            f"{name} must be an iterable of inputs (a list, a generator), got {type(inputs).__name__}"
        ) from None


@dataclass
class InputAnswers:
    """One input's answers, in the shape of a round's: what the runner needs for penalties and statistics."""

    index: int
    #: The models called (also a model that left: ``MODEL_LEFT``), with their outcome and latency.
    answers: dict[ModelRunner, Answer]
    #: The models not called for this input: resting, busy, or charged for a node still busy.
    skips: dict[ModelRunner, CallOutcome]
    #: When the first call of this input started: ``time.time()``, and ``time.perf_counter()``.
    started_at: float
    started: float


class _Lane:
    """One model's progress through the inputs; every field is guarded by the map's lock."""

    __slots__ = ("runner", "answers", "next", "calling", "started", "deadline", "busy", "paused_until", "done",
                 "rest_until")  # fmt: skip

    def __init__(self, runner: ModelRunner, rest: int) -> None:
        self.runner = runner
        #: index -> (outcome, latency in microseconds, whether the model was called)
        self.answers: dict[int, tuple[CallOutcome, int, bool]] = {}
        self.next = rest  # the first input it has neither answered nor skipped
        self.calling = -1  # the input whose call is in flight
        self.started = self.deadline = 0.0  # that call's start and deadline (time.perf_counter)
        self.busy: str | None = None  # why the node cannot take a call now: the detail of the inputs it skips
        self.paused_until = 0.0  # a pause after a call came back with no answer (busy set, calling -1)
        self.done = False  # its task ended: the model left, or the map stopped
        self.rest_until = rest  # inputs below this are rest skips (a rest carried in from earlier rounds)


class MapRun:
    """The machinery of one map: the lanes on the pool, the window of inputs, the hand-over in order.

    ``next_input()`` (the coordinator's thread only) returns each input's
    answers in turn, then None; ``stop()`` may be called from any thread;
    ``finish()`` once, by the coordinator's side, at the end.
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        runners: Sequence[ModelRunner],
        inputs: Iterator[Any],
        prepare: Prepare,
        timeout: float,
        window: int,
        invoke: Invoke,
        rests: Mapping[ModelRunner, int],
    ) -> None:
        self._pool = pool
        self._runners = tuple(runners)
        self._inputs = inputs
        self._prepare = prepare
        self._timeout = timeout
        self._call_timeout = timeout * (1 + BUSY_BOUND_FACTOR)
        self._window = window
        self._invoke = invoke
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)  # the coordinator waits on it
        self._fed = threading.Condition(self._lock)  # the lanes wait on it
        self._lanes = [_Lane(runner, rests.get(runner, 0)) for runner in self._runners]
        self._requests: dict[int, Callable[[ModelRunner], Any]] = {}
        self._starts: dict[int, float] = {}  # index -> when its first call started (time.perf_counter)
        self._pulled = 0
        self._end: int | None = None  # how many inputs there are, once the iterable ended (or raised)
        self._failure: BaseException | None = None  # what the iterable or a preparation raised, at index _end
        self._handed = 0  # inputs handed over
        self._waiting = -1  # the input the coordinator waits on
        self._waiting_since = 0.0
        self._pending: set[_Lane] = set()  # lanes the coordinator waits on for that input
        self._stopped = False

    # -- the coordinator's side ------------------------------------------------------------------

    def start(self) -> None:
        """Start one task per model on the pool (a pool shut down by ``close()`` leaves the lane done)."""
        for lane in self._lanes:
            try:
                self._pool.submit(self._work, lane)
            except RuntimeError:
                lane.done = True

    def next_input(self) -> InputAnswers | None:
        """The next input's answers, once every model answered it or passed its deadline; None at the end.

        Raises what the coordinator's iterable (or preparing one of its inputs)
        raised, when that input's turn comes. After ``stop()``, hands over what
        the input under way has (the others ``MODEL_LEFT`` or stopped), then None.
        """
        self._feed()
        with self._lock:
            if self._stopped:
                return None
            index = self._handed
            if self._end is not None and index >= self._end:
                failure, self._failure = self._failure, None
                if failure is not None:
                    raise failure
                return None
            self._wait_for(index)
            return self._hand_over(index)

    def stop(self) -> None:
        """Stop the map from any thread: no more calls; the coordinator's wait returns at once."""
        with self._lock:
            self._stopped = True
            self._fed.notify_all()
            self._answered.notify_all()

    def finish(self, wait: bool = True) -> None:
        """Stop, and (``wait``) wait for the calls in flight that are not past their deadline (at most ``timeout``).

        So the next round finds those nodes free. Calls stuck past their
        deadline are left to end on their own, by their longer deadline, on
        the pool. Called once, when the map ends, however it ends.
        """
        with self._lock:
            self._stopped = True
            self._fed.notify_all()
            while wait:
                calling = [lane for lane in self._lanes if lane.calling >= 0 and lane.busy is None]
                if not calling:
                    break
                remaining = max(lane.deadline for lane in calling) + ROUND_MARGIN - time.perf_counter()
                if remaining <= 0:
                    break
                self._answered.wait(min(remaining, SIGNAL_CHECK_EVERY))  # a signal's handler runs between slices

    def _feed(self) -> None:
        """Pull inputs up to the window: on the coordinator's thread, outside the lock, since it runs their code."""
        while self._end is None and not self._stopped and self._pulled < self._handed + self._window:
            index = self._pulled
            try:
                request_of = self._prepare(next(self._inputs), index, self._runners)
            except StopIteration:
                end, failure = index, None
            except Exception as error:  # the coordinator's: raised when this input's turn comes
                end, failure = index, error
            else:
                with self._lock:
                    self._requests[index] = request_of
                    self._pulled = index + 1
                    self._fed.notify_all()
                continue
            with self._lock:
                self._end, self._failure = end, failure
                self._fed.notify_all()

    def _wait_for(self, index: int) -> None:
        """Wait (lock held) until every lane answered ``index``, passed its deadline, or is busy and may be passed."""
        now = time.perf_counter()
        self._waiting, self._waiting_since = index, now
        self._pending = pending = set()
        for lane in self._lanes:
            if index in lane.answers or lane.done:
                continue
            if index < lane.rest_until:
                lane.answers[index] = (RESTED, 0, False)
            elif lane.calling == index or lane.busy is None:
                pending.add(lane)  # calling it, or about to: it has until its deadline
        passing_bound = now + self._timeout + ROUND_MARGIN  # a busy model is passed by then at the latest
        while not self._stopped:
            now = time.perf_counter()
            wake = math.inf
            for lane in list(pending):
                if index in lane.answers or lane.done:
                    pending.discard(lane)
                    continue
                # A lane that never started the input (no thread free in time) has the input's own bound.
                deadline = (lane.deadline if lane.calling == index else self._waiting_since + self._timeout)
                if now >= deadline + ROUND_MARGIN:
                    self._time_out(lane, index, now)
                    pending.discard(lane)
                else:
                    wake = min(wake, deadline + ROUND_MARGIN)
            if not pending:
                if now >= passing_bound or not self._busy_unanswered(index) or self._called_any(index):
                    break
                wake = min(wake, passing_bound)  # every model is busy: they may free up and answer
            self._answered.wait(min(wake - now, SIGNAL_CHECK_EVERY))  # a signal's handler runs between slices

    def _busy_unanswered(self, index: int) -> bool:
        return any(lane.busy is not None and not lane.done and index not in lane.answers for lane in self._lanes)

    def _called_any(self, index: int) -> bool:
        """Whether some model's node answered ``index`` (or let its deadline pass): then the busy ones are passed."""
        for lane in self._lanes:
            entry = lane.answers.get(index)
            if entry is not None and entry[2] and entry[0] is not CLOSED_OUTCOME:
                return True
        return False

    def _time_out(self, lane: _Lane, index: int, now: float) -> None:
        """``index``'s deadline passed for ``lane`` (lock held): a charged timeout, and the node is now busy."""
        timeout = self._timeout
        if lane.runner.closed:  # it left, and its task has not noticed yet
            lane.answers[index] = (CLOSED_OUTCOME, 0, True)
        elif lane.calling == index:
            outcome = CallOutcome(error=_TIMEOUT, detail=f"DEADLINE_EXCEEDED: no answer within {timeout:g}s")
            lane.answers[index] = (outcome, int((now - lane.started) * 1_000_000), True)
            lane.busy = f"{SKIPPED}busy with input {index}, whose call timed out"
        else:  # never started: not the model's doing
            outcome = CallOutcome(error=_TIMEOUT, detail=f"{SKIPPED}not called: no thread free within {timeout:g}s")
            lane.answers[index] = (outcome, 0, False)
            lane.next = max(lane.next, index + 1)

    def _hand_over(self, index: int) -> InputAnswers:
        """Input ``index``'s answers out of the lanes (lock held); busy lanes get their skip now."""
        answers: dict[ModelRunner, Answer] = {}
        skips: dict[ModelRunner, CallOutcome] = {}
        for lane in self._lanes:
            entry = lane.answers.pop(index, None)
            if entry is None:
                if lane.done or self._stopped:
                    outcome = CLOSED_OUTCOME if lane.runner.closed or lane.done else _STOPPED
                    entry = (outcome, 0, True)
                else:  # busy: passed, uncharged, uncontacted
                    entry = (CallOutcome(error=_TIMEOUT, detail=lane.busy or f"{SKIPPED}busy"), 0, False)
                    lane.next = max(lane.next, index + 1)
            outcome, exec_us, called = entry
            if called:
                answers[lane.runner] = (outcome, exec_us)
            else:
                skips[lane.runner] = outcome
        now = time.perf_counter()
        started = self._starts.pop(index, self._waiting_since)
        self._requests.pop(index, None)
        self._handed, self._waiting, self._pending = index + 1, -1, set()
        return InputAnswers(index, answers, skips, time.time() - (now - started), started)

    # -- a lane: one model's task on the pool ----------------------------------------------------------

    def _work(self, lane: _Lane) -> None:
        runner = lane.runner
        try:
            while True:
                with self._lock:
                    index = self._next_for(lane)
                    if index is None:
                        return
                    request_of = self._requests[index]
                    started = time.perf_counter()
                    lane.calling, lane.started, lane.deadline = index, started, started + self._timeout
                    self._starts.setdefault(index, started)
                try:
                    outcome = self._invoke(runner, request_of(runner), self._call_timeout)
                except Exception as error:  # a bug must cost one result, not the map
                    logger.exception("unexpected error calling model %s", runner.model_id)
                    outcome = CallOutcome(error=ErrorType.FAILED, detail=f"client error: {error!r}")
                ended = time.perf_counter()
                with self._lock:
                    self._record(lane, index, outcome, started, ended)
        finally:
            with self._lock:
                lane.done, lane.calling = True, -1
                self._answered.notify_all()

    def _next_for(self, lane: _Lane) -> int | None:
        """The input ``lane`` calls next (lock held), waiting for it to be pulled; None when the lane ends."""
        while True:
            if self._stopped or lane.runner.closed:
                return None
            if lane.busy is not None:  # paused after a call that came back with no answer
                remaining = lane.paused_until - time.perf_counter()
                if remaining > 0:
                    self._fed.wait(remaining)
                    continue
                self._free(lane)
            index = max(lane.next, self._handed)
            if index < self._pulled:
                return index
            if self._end is not None:
                return None
            self._fed.wait()

    def _record(self, lane: _Lane, index: int, outcome: CallOutcome, started: float, ended: float) -> None:
        """What a call that came back means for ``lane`` (lock held)."""
        lane.calling = -1
        lane.next = max(lane.next, index + 1)
        timed_out = index in lane.answers  # the coordinator already answered it TIMEOUT: the node was busy
        if outcome is CLOSED_OUTCOME:  # the model left (or close()): its task ends
            lane.busy = None
            lane.answers.setdefault(index, (outcome, int((ended - started) * 1_000_000), True))
        elif not timed_out and ended - started <= self._timeout + ROUND_MARGIN:
            lane.answers[index] = (outcome, int((ended - started) * 1_000_000), True)
            if outcome.error is _TIMEOUT:  # no answer, before the deadline: busy or unreachable, pause
                lane.busy = f"{SKIPPED}paused after input {index} got no answer ({outcome.detail})"
                lane.paused_until = ended + self._timeout
        else:
            if not timed_out:  # late, and nobody waited for it meanwhile: a timeout all the same
                late = CallOutcome(error=_TIMEOUT, detail=f"DEADLINE_EXCEEDED: no answer within {self._timeout:g}s")
                lane.answers[index] = (late, int(self._timeout * 1_000_000), True)
            if outcome.error is _TIMEOUT and ended - started >= self._call_timeout - ROUND_MARGIN:
                self._charge_still_busy(lane, index)
            elif lane.busy is not None:
                self._free(lane)  # its late answer (discarded) says the node is free
        waiting = self._waiting
        if self._stopped:
            self._answered.notify_all()
        elif waiting >= 0 and waiting in lane.answers:
            pending = self._pending
            if lane in pending:
                pending.discard(lane)
                if not pending:
                    self._answered.notify_all()
            elif not pending:  # the coordinator may be waiting on busy models: this one answered (or skipped)
                self._answered.notify_all()

    def _charge_still_busy(self, lane: _Lane, stuck: int) -> None:
        """The longer deadline passed too (lock held): one more timeout, on the first input not yet handed over."""
        target = max(lane.next, self._handed)
        detail = f"{SKIPPED}still busy with input {stuck} after {self._call_timeout:g}s: counted as a timeout"
        lane.answers[target] = (CallOutcome(error=_TIMEOUT, detail=detail, code=STILL_BUSY), 0, False)
        lane.next, lane.busy = target + 1, None
        logger.warning("model %s: no answer to input %d within %gs; charged another timeout, going on",
                       lane.runner.model_id, stuck, self._call_timeout)

    def _free(self, lane: _Lane) -> None:
        """The node is free again (lock held): resume on the first input not handed over, unless it is under way."""
        reason, lane.busy = lane.busy, None
        index = max(lane.next, self._handed)
        if index == self._waiting and index not in lane.answers:
            lane.answers[index] = (CallOutcome(error=_TIMEOUT, detail=reason), 0, False)
            lane.next = index + 1
            self._answered.notify_all()
