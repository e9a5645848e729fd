"""Long waits on the caller's thread, in short slices, so that Ctrl-C is heard at once.

Python runs a signal's handler (``KeyboardInterrupt`` for Ctrl-C) on the main
thread, between two bytecodes. A thread blocked on a lock leaves that wait
early only if the signal interrupts the wait itself. When the signal lands just
before the thread blocks (a busy machine makes that window wide), or on
another thread of the process, the handler waits with it: a 60 s ``init()``
would hear Ctrl-C a minute late, and a round or a map input its whole
deadline late (a SIGTERM handler that calls ``close()`` included). The waits
here wait in slices of ``SIGNAL_CHECK_EVERY`` seconds, so a signal is heard
within one slice, whatever the load: ``wait_for`` on a condition,
``wait_event`` on an event, ``wait_futures`` on a round's calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, wait
from typing import TypeVar

__all__ = ["SIGNAL_CHECK_EVERY", "wait_event", "wait_for", "wait_futures"]

_T = TypeVar("_T")

#: The longest a wait goes without the waiting thread running Python code (where signals are handled).
SIGNAL_CHECK_EVERY = 0.2


def wait_for(condition: threading.Condition, predicate: Callable[[], bool], timeout: float | None) -> bool:
    """``condition.wait_for(predicate, timeout)``, the caller holding ``condition``, in short slices."""
    deadline = None if timeout is None else time.monotonic() + timeout
    result = predicate()
    while not result:
        if deadline is None:
            wait = SIGNAL_CHECK_EVERY
        else:
            wait = min(SIGNAL_CHECK_EVERY, deadline - time.monotonic())
            if wait <= 0:
                break
        result = condition.wait_for(predicate, wait)
    return result


def wait_event(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)``, in short slices."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not event.is_set():
        if deadline is None:
            wait_now = SIGNAL_CHECK_EVERY
        else:
            wait_now = min(SIGNAL_CHECK_EVERY, deadline - time.monotonic())
            if wait_now <= 0:
                break
        event.wait(wait_now)
    return event.is_set()


def wait_futures(futures: Collection[Future[_T]], timeout: float) -> set[Future[_T]]:
    """The futures done within ``timeout`` (``concurrent.futures.wait``), in short slices.

    Each slice waits only on those still pending: a round of N calls costs no
    more than one wait, whatever its length.
    """
    deadline = time.monotonic() + timeout
    done, pending = wait(futures, timeout=min(SIGNAL_CHECK_EVERY, timeout))
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        more, pending = wait(pending, timeout=min(SIGNAL_CHECK_EVERY, remaining))
        done |= more
    return done
