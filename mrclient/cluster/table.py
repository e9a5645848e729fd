"""The live model table: which models of the crunch can be called right now.

``ModelCluster`` keeps ``model_id -> ModelRunner`` current from the
orchestrator's events. The rules are decided by ``plan.plan_event``;
this module carries the plans out. One lock guards the table and is never held
across a network call: new runners are connected and set up on a small pool
the cluster owns (so the WebSocket thread never waits on gRPC), runners are
closed after the lock is released, and listeners run on a dispatcher thread.

A runner joins the callable ``models`` only once its setup succeeded, and only
if it is still the model's current runner by then; a runner removed or replaced
while setting up is closed, which aborts its setup, and never joins.

With a ``shard``, the cluster still reads and plans every entry of the
crunch (so ``connection_state`` and the empty-crunch warning see all of it),
keeps the other shards' models as plain entries (``_others``: no runner, no
socket), and makes runners for its own models only; everything else (setups,
``models``, listeners, reports) then concerns those alone.

A ``start()`` that fails is undone: its connection, runners, setups and the
listener thread are stopped, and the cluster is as it was before, so that
``start()`` can be tried again (a coordinator retries ``init()`` on its next
tick). Only ``close()`` is final. Events from a connection the cluster no
longer holds are ignored.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .._support.fdlimit import OPEN_FILES_EXHAUSTED, ensure_open_files
from .._support.hints import warn_empty_crunch
from .._support.tables import counted
from .._support.validation import (
    check_callable,
    check_crunch_id,
    check_flag,
    check_host,
    check_instance,
    check_non_negative_int,
    check_port,
    check_positive_int,
    check_shard,
    check_text,
    check_timeout,
    check_wait,
)
from .._support.waits import wait_for
from ..errors import InvalidCoordinatorUsageError
from ..orchestrator.connection import OrchestratorConnection, OrchestratorSettings
from ..runners.base import CallOutcome, ErrorType, ModelRunner
from ..stats import ConnectionState, LeftModels
from ..wire.entries import RUNNING, ModelEntry
from .listeners import ListenerDispatcher
from .misuse import COORDINATOR_MISTAKES, coordinator_mistake
from .plan import GONE, Placement, Plan, plan_event
from .pools import BurstPool
from .reports import report_problem, runner_problem
from .selection import select_models
from .setup_state import READY, SETTING_UP, SETUP_FAILED, SetupState
from .shards import Shard

__all__ = ["ModelCluster", "RunnerFactory"]

logger = logging.getLogger(__name__)

#: ``factory(deployment_id=, model_id=, model_name=, ip=, port=, infos=)`` -> a new,
#: unconnected runner. Called with the table lock held: it must not do IO nor call the cluster.
RunnerFactory = Callable[..., ModelRunner]
ModelListener = Callable[[ModelRunner], None]

#: What a failed setup is reported as; ABORTED (the runner was closed) is not reported.
SETUP_FAILURE_CODES = {
    ErrorType.BAD_IMPLEMENTATION: "BAD_IMPLEMENTATION",
    ErrorType.GRPC_CONNECTION_FAILED: "CONNECTION_FAILED",
    ErrorType.AUTH_ERROR: "CONNECTION_FAILED",
    ErrorType.FAILED: "MULTIPLE_FAILED",
    ErrorType.TIMEOUT: "MULTIPLE_FAILED",
}

_JOINED, _LEFT = "joined", "left"
#: Why the models ready at ``close()`` left.
CLOSED = "closed"

#: How often ``start()`` logs where the first setups stand while it waits, in seconds.
PROGRESS_EVERY = 2.0


class _FirstSetups:
    """The setups of the first ``init``'s models, which ``start()`` waits for and then judges.

    Guarded by the cluster's lock. ``start()`` waits while any is ``pending``
    (on its first connection attempt); one whose first attempt failed is
    ``retrying`` and joins later. A failure that may be the coordinator's
    mistake (a typo in the base class, a node refusing the coordinator) is not
    reported while the burst lasts: if every model says the same, ``start()``
    raises and nobody is reported; otherwise the held reports are sent then.
    """

    def __init__(self, runners: Iterable[ModelRunner], announced: int, owned: int) -> None:
        self.pending = set(runners)
        self.count = len(self.pending)
        self.announced = announced  # RUNNING models of the whole crunch in the first init, every shard's
        self.owned = owned  # those of this cluster's shard (all of them without a shard)
        #: The class every node is asked to set up (the coordinator's base class), if the runners name one.
        self.setup_class = next((runner.setup_class for runner in self.pending), None)
        self.retrying: dict[ModelRunner, str] = {}  # runner -> why its first attempt failed
        self.outcomes: list[CallOutcome] = []
        self.held: list[tuple[ModelRunner, str, str | None]] = []
        self.usage_error: InvalidCoordinatorUsageError | None = None
        self.judged = False

    def settle(
        self, runner: ModelRunner, outcome: CallOutcome, usage_error: InvalidCoordinatorUsageError | None
    ) -> None:
        if runner not in self.pending and self.retrying.pop(runner, None) is None:
            return
        self.pending.discard(runner)
        if not self.judged:
            self.outcomes.append(outcome)
        if usage_error is not None and self.usage_error is None:
            self.usage_error = usage_error

    def retry(self, runner: ModelRunner, reason: str) -> None:
        """``runner``'s first attempt failed; it goes on trying, without holding up ``start()``."""
        if runner in self.pending:
            self.pending.discard(runner)
            self.retrying[runner] = reason

    def progress(self, ready: int) -> str:
        """Where the first setups stand, for the log."""
        text = (
            f"{ready} of {counted(self.count, 'model')} ready, {len(self.pending)} setting up, "
            f"{len(self.retrying)} retrying"
        )
        if self.retrying:
            shown = [f"{runner.target} ({reason})" for runner, reason in list(self.retrying.items())[:5]]
            text += ": " + "; ".join(shown) + (" ..." if len(self.retrying) > 5 else "")
        return text

    def hold(self, outcome: CallOutcome) -> bool:
        """Whether to hold the report of this failure until the burst is judged."""
        return not self.judged and outcome.code in COORDINATOR_MISTAKES

    def judge(self) -> tuple[str | None, list[tuple[ModelRunner, str, str | None]]]:
        """The coordinator's mistake the settled setups show (or None), and the reports held."""
        self.judged = True
        held, self.held = self.held, []
        return coordinator_mistake(self.outcomes, self.count, "the setup", setup_class=self.setup_class), held


