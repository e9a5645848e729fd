"""The threads a LocalModelNode runs its gRPC handlers on, which never hold the process at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its workers when the
interpreter exits, so a participant's method sleeping in one keeps a test
script alive until it returns (a Ctrl-C took 28 s with a model sleeping 30 s).
A model call cannot be interrupted, and a real node's process would simply be
gone; here the node's ``stop()`` leaves such a call to end on its own, on a
daemon thread that interpreter exit does not wait for.

``HandlerPool`` owns its threads: ``shutdown()`` tells each idle one to end
and cancels what was queued; a thread still inside a handler ends when the
handler returns. It implements only what ``grpc.server`` uses of an executor
(``submit`` and ``shutdown``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

__all__ = ["HandlerPool"]

_T = TypeVar("_T")
_Work = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class HandlerPool(Executor):
    """Up to ``max_workers`` daemon threads named ``<thread_name_prefix>_<n>``, started as work comes."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self.max_workers = max_workers
        self.thread_name_prefix = thread_name_prefix
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one release per thread waiting for work
        self._lock = threading.Lock()  # guards _threads and _closed
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def threads(self) -> list[threading.Thread]:
        """Every thread the pool started (some may have ended)."""
        with self._lock:
            return list(self._threads)

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run ``fn(*args, **kwargs)`` on an idle thread, or a new one while under ``max_workers``."""
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._work.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                name = f"{self.thread_name_prefix}_{len(self._threads)}"
                thread = threading.Thread(target=self._serve, name=name, daemon=True)
                thread.start()  # listed only once started: shutdown() joins every thread listed
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            future, fn, args, kwargs = work
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:  # handed to whoever waits on the future, as an executor does
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del work, future, fn, args, kwargs  # nothing of the last call kept while idle
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new work; idle threads end at once. ``wait`` joins every thread, handlers included."""
        with self._lock:
            already, self._closed = self._closed, True
            threads = list(self._threads)
        stops = 0 if already else len(threads)  # one None per thread ends it
        if cancel_futures:
            while True:
                try:
                    work = self._work.get_nowait()
                except queue.Empty:
                    break
                if work is None:
                    stops += 1  # put back below
                else:
                    work[0].cancel()
        for _ in range(stops):
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
