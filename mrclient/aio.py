"""An awaitable facade over a runner, for coordinators that live in an asyncio event loop.

``AsyncRunner(runner)`` wraps a constructed runner and gives it the async
reference client's surface: ``await init()``, ``await call(...)`` (``predict``
and ``reinitialize`` for a TrainInfer runner), ``await sync()``, ``await
aclose()``, ``async with``. It is a thin layer, not a second client: the round
still runs on the runner's own thread pool, in the same shape; the facade only
moves the waiting off the event loop, and reads the table and statistics
through to the runner.

Who owns what: each blocking operation (an ``init()``, a round) runs on a
thread of the facade's (``mrclient-aio-<operation>``), started for that
operation and ended with it, never on the loop's default executor, which
``asyncio.run()`` waits for at exit. The close runs once, on one thread
(``mrclient-aio-close``), however many ways ask for it (``aclose()``, ``async
with``, a cancelled ``sync()``, a ``sync()`` that saw the runner closed): every
one of them awaits that same close, which closes the runner and then joins the
operation threads. A thread is listed for that join only once it has started
(it is started under the lock that guards the list), so a close racing an
operation's start either joins a running thread or never sees it; an
operation asked for once the close has joined the others runs on the loop
itself, where the closed runner answers at once (it raises, or returns False).
``sync()`` waits on no thread at all: the runner's shutdown calls back into
the loop once it is done. Cancelling ``sync()`` means "stop": the runner is
closed, and ``sync()`` raises ``CancelledError`` once it is and every
operation thread has ended.
Cancelling another await abandons only the wait: the round goes on until its
own deadline, or ends at once when the runner is closed. Rounds leave the GIL
switch interval alone by default, since a long one delays the loop's thread.

A map (``async for results in runner.map(...)``) is one operation: a thread
of the facade's (``mrclient-aio-map``) drives the runner's map iterator, one
input's results per request of the loop, so the window bounds memory as it
does for a synchronous loop. Closing the async generator (``aclose()``,
``contextlib.aclosing``, or its finalization after a ``break``) tells that
thread to end the map and waits for it: once the input under way is handed
over (at most its deadline; at once after ``close()``), the runner is free.
Closing the facade ends it too: the input under way is handed over, then the
``async for`` raises ``MrclientError``, as the synchronous map does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from ._support.tables import fit_line, terminal_width
from ._support.validation import check_timeout
from .cluster.roster import Roster
from .cluster.table import ModelCluster
from .concurrent import DynamicSubclassModelConcurrentRunner, ModelConcurrentRunner, TrainInferModelConcurrentRunner
from .errors import InvalidCoordinatorUsageError, MrclientError
from .runners import ModelRunner
from .stats import CallTotals, ConnectionState, ModelStatsTable, RoundSummary

__all__ = ["AsyncRunner"]

logger = logging.getLogger(__name__)

#: How long closing waits for each operation thread to end once the runner is closed. They end at
#: once then (a round returns, an init() stops waiting); one still running after this is named in a
#: warning and left behind.
THREAD_JOIN_TIMEOUT = 10.0

_R = TypeVar("_R", bound=ModelConcurrentRunner, covariant=True)
_S = TypeVar("_S", bound=ModelConcurrentRunner)
_P = ParamSpec("_P")
_T = TypeVar("_T")

#: What a map's thread answers once the map has no more results.
_END = object()
#: A request of a map's thread: a future to fill with the next results, or None to end the map.
_Feed = queue.SimpleQueue[concurrent.futures.Future[Any] | None]


def _off_the_loop(
    method: Callable[Concatenate[_S, _P], _T],
) -> Callable[Concatenate[AsyncRunner[_S], _P], Coroutine[Any, Any, _T]]:
    """The runner's blocking ``method`` as a coroutine method of the facade, with the same arguments.

    Typed by the runner class it comes from: ``call`` is there for a
    dynamic-subclass runner only, ``predict`` for a TrainInfer one.
    """
    name = method.__name__
    owner = method.__qualname__.partition(".")[0]

    @functools.wraps(method)
    async def awaitable(self: AsyncRunner[_S], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        bound: Callable[_P, _T] | None = getattr(self.runner, name, None)
        if bound is None:
            raise InvalidCoordinatorUsageError(
                f"{name}() is a method of {owner}; this AsyncRunner wraps a {type(self.runner).__name__}"
            )
        return await self._off_loop(name, bound, *args, **kwargs)

    awaitable.__doc__ = f"Await :meth:`mrclient.{owner}.{name}`, run off the event loop.\n\n" + inspect.cleandoc(
        method.__doc__ or ""
    )
    return awaitable


def _iterated_off_the_loop(
    method: Callable[Concatenate[_S, _P], Generator[_T, None, None]],
) -> Callable[Concatenate[AsyncRunner[_S], _P], AsyncIterator[_T]]:
    """The runner's map ``method`` as an async iterator method of the facade, with the same arguments.

    The arguments are checked when it is called, on the loop (the runner's
    method checks them and returns its iterator without blocking); the map
    starts with the first ``async for`` step, on a thread of the facade's.
    """
    name = method.__name__
    owner = method.__qualname__.partition(".")[0]

    @functools.wraps(method)
    def iterated(self: AsyncRunner[_S], /, *args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[_T]:
        bound: Callable[_P, Generator[_T, None, None]] | None = getattr(self.runner, name, None)
        if bound is None:
            raise InvalidCoordinatorUsageError(
                f"{name}() is a method of {owner}; this AsyncRunner wraps a {type(self.runner).__name__}"
            )
        return self._iterate(name, bound(*args, **kwargs))

    iterated.__doc__ = (
        f"``async for results in runner.{name}(...)``: :meth:`mrclient.{owner}.{name}`, off the loop.\n\n"
        "The map runs on a thread of the facade's, which also pulls the inputs\n"
        "(a generator of inputs must not touch the loop). To leave it early and\n"
        "use the runner at once, close the iterator (``contextlib.aclosing``):\n"
        "that ends the map once the input under way is handed over.\n\n"
    ) + inspect.cleandoc(method.__doc__ or "")
    return iterated


class AsyncRunner(Generic[_R]):
    """A runner for asyncio coordinators: the async reference client's surface over a mrclient runner.

    Construct the runner as usual and wrap it; everything else reads as with
    the reference client::

        runner = AsyncRunner(DynamicSubclassModelConcurrentRunner(timeout=10, crunch_id=..., ...))
        await runner.init()
        results = await runner.call("predict")

    Rounds, ``init()`` and the close run off the event loop, on threads the
    facade starts and ends; ``await sync()`` returns once the runner is closed,
    and closes it when cancelled. The model table, listeners and statistics
    read through to ``runner`` (listeners run on mrclient's listener thread,
    not on the loop: hand work to the loop with ``loop.call_soon_threadsafe``).

    ``round_switch_interval`` replaces the runner's: None (the default) leaves
    Python's GIL switch interval alone during rounds, since mrclient's longer
    interval, process-wide, would delay the event loop's thread beside a round.
    """

    def __init__(self, runner: _R, *, round_switch_interval: float | None = None) -> None:
        if not isinstance(runner, ModelConcurrentRunner):
            raise InvalidCoordinatorUsageError(
                f"AsyncRunner wraps a constructed runner (DynamicSubclassModelConcurrentRunner(...) or "
                f"TrainInferModelConcurrentRunner(...)), not {type(runner).__name__}"
            )
        runner.round_switch_interval = (
            None if round_switch_interval is None else check_timeout("round_switch_interval", round_switch_interval)
        )
        self._runner = runner
        self._lock = threading.Lock()  # guards the four fields below
        self._operations: list[threading.Thread] = []  # started ones only: a join never meets an unstarted thread
        self._closing: tuple[threading.Thread, concurrent.futures.Future[None]] | None = None  # the one close
        self._joined = False  # the close has listed the operations to join: later ones run on the loop
        self._feeds: set[_Feed] = set()  # the request queues of the maps under way

    def __repr__(self) -> str:
        return fit_line(f"<AsyncRunner over {self._runner.overview().line}>", terminal_width())

    @property
    def runner(self) -> _R:
        """The wrapped (synchronous) runner."""
        return self._runner

    # -- lifecycle --------------------------------------------------------------------------

    init = _off_the_loop(ModelConcurrentRunner.init)
    wait_for_models = _off_the_loop(ModelConcurrentRunner.wait_for_models)

    async def sync(self) -> None:
        """Return once the runner is closed; the model table is kept current meanwhile.

        No thread waits for this. Cancelled (a host's shutdown cancels the task
        that awaits it), it closes the runner and raises ``CancelledError``
        once the runner is closed and the facade's threads have ended; being
        cancelled again meanwhile does not cut that short (closing is bounded).
        """
        try:
            await self._closed()
        except asyncio.CancelledError:
            await self._close()
            raise
        await self._close()  # closed by someone else: end the facade's threads too

    async def aclose(self) -> None:
        """Close the runner, off the loop, and wait until it and the facade's threads are done; idempotent."""
        await self._close()

    @property
    def closed(self) -> bool:
        """Whether the runner was closed (``aclose()``, a cancelled ``sync()``, or ``runner.close()``)."""
        return self._runner.closed

    async def __aenter__(self) -> AsyncRunner[_R]:
        await self.init()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    # -- rounds -----------------------------------------------------------------------------

    call = _off_the_loop(DynamicSubclassModelConcurrentRunner.call)
    predict = _off_the_loop(TrainInferModelConcurrentRunner.predict)
    reinitialize = _off_the_loop(TrainInferModelConcurrentRunner.reinitialize)

    map = _iterated_off_the_loop(DynamicSubclassModelConcurrentRunner.map)
    map_predict = _iterated_off_the_loop(TrainInferModelConcurrentRunner.map_predict)

    # -- read through to the runner (none of these blocks) ------------------------------------

    @property
    def models(self) -> list[ModelRunner]:
        """The models ready to be called, as a snapshot."""
        return self._runner.models

    @property
    def model_cluster(self) -> ModelCluster:
        """The runner's model table (``model_cluster.models_run``, as with the reference client)."""
        return self._runner.model_cluster

    @property
    def connected(self) -> bool:
        """Whether the orchestrator connection is up."""
        return self._runner.connected

    @property
    def connection_state(self) -> ConnectionState:
        """The orchestrator connection as a snapshot."""
        return self._runner.connection_state

    def on_model_joined(
        self, listener: Callable[[ModelRunner], None], *, replay: bool = True
    ) -> Callable[[ModelRunner], None]:
        """See :meth:`ModelConcurrentRunner.on_model_joined`; ``listener`` runs on mrclient's thread."""
        return self._runner.on_model_joined(listener, replay=replay)

    def on_model_left(self, listener: Callable[[ModelRunner], None]) -> Callable[[ModelRunner], None]:
        """See :meth:`ModelConcurrentRunner.on_model_left`; ``listener`` runs on mrclient's thread."""
        return self._runner.on_model_left(listener)

    def on_round(self, listener: Callable[[RoundSummary], None]) -> Callable[[RoundSummary], None]:
        """See :meth:`ModelConcurrentRunner.on_round`; ``listener`` runs on mrclient's thread."""
        return self._runner.on_round(listener)

    def joined_since_last(self) -> Roster:
        """See :meth:`ModelConcurrentRunner.joined_since_last`."""
        return self._runner.joined_since_last()

    def stats(self, *, include_left: bool = True) -> ModelStatsTable[ModelRunner]:
        """Every model's statistics, those that left included (see :meth:`ModelConcurrentRunner.stats`)."""
        return self._runner.stats(include_left=include_left)

    def forget_left(self) -> int:
        """Drop the models that left from :meth:`stats` (see :meth:`ModelConcurrentRunner.forget_left`)."""
        return self._runner.forget_left()

    def totals(self) -> CallTotals:
        """Rounds and calls so far, all models together (see :meth:`ModelConcurrentRunner.totals`)."""
        return self._runner.totals()

    def report_failure(self, model_runner: ModelRunner, failure_code: str, failure_reason: str | None = None) -> None:
        """Report a model and drop it; queued for the orchestrator thread, never waits on the network."""
        self._runner.report_failure(model_runner, failure_code, failure_reason)

    # -- off the loop -----------------------------------------------------------------------

    async def _off_loop(self, what: str, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``work`` on a thread of its own and await its result; cancelling abandons the wait only.

        Once the close has joined the operation threads, ``work`` runs here, on
        the loop: the runner is closed by then, so it raises or returns at once,
        and no thread outlives the close.
        """
        call = functools.partial(work, *args, **kwargs)
        done = self._start(what, call)
        if done is None:  # not started: the close has joined the others
            return call()
        return await asyncio.wrap_future(done)

    def _start(self, what: str, work: Callable[[], _T]) -> concurrent.futures.Future[_T] | None:
        """Start ``work`` on a thread of its own, listed for the close's join; None once that join began."""
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()
        thread = threading.Thread(target=_fill, args=(done, work), name=f"mrclient-aio-{what}", daemon=True)
        with self._lock:
            if self._joined:
                return None
            self._operations = [t for t in self._operations if t.is_alive()]
            thread.start()  # under the lock: listed only once started (start() waits for that alone)
            self._operations.append(thread)
        return done

    async def _iterate(self, what: str, iterator: Generator[_T, None, None]) -> AsyncIterator[_T]:
        """Drive ``iterator`` on a thread of the facade's, one item per ``async for`` step; end it when left."""
        feed: _Feed = queue.SimpleQueue()
        with self._lock:
            self._feeds.add(feed)
        driven = self._start(what, functools.partial(_drive, iterator, feed))
        if driven is None:  # the close has joined the others: the closed runner's map ends at once, here
            with self._lock:
                self._feeds.discard(feed)
            try:
                for item in iterator:
                    yield item
            finally:
                iterator.close()
            return
        ended = asyncio.wrap_future(driven)
        try:
            while True:
                request: concurrent.futures.Future[Any] = concurrent.futures.Future()
                feed.put(request)
                answer = asyncio.wrap_future(request)
                await asyncio.wait((answer, ended), return_when=asyncio.FIRST_COMPLETED)
                if not answer.done():  # the thread ended the map unasked: the facade's close told it to
                    answer.cancel()
                    raise MrclientError("the runner was closed during the map")
                item = answer.result()
                if item is _END:
                    return
                yield item
        finally:
            feed.put(None)  # the thread ends the map once the input under way is handed over
            with self._lock:
                self._feeds.discard(feed)
            # Wait for that (the runner is free after it); cancelled meanwhile, the thread ends on its own.
            await ended

    def _closed(self) -> asyncio.Future[None]:
        """A future of this loop's, resolved once the runner is closed; no thread waits for it."""
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not closed.done():
                closed.set_result(None)

        def wake() -> None:  # on the thread that finished the close, or here if it is done
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        self._runner.on_closed(wake)
        return closed

    def _close_operation(self) -> tuple[threading.Thread, concurrent.futures.Future[None]]:
        """The facade's one close, started by the first to ask; every later ask gets the same."""
        with self._lock:
            if self._closing is None:
                done: concurrent.futures.Future[None] = concurrent.futures.Future()
                thread = threading.Thread(
                    target=_fill, args=(done, self._close_blocking), name="mrclient-aio-close", daemon=True
                )
                thread.start()  # under the lock, like every operation's
                self._closing = (thread, done)
            return self._closing

    async def _close(self) -> None:
        """Await the close (started if need be), through further cancellations; then join its thread."""
        thread, done = self._close_operation()
        closing = asyncio.wrap_future(done)  # a future, not a task: asyncio.run's final cancel passes it by
        interrupted = False
        while not closing.done():
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                interrupted = True  # closing is bounded: finish it, then say so
        thread.join(THREAD_JOIN_TIMEOUT)  # it set its result as its last act
        closing.result()
        if interrupted:
            raise asyncio.CancelledError()

    def _close_blocking(self) -> None:
        """Close the runner, then join every operation thread (each ends at once: the runner is closed)."""
        self._runner.close()
        with self._lock:
            self._joined = True
            operations, self._operations = self._operations, []
            for feed in self._feeds:  # a map's thread may be waiting for the loop to ask for more
                feed.put(None)
        for thread in operations:
            thread.join(THREAD_JOIN_TIMEOUT)
            if thread.is_alive():
                logger.warning("the %s thread is still running %ss after close(); leaving it behind",
                               thread.name, THREAD_JOIN_TIMEOUT)


def _fill(done: concurrent.futures.Future[_T], work: Callable[[], _T]) -> None:
    """Run ``work`` into ``done``, unless the wait for it was cancelled before it started."""
    if not done.set_running_or_notify_cancel():
        return
    try:
        result = work()
    except BaseException as error:  # handed to the awaiting coroutine, whatever it is
        done.set_exception(error)
    else:
        done.set_result(result)


def _drive(iterator: Generator[Any, None, None], feed: _Feed) -> None:
    """A map's thread: one ``next(iterator)`` per request on ``feed``, until None or the end; then close it."""
    try:
        while True:
            request = feed.get()
            if request is None:
                return
            if not request.set_running_or_notify_cancel():
                continue  # that wait was cancelled: the loop leaves, and says so next
            try:
                item = next(iterator)
            except StopIteration:
                request.set_result(_END)
                return
            except BaseException as error:  # handed to the awaiting coroutine, whatever it is
                request.set_exception(error)
                return
            request.set_result(item)
    finally:
        iterator.close()  # the map's end: its lock released, on the thread that ran it
