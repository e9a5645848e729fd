"""A live view of a runner in a Jupyter notebook: its model table and last round, updated in place.

``show(runner)`` displays the runner's overview (``runner.overview()``: its
line, the connection, the last round's summary, the model table) as HTML under
a display id, and returns a ``LiveView`` that keeps it current through
IPython's display handle (``update_display_data``; no widget library). The
cell returns at once; the notebook stays usable while rounds run.

Who does what: the runner's listeners (``on_round``, ``on_model_joined``,
``on_model_left``) run on mrclient's listener threads and only note what
happened and mark the view stale, under the view's condition; they never build
HTML, so a thousand joins at ``init()`` cost them nothing. The view's own
thread (``mrclient-notebook``, owned by the ``LiveView``) redraws when the view
is stale, at most once per ``every`` seconds, and sends the update. It reads
the runner's snapshots only (the table, each model's statistics, the
connection state): no call reaches a model.

The model table is the runner's overview (``RunnerOverview.rows``): the
models that left in the last few minutes first (marked with why and when,
as the cluster recorded it), then the ready ones, trouble first.

It stops once the runner's ``close()`` has finished (``on_closed``: by then
every round's summary and every leave has reached it, and the cluster has
marked every model ready at the close ``closed``) or on ``stop()``: one last
redraw says so and the thread ends. That last frame is the table as the close
left it, read from the runner then: every model that was ready (joined ones
included), marked ``closed``, counted in the caption, and the last round.
The listeners stay registered with the runner (it has no way to remove one)
but do nothing once the view has stopped.

IPython is imported by ``show`` only: the plain install does not need it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._support.tables import counted
from .._support.validation import (
    check_callable,
    check_flag,
    check_instance,
    check_positive_int,
    check_timeout,
    check_wait,
)
from .._support.waits import wait_event
from ..concurrent.base import ModelConcurrentRunner
from ..stats import RoundSummary

if TYPE_CHECKING:
    from ..runners import ModelRunner

__all__ = ["LiveView", "show"]

logger = logging.getLogger(__name__)

#: The longest the view's thread sleeps without looking whether it should stop (a bound, not a poll).
IDLE_WAIT = 60.0

#: ``publish(bundle)``: send a MIME bundle (``{"text/html": ..., "text/plain": ...}``) to the display.
Publish = Callable[[Mapping[str, str]], None]


class LiveView:
    """The live HTML of one runner in a notebook; made by :func:`show`.

    ``updates`` counts the redraws sent; ``stopped`` turns True once the view
    has drawn its last (the runner closed, or ``stop()``). ``every`` is the
    shortest time between two redraws, ``rows`` the most models the table
    shows (trouble first).
    """

    def __init__(
        self,
        runner: ModelConcurrentRunner,
        publish: Publish,
        *,
        every: float = 0.5,
        rows: int = 50,
        display_id: str | None = None,
    ) -> None:
        self.runner = check_instance("runner", runner, ModelConcurrentRunner,
                                     "a concurrent runner (DynamicSubclass... or TrainInfer...)")
        self.display_id = check_instance("display_id", display_id, str, "a string or None", optional=True)
        self.every = check_timeout("every", every)
        self.rows = check_positive_int("rows", rows)
        self.updates = 0
        self._publish = check_callable("publish", publish, "a function of a MIME bundle")
        self._changed = threading.Condition()
        self._stale = False
        self._stopping = False
        self._runner_closed = False  # close() has finished
        self._done = threading.Event()
        self._running = False  # the thread was started
        self._last_round: RoundSummary | None = None
        self._thread = threading.Thread(target=self._run, name="mrclient-notebook", daemon=True)

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "live"
        return f"<LiveView of {self.runner.overview().line}: {state}, {counted(self.updates, 'update')}>"

    @property
    def stopped(self) -> bool:
        """Whether the view drew its last (the runner closed, or ``stop()``); its thread has ended or is ending."""
        return self._done.is_set()

    def start(self) -> LiveView:
        """Listen to the runner and start the view's thread (``show`` does it); returns the view."""
        self.runner.on_round(self._round)
        self.runner.on_model_joined(self._joined, replay=False)
        self.runner.on_model_left(self._leaving)
        self.runner.on_closed(self._closed)
        with self._changed:
            self._thread.start()
            self._running = True  # set once started, under the condition: stop() never joins an unstarted thread
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Draw the last view and end the thread; True once it has ended (within ``timeout`` seconds)."""
        timeout = check_wait("timeout", timeout)
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            running = self._running
        if running and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the view has stopped (the runner closed, or ``stop()``); True if it has."""
        return wait_event(self._done, None if timeout is None else check_wait("timeout", timeout))

    # -- the runner's listeners: note and mark stale, nothing more ---------------------------------

    def _round(self, summary: RoundSummary) -> None:
        with self._changed:
            self._last_round = summary
            self._mark()

    def _joined(self, model: ModelRunner) -> None:
        with self._changed:
            self._mark()

    def _leaving(self, model: ModelRunner) -> None:
        with self._changed:
            self._mark()

    def _closed(self) -> None:
        with self._changed:
            self._runner_closed = True
            self._changed.notify_all()

    def _mark(self) -> None:
        """Called with the condition held."""
        if not self._stopping:
            self._stale = True
            self._changed.notify_all()

    # -- the view's thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._stale or self._stopping or self._runner_closed, IDLE_WAIT)
                    stale, self._stale = self._stale, False
                    final = self._stopping or self._runner_closed
                if stale or final:
                    self._redraw(final)
                if final:
                    return
                with self._changed:  # at most one redraw per `every` seconds
                    self._changed.wait_for(lambda: self._stopping or self._runner_closed, self.every)
        except Exception:  # a display that cannot be updated (the kernel is going away): stop, say why
            logger.exception("the live view of %s stopped", self.runner.model_cluster.crunch_id)
        finally:
            self._done.set()

    def _redraw(self, final: bool) -> None:
        self._publish(self.bundle(final))
        self.updates += 1

    def bundle(self, final: bool = False) -> dict[str, str]:
        """The view now, as a MIME bundle: ``text/html`` and a few ``text/plain`` lines."""
        check_flag("final", final)
        runner = self.runner
        with self._changed:
            last_round = self._last_round
        if runner.closed:
            note = f"the runner is closed; this view stopped at {time.strftime('%H:%M:%S')}"
        elif final:
            note = f"this view stopped at {time.strftime('%H:%M:%S')}"
        else:
            note = f"live view, updated {time.strftime('%H:%M:%S')}"
        overview = dataclasses.replace(runner.overview(), last_round=last_round)
        body = overview.html(rows=overview.rows(self.rows), note=note)
        text = "\n".join(
            [overview.line, *([f"last round: {last_round.line}"] if last_round else []), overview.caption, note]
        )
        return {"text/html": body, "text/plain": text}


def show(runner: ModelConcurrentRunner, *, every: float = 0.5, rows: int = 50) -> LiveView:
    """Display ``runner`` live in this notebook: the model table and the last round, updated in place.

    Returns at once; the display is redrawn after each round and each model
    that joins or leaves (at most every ``every`` seconds, ``rows`` models
    shown, trouble first), until the runner closes or ``view.stop()``. Needs
    IPython (any Jupyter kernel has it); touches no model.
    """
    try:
        import IPython.display
    except ImportError as error:
        raise ImportError("mrclient.notebook.show() runs in a Jupyter notebook (it needs IPython)") from error
    ipython_display: Any = IPython.display.display
    handle: Any = None

    def publish(bundle: Mapping[str, str]) -> None:
        handle.update(dict(bundle), raw=True)

    view = LiveView(runner, publish, every=every, rows=rows)  # checks the arguments before anything is shown
    handle = ipython_display(view.bundle(), raw=True, display_id=True)
    view.display_id = handle.display_id
    return view.start()