class ModelCluster:
    """The crunch's models, kept current by a background orchestrator connection.

    ``start()`` connects and sets up the models of the first snapshot;
    ``models`` is the snapshot of ready runners; ``close()`` stops everything.
    With ``report_failure=False`` failures are logged instead of reported, and
    ``report_failure()`` keeps the model (a coordinator debugging its own code
    must not stop participants' models). With ``shard=(index, count)`` (checked
    by the caller) it runs only the models ``shard_of(model_id, count)`` gives
    ``index``. It keeps the runners of the models that left after being ready
    (``models_and_left``; bounded, see ``mrclient.stats.departed``), each
    marked with when and why (``runner.left_at``, ``runner.left_reason``),
    until the model is back or ``forget_left()``.
    """

    def __init__(
        self,
        crunch_id: str,
        host: str,
        port: int,
        runner_factory: RunnerFactory,
        report_failure: bool = True,
        *,
        setup_workers: int = 256,
        settings: OrchestratorSettings | None = None,
        listener_join_timeout: float = 5.0,
        shard: tuple[int, int] | None = None,
    ) -> None:
        crunch_id, host, port = check_crunch_id(crunch_id), check_host(host), check_port(port)
        self.crunch_id = crunch_id
        shard = check_shard(shard)
        #: The models this cluster runs, or None for every model of the crunch.
        self.shard = None if shard is None else Shard(*shard)
        self.reporting = check_flag("report_failure", report_failure)
        self._factory = check_callable(
            "runner_factory", runner_factory, "a function making a model runner (e.g. a runner's create_model_runner)"
        )
        setup_workers = check_positive_int("setup_workers", setup_workers)
        check_instance("settings", settings, OrchestratorSettings, "OrchestratorSettings(...) or None", optional=True)
        listener_join_timeout = check_timeout("listener_join_timeout", listener_join_timeout)
        self._lock = threading.Lock()  # THE table lock; never held across IO
        self._changed = threading.Condition(self._lock)
        self._runners: dict[str, ModelRunner] = {}  # current runner per model, set up or not
        self._others: dict[str, ModelEntry] = {}  # the other shards' running models: entries only, no runner
        self._ready: dict[str, ModelRunner] = {}  # those whose setup succeeded
        self._snapshot: tuple[ModelRunner, ...] = ()  # _ready's values, rebuilt on change
        self._reported: weakref.WeakSet[ModelRunner] = weakref.WeakSet()
        self._setup_failed: dict[str, tuple[ModelRunner, str]] = {}  # the latest failed setup per model
        # The runners of the models that left after being ready, marked with when and why (``runner.stats``).
        self._left_models: LeftModels[ModelRunner] = LeftModels()
        self._created: weakref.WeakSet[ModelRunner] = weakref.WeakSet()  # the runners reports may name
        self._first: _FirstSetups | None = None  # the first init's setups, from that init on
        self._files_for = 0  # the largest table the open-file limit was checked for
        self._started = False
        self._closed = False
        self._host, self._port, self._settings, self._setup_workers = host, port, settings, setup_workers
        self._pool = BurstPool(setup_workers, thread_name_prefix="mrclient-setup")
        self._listeners: ListenerDispatcher[ModelRunner] = ListenerDispatcher(
            "mrclient-listeners", join_timeout=listener_join_timeout
        )
        self._connection = self._new_connection()

    def __repr__(self) -> str:
        shard = "" if self.shard is None else f" {self.shard}"
        return f"<ModelCluster {self._connection.url}{shard} ready={len(self._snapshot)}>"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Connect, apply the first ``init`` and wait for its models' setups.

        Bounded by ``timeout`` overall; models whose setup is still running then
        join later. Raises ``ConnectionError`` when the orchestrator cannot be
        reached in time, the first ``InvalidCoordinatorUsageError`` an initial
        setup raised, and one when every model refused the coordinator (see
        ``misuse``; nobody is reported then). On any error the start is undone
        (the cluster is as before, listeners kept, nothing left running) and
        ``start()`` may be called again. Once started, it returns at once;
        after ``close()`` it raises ``RuntimeError``.
        """
        timeout = check_timeout("timeout", timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                raise RuntimeError("the model cluster is closed")
            if self._started:
                return
            self._started = True
            connection = self._connection
        try:
            connection.connect(timeout)
            with self._changed:
                while not wait_for(
                    self._changed, self._initial_settled, min(PROGRESS_EVERY, deadline - time.monotonic())
                ):
                    if self._first is None or time.monotonic() >= deadline:
                        break
                    logger.info("init of %s: %s", self.crunch_id, self._first.progress(len(self._ready)))
                first = self._first
                if first is None:  # closed meanwhile
                    return
                error, settled, progress = first.usage_error, not first.pending, first.progress(len(self._ready))
                mistake, held = first.judge()
            if error is not None:
                raise error
            if mistake is not None:
                raise InvalidCoordinatorUsageError(mistake)
            for runner, code, reason in held:
                self._report_setup_failure(runner, code, reason)
            if first.announced == 0:
                logger.warning("no models for crunch %r: is the crunch id right?", self.crunch_id)
                warn_empty_crunch(self.crunch_id, self._connection.url)
            elif first.owned == 0:  # a shard of a crunch, not a mistake: no EmptyCrunchWarning
                logger.info("%s of crunch %s owns none of its %d models: it runs those that join its shard",
                            self.shard, self.crunch_id, first.announced)
            elif not settled:
                logger.warning(
                    "init of %s after %ss: %s; the others join when ready", self.crunch_id, timeout, progress
                )
            else:
                logger.info("init of %s: %s", self.crunch_id, progress)
        except BaseException:
            self._undo_start()
            raise

    def _new_connection(self) -> OrchestratorConnection:
        """An orchestrator connection whose events count only while it is this cluster's."""

        def on_event(event: str, entries: list[Any]) -> None:
            self._on_event(event, entries, connection)

        connection = OrchestratorConnection(self.crunch_id, self._host, self._port, on_event, self._settings)
        return connection

    def _undo_start(self) -> None:
        """After a failed ``start()``: stop what it started and be as before, so it can be tried again.

        The connection and setup pool are replaced by fresh ones; the old
        connection is closed, the runners it brought closed (``on_model_left``
        for those that were ready, nobody reported), the old pool waited for,
        and the listener thread ended; listeners stay registered. A ``close()``
        meanwhile wins: it stops everything itself.
        """
        connection, pool = self._new_connection(), BurstPool(self._setup_workers, thread_name_prefix="mrclient-setup")
        with self._lock:
            if self._closed:
                runners: list[ModelRunner] = []
                ready: set[ModelRunner] = set()
                old_connection, old_pool = connection, pool  # never used: close() closes the cluster's own
            else:
                old_connection, self._connection = self._connection, connection
                old_pool, self._pool = self._pool, pool
                runners, ready = list(self._runners.values()), set(self._ready.values())
                self._runners.clear()
                self._others.clear()
                self._ready.clear()
                self._snapshot = ()
                self._left_models.clear()
                self._first = None
                self._started = False
                self._changed.notify_all()
        old_connection.close()  # first: no event of the failed start comes after this
        self._retire((runner, runner in ready) for runner in runners)
        old_pool.close()  # the setups of closed runners end at once
        self._listeners.stop_thread()  # after the "left" events above are delivered

    def _initial_settled(self) -> bool:
        """Whether ``start()`` may stop waiting: every first model joined, failed, or is retrying."""
        return self._closed or (self._first is not None and not self._first.pending)

    def close(self) -> None:
        """Stop the connection, the setup pool and the listeners; close every runner.

        Idempotent. ``on_model_left`` is called for each model that was ready,
        which is kept with the models that left, marked ``closed``.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runners = list(self._runners.values())
            ready = set(self._ready.values())
            for runner in self._ready.values():
                runner.mark_left(CLOSED)
            self._left_models.add_closed(list(self._ready.values()))
            self._runners.clear()
            self._others.clear()
            self._ready.clear()
            self._snapshot = ()
            self._changed.notify_all()
            connection, pool = self._connection, self._pool  # read under the lock: a failed start swaps them
        connection.close()
        self._retire((runner, runner in ready) for runner in runners)
        pool.close()
        self._listeners.close()
        logger.info("model cluster for %s closed", self.crunch_id)

    def __enter__(self) -> ModelCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading the table ------------------------------------------------------------------

    @property
    def models(self) -> list[ModelRunner]:
        """The runners ready to be called, as a new list (cheap, with no lock and no scan)."""
        return list(self._snapshot)

    def models_and_left(self) -> tuple[list[ModelRunner], list[ModelRunner]]:
        """The ready runners and the runners of the models that left (oldest first), read at one moment."""
        with self._lock:
            return list(self._snapshot), self._left_models.runners()

    def forget_left(self) -> int:
        """Forget the models that left (until they leave again); returns how many were forgotten."""
        with self._lock:
            return self._left_models.clear()

    @property
    def models_run(self) -> Mapping[str, ModelRunner]:
        """``model_id -> runner`` of the ready models, a read-only snapshot (the reference client's name)."""
        return MappingProxyType({runner.model_id: runner for runner in self._snapshot})

    @property
    def crunch_size(self) -> int:
        """How many models of the whole crunch, every shard's, the orchestrator announces running.

        Without a shard, the models of the table (ready or setting up). With
        one, those plus the other shards' models, which the cluster follows
        as entries without running them. A model whose setup failed counts
        again once the orchestrator announces it again.
        """
        with self._lock:
            return len(self._runners) + len(self._others)

    @property
    def connected(self) -> bool:
        """Whether the orchestrator connection is up (its ``init`` applied)."""
        return self._connection.connected

    @property
    def connection_state(self) -> ConnectionState:
        """The orchestrator connection (up since when, reconnects, reports not yet confirmed)."""
        return self._connection.state

    @property
    def sync_failure(self) -> str | None:
        """Why the orchestrator thread stopped without ``close()`` (the table is frozen), or None."""
        return self._connection.failure

    def wait_for_models(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` models are ready; False after ``timeout`` or ``close()``."""
        count, timeout = check_non_negative_int("count", count), check_wait("timeout", timeout)
        with self._changed:
            wait_for(self._changed, lambda: self._closed or len(self._snapshot) >= count, timeout)
            return len(self._snapshot) >= count

    def setup_states(self) -> list[SetupState]:
        """Where the setup of each model the orchestrator announced stands, as a snapshot.

        One :class:`~mrclient.cluster.setup_state.SetupState` per model of the table
        (``READY`` or ``SETTING_UP``), and one ``SETUP_FAILED``, with the
        reason, per model whose latest setup failed, kept until a new runner
        is made for it (the orchestrator announces it again). ``models`` holds
        the ``READY`` ones. Empty after ``close()``. Copied under the table
        lock, which no IO ever holds.
        """
        with self._lock:
            if self._closed:
                return []
            runners, ready, failed = dict(self._runners), set(self._ready.values()), dict(self._setup_failed)
        states = [
            SetupState(model_id, runner, READY if runner in ready else SETTING_UP)
            for model_id, runner in runners.items()
        ]
        states += [
            SetupState(model_id, runner, SETUP_FAILED, reason)
            for model_id, (runner, reason) in failed.items()
            if model_id not in runners
        ]
        return states

    def wait_for_setups(self, timeout: float) -> bool:
        """Block until no model of the table is still setting up; False after ``timeout`` or ``close()``."""
        timeout = check_wait("timeout", timeout)
        with self._changed:
            wait_for(self._changed, lambda: self._closed or len(self._ready) == len(self._runners), timeout)
            return not self._closed and len(self._ready) == len(self._runners)

    def on_model_joined(self, listener: ModelListener, *, replay: bool = True) -> ModelListener:
        """Call ``listener(runner)`` once per runner that becomes ready (off the WebSocket thread).

        With ``replay`` (the default) it first hears of the runners already
        ready, in the order they joined and before any later event, so a
        listener registered after ``start()`` misses no model. Returns
        ``listener``: it works as a decorator.
        """
        check_callable("listener", listener, "a function of the model runner")
        replay = check_flag("replay", replay)
        with self._lock:  # no join is posted between the snapshot and the registration
            self._listeners.add(_JOINED, listener, self._snapshot if replay else ())
        return listener

    def on_model_left(self, listener: ModelListener) -> ModelListener:
        """Call ``listener(runner)`` once per ready runner that leaves, after it is closed; returns ``listener``."""
        self._listeners.add(_LEFT, check_callable("listener", listener, "a function of the model runner"))
        return listener

    def select(self, model_runs: Iterable[ModelRunner | str] | None) -> list[ModelRunner]:
        """The runners a round's ``model_runs=`` names: all the ready ones for None.

        It takes runners this cluster made (``models``, a roster's, a round's
        results) and model ids, each naming the model's ready runner; a model
        named twice counts once. A model id that names no ready model (it left,
        it is of another shard, a typo) is skipped and logged as a warning.
        Anything else raises ``InvalidCoordinatorUsageError`` naming
        ``model_runs`` and the bad value (see ``selection``).
        """
        if model_runs is None:
            return list(self._snapshot)
        with self._lock:
            selection = select_models(model_runs, self._snapshot, self._created)
        if selection.missing:
            logger.warning("model_runs: %d model id(s) name no ready model of %s, not called: %s",
                           len(selection.missing), self.crunch_id, ", ".join(map(repr, selection.missing[:10])))
        return selection.runners

    # -- acting on runners ------------------------------------------------------------------

    def report_failure(self, runner: ModelRunner, code: str, reason: str | None = None) -> None:
        """Report ``runner`` to the orchestrator and drop it; once per runner, never blocking.

        Only the model's current runner is reported: a runner already replaced
        (say, by a redeploy) must not get its successor stopped. A code other
        than the five the orchestrator knows, or anything but a runner this
        cluster made, raises ``InvalidCoordinatorUsageError`` and sends nothing,
        reporting on or off.
        """
        with self._lock:
            problem = report_problem(runner, code, reason, self._created)
        if problem is not None and isinstance(runner, ModelRunner) and self.shard is not None:
            if not self.shard.owns(runner.model_id):
                problem += f" (model {runner.model_id} is not of this runner's {self.shard}: its own shard reports it)"
        if problem is not None:
            raise InvalidCoordinatorUsageError(problem)
        if not self.reporting:
            logger.warning("reporting is off; not reporting model %s: %s (%s)", runner.model_id, code, reason)
            return
        with self._lock:
            if self._closed or runner in self._reported or self._runners.get(runner.model_id) is not runner:
                logger.info("not reporting model %s (%s): no longer in the table", runner.model_id, code)
                return
            self._reported.add(runner)
            was_ready = self._detach(runner, f"reported {code}")
        self._connection.report_failure(runner.model_id, code, reason, runner.ip)
        self._retire([(runner, was_ready)])

    def _check_own(self, runner: object, action: str) -> None:
        """Refuse anything but a runner this cluster made, naming the parameter ``runner``."""
        with self._lock:
            problem = runner_problem(runner, self._created, "runner", action)
        if problem is not None:
            raise InvalidCoordinatorUsageError(problem)

    def reject(self, runner: ModelRunner, code: str, reason: str | None = None) -> None:
        """Report and drop a model that cannot be used safely (a failed identity check).

        Unlike ``report_failure``, the model leaves the table even with
        reporting off: it is logged, and kept out of rounds.
        """
        with self._lock:
            problem = report_problem(runner, code, reason, self._created)
        if problem is not None:
            raise InvalidCoordinatorUsageError(problem)
        if self.reporting:
            logger.warning("model %s at %s rejected, reporting %s: %s", runner.model_id, runner.target, code, reason)
            self.report_failure(runner, code, reason)
            return
        logger.warning("model %s at %s rejected (reporting is off, not reporting %s): %s; dropping it",
                       runner.model_id, runner.target, code, reason)
        self.remove(runner, f"rejected {code}")

    def remove(self, runner: ModelRunner, reason: str = "removed") -> None:
        """Close ``runner`` and drop it from the table, without reporting it; ``reason`` says why it left."""
        check_text("reason", reason, "why the model left, a non-empty string")
        self._check_own(runner, "remove")
        with self._lock:
            was_ready = self._detach(runner, reason)
        self._retire([(runner, was_ready)])

    def reconnect(self, runner: ModelRunner) -> ModelRunner | None:
        """Replace ``runner`` by a fresh one for the same deployment and address.

        For a node that stopped answering: its channels are closed and a new
        runner is set up on the pool. Returns the new runner, or None when
        ``runner`` is no longer the model's current one.
        """
        self._check_own(runner, "reconnect")
        with self._lock:
            if self._closed or self._runners.get(runner.model_id) is not runner:
                return None
            was_ready = self._detach(runner, "reconnecting")
            entry = ModelEntry(runner.model_id, runner.deployment_id, RUNNING, runner.ip, runner.port, runner.infos)
            fresh = self._create(entry, runner)  # the same deployment: its statistics go on
        logger.info("reconnecting model %s at %s", runner.model_id, runner.target)
        self._retire([(runner, was_ready)])
        if fresh is not None:
            self._launch([fresh])
        return fresh

    # -- applying events (on the orchestrator thread) ---------------------------------------

    def _on_event(self, event: str, entries: list[Any], connection: OrchestratorConnection) -> None:
        with self._lock:
            if self._closed or connection is not self._connection:  # closed, or from a start undone
                return
            known: Mapping[str, Placement] = self._runners if self.shard is None else {**self._others, **self._runners}
            plan = plan_event(known, entries, snapshot=event == "init")
            announced = len(plan.start)  # at the first init, every running model of the crunch
            plan = self._own_part(plan)
            closing = {model_id: self._runners[model_id] for model_id in plan.close}
            retired = [
                (runner, self._detach(runner, plan.reasons.get(model_id, GONE))) for model_id, runner in closing.items()
            ]
            for entry in plan.refresh:
                kept = self._runners[entry.model_id]
                kept.infos, kept.model_name = dict(entry.infos), entry.model_name
            created = (self._create(entry, closing.get(entry.model_id)) for entry in plan.start)
            started = [runner for runner in created if runner is not None]
            if event == "init" and self._first is None:
                self._first = _FirstSetups(started, announced, len(plan.start))
                self._changed.notify_all()
            table_size = len(self._runners)
            grown, self._files_for = table_size > self._files_for, max(self._files_for, table_size)
        for problem in plan.problems:
            logger.warning("%s frame: %s", event, problem)
        if plan.close or plan.start:
            logger.info("%s: closing %d runners, starting %d", event, len(plan.close), len(plan.start))
        if grown:
            ensure_open_files(table_size)  # before connecting: each new runner needs a socket
        self._retire(retired)
        self._launch(started)

    def _own_part(self, plan: Plan) -> Plan:
        """Follow the other shards' models in ``_others`` and return the plan for this shard's (lock held).

        A model's shard never changes (it reads the model id only), so a model
        id is either in ``_runners`` or in ``_others``, never both.
        """
        shard = self.shard
        if shard is None:
            return plan
        others, own = self._others, self._runners
        for model_id in plan.close:
            others.pop(model_id, None)
        start: list[ModelEntry] = []
        for entry in plan.start:
            if shard.owns(entry.model_id):
                start.append(entry)
            else:
                others[entry.model_id] = entry
        for entry in plan.refresh:
            if entry.model_id in others:
                others[entry.model_id] = entry
        return Plan(
            close=tuple(model_id for model_id in plan.close if model_id in own),
            start=tuple(start),
            refresh=tuple(entry for entry in plan.refresh if entry.model_id in own),
            problems=plan.problems,
            reasons={model_id: why for model_id, why in plan.reasons.items() if model_id in own},
        )

    def _create(self, entry: ModelEntry, previous: ModelRunner | None = None) -> ModelRunner | None:
        """A new runner for ``entry``, put in the table as not ready (lock held).

        It carries on the statistics of the model's ``previous`` runner (the
        one it replaces) or of its runner that left, when that ran the same
        deployment: a move, a recovery or a reconnect keeps the model's history,
        a redeploy starts a new one.
        """
        try:
            runner = self._factory(
                deployment_id=entry.deployment_id,
                model_id=entry.model_id,
                model_name=entry.model_name,
                ip=entry.ip,
                port=entry.port,
                infos=dict(entry.infos),
            )
        except Exception:
            logger.exception("could not create a runner for model %s", entry.model_id)
            return None
        history = previous if previous is not None else self._left_models.get(entry.model_id)
        if history is not None and history.deployment_id == entry.deployment_id:
            runner.counters = history.counters
        self._runners[entry.model_id] = runner
        self._setup_failed.pop(entry.model_id, None)
        self._created.add(runner)
        return runner

    def _detach(self, runner: ModelRunner, reason: str) -> bool:
        """Drop ``runner`` from the table (lock held); True if it was ready, then kept as left for ``reason``."""
        model_id = runner.model_id
        if self._runners.get(model_id) is runner:
            del self._runners[model_id]
        if self._ready.get(model_id) is not runner:
            return False
        del self._ready[model_id]
        runner.mark_left(reason)
        self._left_models.add(runner)
        self._snapshot = tuple(self._ready.values())
        self._changed.notify_all()
        return True

    def _retire(self, runners: Iterable[tuple[ModelRunner, bool]]) -> None:
        """Close detached runners (lock not held), then tell listeners about the ready ones."""
        for runner, was_ready in runners:
            runner.close()
            if was_ready:
                logger.info("model %s (%s) left", runner.model_id, runner.model_name)
                self._listeners.post(_LEFT, runner)

    def _launch(self, runners: Iterable[ModelRunner]) -> None:
        for runner in runners:
            try:
                self._pool.submit(self._set_up, runner)
            except RuntimeError:  # the pool is shut down: the cluster is closing
                runner.close()
                self._settle(runner, False, None, None)

    # -- setting runners up (on the pool) ---------------------------------------------------

    def _set_up(self, runner: ModelRunner) -> None:
        usage_error: InvalidCoordinatorUsageError | None = None
        error: ErrorType | None = None
        try:
            ok, error = runner.init(on_retry=lambda reason: self._first_attempt_failed(runner, reason))
        except InvalidCoordinatorUsageError as exc:
            logger.error("model %s at %s: %s", runner.model_id, runner.target, exc)
            ok, usage_error = False, exc
        except Exception:
            logger.exception("model %s at %s: setup failed unexpectedly", runner.model_id, runner.target)
            ok = False
        self._settle(runner, ok, error, usage_error)

    def _first_attempt_failed(self, runner: ModelRunner, reason: str) -> None:
        with self._lock:
            if self._first is not None:
                self._first.retry(runner, reason)
                self._changed.notify_all()

    def _settle(
        self,
        runner: ModelRunner,
        ok: bool,
        error: ErrorType | None,
        usage_error: InvalidCoordinatorUsageError | None,
    ) -> None:
        """Record a finished setup: the runner joins, or leaves the table (and may be reported)."""
        outcome = CallOutcome() if ok else runner.init_failure or CallOutcome(error=error)
        reason = outcome.detail or f"setup failed: {error.name if error else ''}"
        with self._lock:
            current = not self._closed and self._runners.get(runner.model_id) is runner
            first = self._first
            if first is not None:
                first.settle(runner, outcome, usage_error)
            if current and ok:
                self._ready[runner.model_id] = runner
                self._snapshot = tuple(self._ready.values())
                self._left_models.discard(runner.model_id)  # the model is back: its ready row replaces its left one
                # Posted under the lock so that its "left" cannot overtake it.
                self._listeners.post(_JOINED, runner)
            elif current:
                del self._runners[runner.model_id]
                self._setup_failed[runner.model_id] = (runner, reason)
            code = SETUP_FAILURE_CODES.get(error) if error is not None and current and not ok else None
            if outcome.code == OPEN_FILES_EXHAUSTED:  # this process's limit, not the model's fault
                code = None
            if code is not None and first is not None and first.hold(outcome):
                first.held.append((runner, code, reason))
                code = None
            if code is not None and self.reporting:
                self._reported.add(runner)
            self._changed.notify_all()
        if current and ok:
            logger.info("model %s (%s) joined", runner.model_id, runner.model_name)
            return
        runner.close()
        if code is not None:
            self._report_setup_failure(runner, code, reason)

    def _report_setup_failure(self, runner: ModelRunner, code: str, reason: str | None) -> None:
        if self.reporting:
            self._connection.report_failure(runner.model_id, code, reason, runner.ip)
        else:
            logger.warning("reporting is off; not reporting model %s: %s (%s)", runner.model_id, code, reason)
