"""Long waits on the caller's thread, in short slices, so that Ctrl-C is heard at once.

Python runs a signal's handler (``KeyboardInterrupt`` for Ctrl-C) on the main
thread, between two bytecodes. A thread blocked on a lock leaves that wait
early only if the signal interrupts the wait itself. When the signal lands just
before the thread blocks (a busy machine makes that window wide), or on
another thread of the process, the handler waits with it: a 60 s ``init()``
would hear Ctrl-C a minute late. ``wait_for`` waits in slices of
``SIGNAL_CHECK_EVERY`` seconds, so a signal is heard within one slice,
whatever the load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["SIGNAL_CHECK_EVERY", "wait_for"]

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
