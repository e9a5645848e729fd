"""Closing what a coordinator left open: at the interpreter's exit, and when its owner is garbage-collected.

A plain script that ends, or that a Ctrl-C ends, with neither ``close()`` nor
a ``with`` block leaves its runner open. The interpreter's exit then joins the
workers of every ``ThreadPoolExecutor`` (``concurrent.futures`` registers that
join with ``threading._register_atexit``), the call pool's among them, each
blocked in a gRPC call until the round's deadline: the process outlived the
Ctrl-C by the whole round. And a runner dropped without ``close()`` stayed
connected for good.

So each runner registers its ``Shutdown`` here (``close_when_abandoned``):

* At exit, one hook starts every registered shutdown still open, then waits
  for them, before ``concurrent.futures`` joins its workers: closing cancels
  the calls in flight, so that join is immediate. The hook is registered with
  ``threading._register_atexit`` after ``concurrent.futures.thread`` is
  imported, and ``threading._shutdown`` runs those hooks in reverse order of
  registration (CPython 3.10 to 3.13, checked by tests/test_exit.py). The
  ``atexit`` module's handlers run after that join, too late; it is the
  fallback where ``threading._register_atexit`` is missing. Python 3.12
  refuses new threads in these hooks: each tear-down then runs on the exiting
  thread (``Shutdown.start``), one after another.
* When the owner is garbage-collected (a runner dropped without ``close()``),
  a ``weakref.finalize`` callback starts a thread that closes it, and returns:
  a finalizer runs wherever the collector interrupted, perhaps under one of
  mrclient's locks, so it takes no lock and does no IO of its own. It holds
  the ``Shutdown``, never the owner (which would keep the owner alive).

A finished shutdown leaves the registry. The registry is a dict whose single
operations are atomic, with no lock: registering, leaving and the finalizer
are safe from a signal handler or a collection at any point.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401  # its exit hook (the join) is registered before ours
import logging
import threading
import weakref

from .shutdown import Shutdown

__all__ = ["EXIT_WAIT", "close_all", "close_when_abandoned"]

logger = logging.getLogger(__name__)

#: How long the exit hook waits for each tear-down; each is bounded on its own, far below this.
EXIT_WAIT = 30.0

_open: dict[int, Shutdown] = {}  # id -> shutdown not yet done
_hook_lock = threading.Lock()
_hooked = False


def close_when_abandoned(owner: object, shutdown: Shutdown) -> None:
    """Run ``shutdown`` at interpreter exit, or once ``owner`` is garbage-collected, unless it ran before."""
    _install_exit_hook()
    key = id(shutdown)
    _open[key] = shutdown

    def leave() -> None:
        _open.pop(key, None)

    shutdown.add_done_callback(leave)
    finalizer = weakref.finalize(owner, _abandoned, shutdown)
    finalizer.atexit = False  # the exit hook closes it, before the pools' join that weakref's own hook follows


def _abandoned(shutdown: Shutdown) -> None:
    """The owner was collected without closing: close on a thread of its own (no lock, no IO here)."""
    if shutdown.requested:
        return
    try:
        threading.Thread(target=shutdown.request, args=(None,), name="mrclient-close-abandoned").start()
    except RuntimeError:  # the interpreter is exiting: the exit hook closes it
        pass


def close_all() -> None:
    """Start every registered shutdown still open, then wait for each (the exit hook); never raises."""
    try:
        shutdowns = list(_open.values())
        for shutdown in shutdowns:
            shutdown.start()
        for shutdown in shutdowns:
            if not shutdown.wait(EXIT_WAIT):
                logger.warning("%s still running %ss into the interpreter's exit", shutdown.name, EXIT_WAIT)
    except Exception:  # an exception here would skip the interpreter's other exit hooks
        logger.exception("closing the runners left open at exit failed")


def _install_exit_hook() -> None:
    global _hooked
    with _hook_lock:
        if _hooked:
            return
        register = getattr(threading, "_register_atexit", None)
        if register is None:
            atexit.register(close_all)
        else:
            try:
                register(close_all)
            except RuntimeError:  # the interpreter is exiting already: nothing left to register for
                return
        _hooked = True
