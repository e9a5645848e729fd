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
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, wait
from typing import TypeVar

__all__ = ["SIGNAL_CHECK_EVERY", "wait_event", "wait_for", "wait_futures"]

_T = TypeVar("_T")

#: The longest a wait goes without the waiting thread running Python code (where signals are handled).
SIGNAL_CHECK_EVERY = 0.2


def _slices(timeout: float | None) -> Iterator[float]:
    """The lengths of a wait's slices, each at most ``SIGNAL_CHECK_EVERY``, until ``timeout`` (None: for ever).

    The first is always given, of zero length if need be: a wait looks at least once.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    first = True
    while True:
        left = SIGNAL_CHECK_EVERY if deadline is None else deadline - time.monotonic()
        if left <= 0 and not first:
            return
        first = False
        yield max(0.0, min(SIGNAL_CHECK_EVERY, left))


def wait_for(condition: threading.Condition, predicate: Callable[[], bool], timeout: float | None) -> bool:
    """``condition.wait_for(predicate, timeout)``, the caller holding ``condition``, in short slices."""
    result = predicate()
    for seconds in _slices(timeout):
        if result:
            break
        result = condition.wait_for(predicate, seconds)
    return result


def wait_event(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)``, in short slices."""
    return any(event.wait(seconds) for seconds in _slices(timeout)) or event.is_set()


def wait_futures(futures: Collection[Future[_T]], timeout: float) -> set[Future[_T]]:
    """The futures done within ``timeout`` (``concurrent.futures.wait``), in short slices.

    Each slice waits only on those still pending: a round of N calls costs no
    more than one wait, whatever its length.
    """
    done: set[Future[_T]] = set()
    pending: Collection[Future[_T]] = futures
    for seconds in _slices(timeout):
        more, pending = wait(pending, timeout=seconds)
        done |= more
        if not pending:
            break
    return done
