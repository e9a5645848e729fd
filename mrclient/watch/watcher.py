"""``mrclient watch``: a crunch's models as the orchestrator announces them, live in a terminal.

By default it reads the orchestrator and nothing else: a ``Watcher`` opens
its own ``OrchestratorConnection`` (one thread, owned and closed here) whose
handler applies each frame to a ``Board`` with the pure rules of
``announcements.apply_frame``, on that thread and without IO. No runner is
made, so no model node is ever contacted: a real node serves one call at a
time, and a watcher that set models up or called them would make the crunch
coordinator's calls fail (``RESOURCE_EXHAUSTED``).

Touching the nodes is opt-in, and says so:

* ``health``: a ``HealthProbe`` (``health_probe``) asks each running
  node's gRPC health service, over a health channel; no ``Setup``, no call;
* ``runner`` and ``call``: a coordinator of its own (``--call``), set up on
  every model, calling a method every ``call.every`` seconds on a thread of
  this module's (``mrclient-watch-calls``), joined once the runner is closed.

The display loop runs on the caller's thread until ``stop`` is set and draws
one of three outputs (see ``display``): ``rich``, ``table`` (plain text)
or ``lines`` (one line per event, when standard output is not a terminal).
Everything this module started is stopped before ``run`` returns.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from ..concurrent import DynamicSubclassModelConcurrentRunner
from ..errors import MrclientError
from ..orchestrator.connection import OrchestratorConnection, OrchestratorSettings
from ..security import GatewayCredentials, SecureCredentials
from ..stats import RoundSummary
from .announcements import Announcement, apply_frame, prune_left
from .display import Lines, ModelCalls, RichScreen, TextScreen, model_rows, summary_parts
from .health_probe import HealthProbe

__all__ = ["LEFT_KEPT_S", "OUTPUTS", "Board", "CallPlan", "HealthPlan", "Watcher", "no_models_notice", "pick_output"]

logger = logging.getLogger(__name__)

OUTPUTS = ("auto", "rich", "table", "lines")
#: How long a model that left stays on the board, seconds.
LEFT_KEPT_S = 300.0


def pick_output(requested: str, tty: bool) -> str:
    """The output to draw: ``auto`` is rich on a terminal that has it, else a plain table, else lines."""
    has_rich = _has_rich()
    if requested == "auto":
        return ("rich" if has_rich else "table") if tty else "lines"
    if requested == "rich" and not has_rich:
        raise ImportError("the rich output needs rich: pip install '.[watch]' (or use --output table)")
    return requested


def _has_rich() -> bool:
    if "rich" in sys.modules:  # None when an import of it failed (or a test blocked it)
        return sys.modules["rich"] is not None
    return importlib.util.find_spec("rich") is not None


def no_models_notice(crunch_id: str, url: str) -> str:
    """What an empty crunch looks like: the orchestrator answers an unknown crunch id with no models."""
    return f"crunch {crunch_id!r} has no models: the orchestrator at {url} announces none. Is the crunch id right?"


class Board:
    """The crunch as announced, written by the connection's handler and read by the display.

    ``apply`` runs on the orchestrator thread: it decides with plain data and
    never does IO. Models that left stay ``left_kept_s`` seconds.
    """

    def __init__(self, left_kept_s: float = LEFT_KEPT_S) -> None:
        self.left_kept_s = left_kept_s
        self.changed = threading.Event()  # set by every frame that changed something
        self._lock = threading.Lock()
        self._table: dict[str, Announcement] = {}
        self._changes: list[Announcement] = []
        self._ever_announced = False
        self.last_round: RoundSummary | None = None
        self.call_error: str | None = None

    def apply(self, event: str, entries: list[Any]) -> None:
        """The connection's handler: one ``init`` or ``update`` frame."""
        now = time.time()
        with self._lock:
            change = apply_frame(self._table, event, entries, now)
            self._table = prune_left(change.table, now, self.left_kept_s)
            self._changes.extend(change.changed)
            self._ever_announced = self._ever_announced or bool(change.table)
        for problem in change.problems:
            logger.warning("%s frame: %s", event, problem)
        if change.changed:
            self.changed.set()

    def snapshot(self, now: float) -> list[Announcement]:
        """Every model shown: running, recovering, and those that left less than ``left_kept_s`` ago."""
        with self._lock:
            self._table = prune_left(self._table, now, self.left_kept_s)
            return list(self._table.values())

    def running(self) -> list[Announcement]:
        with self._lock:
            return [shown for shown in self._table.values() if shown.running]

    def take_changes(self) -> list[Announcement]:
        """The models whose state, deployment or address changed since the last call, in order."""
        self.changed.clear()
        with self._lock:
            changes, self._changes = self._changes, []
            return changes

    @property
    def ever_announced(self) -> bool:
        """Whether the orchestrator ever announced a model of the crunch to this watcher."""
        return self._ever_announced

    def round_done(self, summary: RoundSummary) -> None:
        with self._lock:
            self.last_round, self.call_error = summary, None

    def round_failed(self, error: str) -> None:
        with self._lock:
            self.call_error = error


@dataclass(frozen=True)
class CallPlan:
    """What ``--call`` asks: the method, its plain arguments, and how often."""

    method: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] | None = None
    every: float = 10.0


@dataclass(frozen=True)
class HealthPlan:
    """What ``--health`` asks: how often, and the credentials of secure nodes."""

    every: float = 10.0
    timeout: float = 5.0
    credentials: SecureCredentials | GatewayCredentials | None = None


