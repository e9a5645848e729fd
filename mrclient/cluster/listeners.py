"""Calling user listeners in order, on a thread of their own.

Listeners are user code: they may be slow, raise, or call back into the
cluster. Running them on one dispatcher thread keeps them off the WebSocket
thread and outside every lock, delivers events in the order they were posted,
and means a listener that raises only costs a log line.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["ListenerDispatcher"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[T], None]
_Queue = queue.SimpleQueue[tuple[str, tuple[Listener[T], ...], T] | None]


class ListenerDispatcher(Generic[T]):
    """Posts ``(kind, item)`` events to the listeners of that kind, in order.

    The thread starts with the first event that has a listener and ends at
    ``close()``, after the events already posted have been delivered; each
    thread has a queue of its own, so ``stop_thread()`` can end one and a
    later event start the next.
    """

    def __init__(self, name: str, join_timeout: float = 5.0) -> None:
        self.name = name
        self.join_timeout = join_timeout
        self._lock = threading.Lock()
        self._listeners: dict[str, tuple[Listener[T], ...]] = {}
        self._queue: _Queue[T] = queue.SimpleQueue()  # the current thread's; None stops it
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, kind: str, listener: Listener[T], replay: Iterable[T] = ()) -> None:
        """Register ``listener`` for ``kind``; it first hears of the ``replay`` items, alone and in order.

        The replay is queued with the registration, under one lock, so no event
        posted afterwards can overtake it.
        """
        with self._lock:
            self._listeners[kind] = (*self._listeners.get(kind, ()), listener)
            for item in replay:
                self._enqueue(kind, (listener,), item)

    def post(self, kind: str, item: T) -> None:
        """Queue ``item`` for the listeners of ``kind`` registered now; never blocks."""
        with self._lock:
            listeners = self._listeners.get(kind, ())
            if listeners:
                self._enqueue(kind, listeners, item)

    def _enqueue(self, kind: str, listeners: tuple[Listener[T], ...], item: T) -> None:
        """Queue one event (lock held); the thread starts with the first."""
        if self._closed:
            return
        if self._thread is None:
            thread = threading.Thread(target=self._run, args=(self._queue,), name=self.name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no new thread while the interpreter exits (Python 3.12): not delivered
                logger.info("the interpreter is exiting: the %s listeners do not hear of this %s event",
                            self.name, kind)
                return
            self._thread = thread  # kept only once started: close() and stop_thread() join what they find
        self._queue.put((kind, listeners, item))

    def stop_thread(self) -> None:
        """Deliver what was posted and end the thread, keeping the listeners; the next event starts another.

        Waits at most ``join_timeout``, like ``close()``.
        """
        with self._lock:
            thread, stopping = self._thread, self._queue
            if thread is None:
                return
            self._thread, self._queue = None, queue.SimpleQueue()
        stopping.put(None)
        if thread is not threading.current_thread():
            self._join(thread)

    def close(self) -> None:
        """Deliver what was posted, then stop the thread; idempotent.

        Waits at most ``join_timeout`` for a slow listener. Called from a
        listener, it returns at once and the thread ends after that listener.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is None or thread is threading.current_thread():
            return
        self._join(thread)

    def _join(self, thread: threading.Thread) -> None:
        thread.join(self.join_timeout)
        if thread.is_alive():
            logger.warning("a %s listener is still running after %ss; leaving it behind", self.name, self.join_timeout)

    def _run(self, events: _Queue[T]) -> None:
        while True:
            event = events.get()
            if event is None:
                return
            kind, listeners, item = event
            for listener in listeners:
                try:
                    listener(item)
                except Exception:
                    logger.exception("the %s listener %r failed on %r", kind, listener, item)
