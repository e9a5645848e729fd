"""Closing from anywhere: another thread, a listener, or a signal handler in the middle of a round.

A signal handler runs on the main thread, on top of whatever frame it
interrupted. When that frame is mrclient's own code, it may hold one of
mrclient's locks (the call pool's, the model table's, an executor's), and a
``close()`` that took the same lock on that thread would wait forever: the
frame holding it resumes only once the handler returns.

So the work of closing runs once, on a thread of its own (``Shutdown``), which
takes each lock when it is free. ``close()`` starts that thread and waits for
it, except when mrclient's own code runs beneath it on the calling thread (a
signal handler that interrupted a round, a listener): then it returns at once.
The round it interrupted ends as soon as the runners are closed, and the next
``close()``, or the end of a ``with`` block, waits for the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["Shutdown", "runs_library_code"]

logger = logging.getLogger(__name__)

#: mrclient's modules that use the library like any coordinator: they hold none of its locks.
_USERS = ("mrclient.cli", "mrclient.__main__", "mrclient.testing", "mrclient.aio")


def runs_library_code(frame: FrameType | None) -> bool:
    """Whether ``frame``, or any frame beneath it (its callers), runs mrclient's library code."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if _is_library(module):
            return True
        frame = frame.f_back
    return False


def _is_library(module: str) -> bool:
    if module != "mrclient" and not module.startswith("mrclient."):
        return False
    return not any(module == user or module.startswith(f"{user}.") for user in _USERS)


class Shutdown:
    """Runs ``tear_down`` once, on a thread of its own; asking for it is safe from anywhere.

    ``requested`` turns True at the first ``request()``; ``done`` is set once
    ``tear_down`` returned (or raised: it is logged), and the callbacks given to
    ``add_done_callback`` are called then (an event loop's way to hear of it
    without a thread waiting on ``done``).
    """

    def __init__(self, tear_down: Callable[[], None], name: str) -> None:
        self.name = name
        self.requested = False
        self.done = threading.Event()
        self._tear_down = tear_down
        self._once = threading.Lock()  # taken, without waiting, by the first request; never released
        self._thread: threading.Thread | None = None
        self._callbacks: list[Callable[[], None]] = []  # guarded by _callbacks_lock, until done
        self._callbacks_lock = threading.Lock()

    def request(self, caller: FrameType | None) -> None:
        """Start the tear-down (once); wait for it to end unless ``caller`` runs library code.

        ``caller`` is the frame that asked (``close()``'s caller). Beneath it,
        library code may hold a lock the tear-down needs, so waiting could
        last forever; otherwise the tear-down takes each lock when it is free.
        """
        self.start()
        if not runs_library_code(caller):
            self.wait()

    def start(self) -> None:
        """Start the tear-down on its thread (once) and return; where no thread can start, run it here.

        No thread starts while the interpreter exits (Python 3.12 refuses them
        from the exit hooks): the tear-down then runs on the calling thread.
        """
        self.requested = True
        if self._once.acquire(blocking=False):
            thread = threading.Thread(target=self._run, name=self.name)  # not a daemon: exit waits for it
            self._thread = thread  # read only once done is set, by then started (or None: it ran here)
            try:
                thread.start()
            except RuntimeError:  # no new threads (the interpreter is exiting): here, then
                self._thread = None
                self._run()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the tear-down has ended (``timeout`` seconds at most); True if it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.done.wait(timeout):
            return False
        started = self._thread
        if started is not None and started is not threading.current_thread():
            # done is set just before the thread ends, once its callbacks are called
            started.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return not started.is_alive()
        return True

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the tear-down is done: at once if it is, else on the thread that finishes it.

        It must be quick and must not raise (an exception is logged).
        """
        with self._callbacks_lock:
            if not self.done.is_set():
                self._callbacks.append(callback)
                return
        _call(callback)

    def _run(self) -> None:
        try:
            self._tear_down()
        except Exception:
            logger.exception("closing %s failed", self.name)
        finally:
            with self._callbacks_lock:
                self.done.set()
                callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                _call(callback)


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("a callback of the shutdown failed: %r", callback)