class Watcher:
    """One ``mrclient watch``: its orchestrator connection, and what it was asked to add."""

    def __init__(
        self,
        crunch_id: str,
        host: str,
        port: int,
        output: str,
        *,
        refresh: float = 1.0,
        stream: IO[str] | None = None,
        health: HealthPlan | None = None,
        runner: DynamicSubclassModelConcurrentRunner | None = None,
        call: CallPlan | None = None,
        settings: OrchestratorSettings | None = None,
        shards: int | None = None,
    ) -> None:
        if (runner is None) != (call is None):
            raise ValueError("a runner is for --call, and --call needs one")
        self.crunch_id = crunch_id
        self.output = output
        self.refresh = refresh
        self.out = stream or sys.stdout
        self.health = health
        self.runner = runner
        self.call = call
        self.shards = shards  # a count: show each model's shard_of(model_id, shards)
        self.board = Board()
        self.connection = OrchestratorConnection(crunch_id, host, port, self.board.apply, settings)
        self.lines = Lines(self.out, shards) if output == "lines" else None
        self._probe: HealthProbe | None = None
        self._caller: threading.Thread | None = None
        #: True once connected (and, with ``--call``, the runner set up): the display runs until ``stop``.
        self.showing = False

    def run(self, stop: threading.Event, init_timeout: float) -> None:
        """Show the crunch until ``stop`` is set; raises ``ConnectionError`` when the orchestrator is not reached.

        ``init_timeout`` bounds the wait for the orchestrator's first ``init``
        (and, with ``--call``, the runner's ``init()``). Everything started
        here is closed before it returns.
        """
        try:
            self.connection.connect(init_timeout)
            if self.health is not None:
                plan = self.health
                self._probe = HealthProbe(self.board.running, plan.credentials, plan.every, plan.timeout).start()
            if self.runner is not None and self.call is not None:
                self.runner.init(timeout=init_timeout)
                self.runner.on_round(self.board.round_done)
                self._caller = self._start_caller(self.runner, self.call, stop)
            self.showing = True
            if self.lines is not None:
                self._print_until(stop, self.lines)
            else:
                self._draw_until(stop)
        finally:
            stop.set()
            self.close()

    def close(self) -> None:
        """Stop the calls, the probe and the connection (the runner too, with ``--call``); idempotent."""
        if self.runner is not None:
            self.runner.close()  # ends a round under way
        if self._caller is not None:
            self._caller.join((self.runner.timeout if self.runner else 0.0) + 5.0)
        if self._probe is not None:
            self._probe.close()
        self.connection.close()

    # -- what is shown ----------------------------------------------------------------------

    def _title(self, announced: Sequence[Announcement]) -> list[list[str]]:
        state = self.connection.state
        last_round, call_error = (self.board.last_round, self.board.call_error) if self.call else (None, None)
        parts = summary_parts(
            self.crunch_id, state, announced, self.call is not None, last_round, call_error, shards=self.shards
        )
        title = [parts]
        if self.health is not None:
            title.append([f"health of the running nodes every {self.health.every:g}s (gRPC health service only)"])
        if not announced and not self.board.ever_announced:
            title.append([no_models_notice(self.crunch_id, self.connection.url)])
        return title

    def _calls(self) -> dict[str, ModelCalls] | None:
        if self.runner is None:
            return None
        return {
            state.model_id: ModelCalls(stats=state.runner.stats)
            if state.ready
            else ModelCalls(setup=state.state, setup_detail=state.detail)
            for state in self.runner.model_cluster.setup_states()
        }

    def _health(self) -> dict[str, str] | None:
        if self._probe is None:
            return None
        return {model_id: health.status for model_id, health in self._probe.results().items()}

    def _draw_until(self, stop: threading.Event) -> None:
        screen: RichScreen | TextScreen = RichScreen(self.out) if self.output == "rich" else TextScreen(self.out)
        with screen:
            while not stop.is_set():
                now = time.time()
                announced = self.board.snapshot(now)
                columns, rows = model_rows(announced, self._health(), self._calls(), now, shards=self.shards)
                screen.draw(self._title(announced), columns, rows)
                stop.wait(self.refresh)

    def _print_until(self, stop: threading.Event, lines: Lines) -> None:
        """One line per model that changes, per health answer that changes, per lost or regained connection."""
        if not self.board.snapshot(time.time()):
            lines.say(no_models_notice(self.crunch_id, self.connection.url) + " Watching for models.")
        connected = True
        health: dict[str, str] = {}
        while not stop.is_set():
            for shown in self.board.take_changes():
                lines.model(shown)
            state = self.connection.state
            if state.connected != connected:
                connected = state.connected
                lines.say("connected to the orchestrator again" if connected else
                          f"lost the orchestrator connection ({state.last_error}); reconnecting")
            if self._probe is not None:
                for model_id, answer in self._probe.results().items():
                    if health.get(model_id) != answer.status:
                        health[model_id] = answer.status
                        detail = f": {answer.detail}" if answer.detail else ""
                        lines.say(f"{'health':<10} {model_id} {answer.status}{detail}")
            self.board.changed.wait(self.refresh)

    # -- --call -----------------------------------------------------------------------------

    def _start_caller(
        self, runner: DynamicSubclassModelConcurrentRunner, plan: CallPlan, stop: threading.Event
    ) -> threading.Thread:
        board, lines = self.board, self.lines

        def call_every() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    results = runner.call(plan.method, args=list(plan.args), kwargs=plan.kwargs)
                except MrclientError as error:  # the coordinator's mistake (or closed): shown, and tried again
                    if not stop.is_set():
                        board.round_failed(str(error))
                        if lines:
                            lines.say(f"error      {error}")
                else:
                    if lines and not stop.is_set():
                        lines.round(plan.method, results, time.monotonic() - started)
                stop.wait(max(0.0, plan.every - (time.monotonic() - started)))

        thread = threading.Thread(target=call_every, name="mrclient-watch-calls", daemon=True)
        thread.start()
        return thread
