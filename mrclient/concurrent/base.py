"""Call one method on every live model at once, with a deadline.

A round submits one blocking gRPC call per model to a thread pool that is kept
warm and sized so that no model queues behind another, then gathers the futures
with ``concurrent.futures.wait(timeout=...)``. Every call carries the round's
deadline, so a hung model costs its own slot and nothing else: the round
returns by the deadline (plus a small margin), and a straggler's thread is
freed when its gRPC deadline expires. Penalties are applied afterwards, on the
coordinator's thread, from the results the coordinator actually received.

A model whose runner is closed during the round (it left the table, or
``close()`` was called from another thread or a signal handler) is answered
``FAILED`` with the one ``MODEL_LEFT`` detail and costs it nothing; a round
under way when ``close()`` is called returns its results instead of raising.
``close()`` never takes the round lock: the work of closing runs on a thread
of its own (see ``shutdown``), so it is safe from anywhere.

The signature of ``ModelConcurrentRunner.__init__`` is the one source of the
options every runner takes (see ``shared_arguments`` for how the subclasses
follow it without drifting).
"""

from __future__ import annotations

import abc
import functools
import inspect
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from .._support.hints import wait_hint
from .._support.lifetime import close_when_abandoned
from .._support.shutdown import Shutdown
from .._support.tables import fit_line, terminal_width
from .._support.validation import (
    check_callable,
    check_crunch_id,
    check_flag,
    check_host,
    check_instance,
    check_non_negative_int,
    check_port,
    check_shard,
    check_timeout,
)
from ..cluster.listeners import ListenerDispatcher
from ..cluster.misuse import coordinator_mistake
from ..cluster.penalties import NO_PENALTY_CODES, PenaltyPolicy, TimeoutVerdict
from ..cluster.roster import Roster, RosterKeeper
from ..cluster.table import ModelCluster
from ..errors import InvalidCoordinatorUsageError, MrclientError
from ..orchestrator.connection import OrchestratorSettings
from ..runners import MODEL_LEFT, CallOutcome, ErrorType, ModelRunner
from ..runners.base import CERTIFICATE_CHANGED, MAX_MESSAGE_BYTES
from ..security import GatewayCredentials, SecureCredentials
from ..stats import CallTotals, ConnectionState, ModelStatsTable, RoundSummary, StatsBook
from .maps import STILL_BUSY, MapRun, Prepare
from .overview import RunnerOverview
from .results import RESTED, SKIPPED, ModelPredictResult, RoundResults, result_of
from .rounds import ROUND_SWITCH_INTERVAL, Answer, Invoke, call_models, execute, switch_interval

__all__ = [
    "DEFAULT_INIT_TIMEOUT",
    "ModelConcurrentRunner",
    "POOL_HEADROOM",
    "SHARED_PARAMETERS",
    "check_request_size",
    "shared_arguments",
]

logger = logging.getLogger(__name__)

#: Pool threads beyond two per model: room for health checks and for the
#: previous round's stragglers, which hold a thread until their deadline.
POOL_HEADROOM = 16
HEALTH_CHECK_TIMEOUT = 5.0
DEFAULT_INIT_TIMEOUT = 60.0

_Runner = TypeVar("_Runner", bound="ModelConcurrentRunner")

_SUCCESS, _TIMEOUT = ModelPredictResult.Status.SUCCESS, ModelPredictResult.Status.TIMEOUT


class ModelConcurrentRunner(abc.ABC):
    """Keeps the crunch's live models and calls them all at once.

    Construct, ``init()``, call rounds, ``close()`` (or use it as a context
    manager). Failure reports and health checks follow the wire contract's
    penalty rules; ``report_failure=False`` turns every report off while a
    coordinator debugs. The two subclasses add the rounds themselves:
    :class:`DynamicSubclassModelConcurrentRunner` and
    :class:`TrainInferModelConcurrentRunner`.
    ``orchestrator_settings`` tunes the orchestrator connection's pings and
    reconnect backoff (the defaults suit production).
    """

    MAX_CONSECUTIVE_FAILURES = 3
    MAX_CONSECUTIVE_TIMEOUTS = 3

    def __init__(
        self,
        timeout: float,
        crunch_id: str,
        host: str,
        port: int | str,
        max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
        max_consecutive_timeouts: int = MAX_CONSECUTIVE_TIMEOUTS,
        secure_credentials: SecureCredentials | None = None,
        gateway_credentials: GatewayCredentials | None = None,
        report_failure: bool = True,
        *,
        retry_backoff_factor: float = 2.0,
        orchestrator_settings: OrchestratorSettings | None = None,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        round_switch_interval: float | None = ROUND_SWITCH_INTERVAL,
        keep_stats: bool = True,
        shard: tuple[int, int] | None = None,
    ) -> None:
        """Set up the runner; nothing connects before :meth:`init`.

        Args:
            timeout: default deadline of one round, in seconds (``call(timeout=...)`` overrides it).
            crunch_id: the crunch whose models to follow (the orchestrator URL's path).
            host: the orchestrator's host.
            port: the orchestrator's WebSocket port; a string of digits (read from the environment) is accepted.
            max_consecutive_failures: a model that fails more times in a row than
                this is reported ``MULTIPLE_FAILED`` and dropped; 0 never reports.
            max_consecutive_timeouts: likewise for timeouts and ``MULTIPLE_TIMEOUT``.
            secure_credentials: mutual TLS with the model nodes (secure mode).
            gateway_credentials: a signed token for nodes behind a TLS gateway
                (not both; see docs/secure-mode.rst).
            report_failure: False logs failures instead of reporting them, so a
                coordinator's own mistakes never stop participants' models.
            retry_backoff_factor: seconds of the first wait between connection
                attempts to a model node; the waits double from there.
            orchestrator_settings: the orchestrator connection's pings, timeouts
                and reconnect backoff; the defaults suit production.
            init_timeout: the default bound of :meth:`init`, in seconds, also
                when the runner is used as a context manager.
            round_switch_interval: the Python GIL switch interval while a round
                runs (``sys.setswitchinterval``; process-wide, restored after the
                round), which makes a large round cheaper; None leaves it alone.
            keep_stats: record every round into per-model statistics, totals and
                ``on_round`` summaries (a few counters per call); False records
                nothing. The ``keep_stats`` attribute may be changed between rounds.
            shard: ``(index, count)`` to run only the models of one shard of the
                crunch, those for which :func:`~mrclient.shard_of` gives ``index``
                (0 to ``count - 1``), so that ``count`` processes or machines
                split a crunch between them (docs/scaling.rst). The runner sets
                up, calls, checks, reports, lists and counts its own models only;
                it still follows the whole crunch. None (the default) runs every model.

        Every argument is checked here: a bad one raises
        ``InvalidCoordinatorUsageError`` naming it.
        """
        if secure_credentials is not None and gateway_credentials is not None:
            raise InvalidCoordinatorUsageError("give secure_credentials or gateway_credentials, not both")
        if secure_credentials is not None and not isinstance(secure_credentials, SecureCredentials):
            raise InvalidCoordinatorUsageError(
                f"secure_credentials must be SecureCredentials (e.g. SecureCredentials.from_directory(path)), "
                f"not {type(secure_credentials).__name__}"
            )
        if gateway_credentials is not None and not isinstance(gateway_credentials, GatewayCredentials):
            raise InvalidCoordinatorUsageError(
                f"gateway_credentials must be GatewayCredentials (e.g. GatewayCredentials.from_files(key_path)), "
                f"not {type(gateway_credentials).__name__}"
            )
        self.timeout = check_timeout("timeout", timeout)
        self.init_timeout = check_timeout("init_timeout", init_timeout)
        self.round_switch_interval = (
            None if round_switch_interval is None else check_timeout("round_switch_interval", round_switch_interval)
        )
        self.host = host = check_host(host)
        self.port = port = check_port(port)
        crunch_id = check_crunch_id(crunch_id)
        max_consecutive_failures = check_non_negative_int("max_consecutive_failures", max_consecutive_failures)
        max_consecutive_timeouts = check_non_negative_int("max_consecutive_timeouts", max_consecutive_timeouts)
        #: ``(index, count)`` of the models this runner owns, or None for all of them.
        self.shard = shard = check_shard(shard)
        report_failure = check_flag("report_failure", report_failure)
        keep_stats = check_flag("keep_stats", keep_stats)
        check_instance("orchestrator_settings", orchestrator_settings, OrchestratorSettings,
                       "OrchestratorSettings(...) or None", optional=True)
        self.retry_backoff_factor = check_timeout("retry_backoff_factor", retry_backoff_factor)
        self.secure_credentials = secure_credentials
        self.gateway_credentials = gateway_credentials
        self.policy = PenaltyPolicy(max_consecutive_failures, max_consecutive_timeouts)
        self.model_cluster = ModelCluster(
            crunch_id, host, port, _weak_factory(self.create_model_runner), report_failure=report_failure,
            settings=orchestrator_settings, shard=shard,
        )
        self._calls = _CallPools()
        self._round_lock = threading.Lock()  # one round at a time: a node serves one call at a time
        self._roster = RosterKeeper()
        self._started = False  # True once init() succeeded
        self._told_table_frozen = False
        self.keep_stats = keep_stats
        self._book = StatsBook(success=_SUCCESS, timeout=_TIMEOUT, rest_detail=SKIPPED, left_detail=MODEL_LEFT)
        self._round_listeners: ListenerDispatcher[RoundSummary] = ListenerDispatcher("mrclient-rounds")
        self._rounds_run = 0  # for the repr
        # The tear-down holds what it closes, never the runner: so a runner dropped without close()
        # is collected, and closed then; one still open when the interpreter exits is closed first.
        self._shutdown = Shutdown(
            functools.partial(_tear_down, self.model_cluster, self._round_listeners, self._calls), name="mrclient-close"
        )
        close_when_abandoned(self, self._shutdown)

    def __repr__(self) -> str:
        """What the runner is, on one line: ``<... crunch='c' ws://h:p connected, 3 ready, 9 rounds>``.

        Its kind, crunch and orchestrator, the connection (``not started``,
        ``connected``, ``disconnected`` while it reconnects, ``closed``), the
        models ready and the rounds run; wrapped to the terminal's width when printed to one.
        """
        return fit_line(self.overview().line, terminal_width())

    def _repr_html_(self) -> str:
        """In a notebook: that line, the connection, the last round and the model table (built when shown)."""
        return self.overview().html()

    def overview(self) -> RunnerOverview:
        """The runner at a glance, as one snapshot: what its ``repr`` says and its notebook HTML shows.

        Its model table has the models that left too (see :meth:`stats`),
        and after ``close()`` every model that was ready then.
        """
        if self.closed:
            state = "closed"
        elif not self._started:
            state = "not started"
        else:
            state = "connected" if self.connected else "disconnected"
        recent = self._book.totals().recent_rounds if self.keep_stats else ()
        ready, left = self.model_cluster.models_and_left()
        return RunnerOverview(
            kind=type(self).__name__,
            crunch_id=self.model_cluster.crunch_id,
            host=self.host,
            port=self.port,
            state=state,
            models=tuple(ready),
            left=tuple(reversed(left)),
            rounds_run=self._rounds_run,
            connection=self.connection_state,
            last_round=recent[-1] if recent else None,
            shard=self.model_cluster.shard,
        )

    @property
    def max_consecutive_failures(self) -> int:
        """Failures in a row a model may have before it is reported (0 never reports); read-only."""
        return self.policy.max_consecutive_failures

    @property
    def max_consecutive_timeouts(self) -> int:
        """Timeouts in a row a model may have before it is reported (0 never reports); read-only."""
        return self.policy.max_consecutive_timeouts

    @abc.abstractmethod
    def create_model_runner(self, **kwargs: Any) -> ModelRunner:
        """A runner for one model; the cluster passes the model's identity and address."""

    def runner_options(self) -> dict[str, Any]:
        """What every runner of this crunch shares: retry pacing and credentials."""
        return {
            "retry_backoff_factor": self.retry_backoff_factor,
            "secure_credentials": self.secure_credentials,
            "gateway_credentials": self.gateway_credentials,
        }

    # -- lifecycle --------------------------------------------------------------------------

    def init(self, timeout: float | None = None) -> None:
        """Connect to the orchestrator and set up the models it announces.

        Blocks until the first snapshot is applied and its models are set up, or
        ``timeout`` seconds (default: ``init_timeout``); models still being set
        up then join later. Raises ``ConnectionError`` when the orchestrator
        cannot be reached in time (the message says how long it waited and what
        sets that), ``InvalidCoordinatorUsageError`` when every model's setup
        shows a mistake of the coordinator's, and ``MrclientError`` after
        ``close()``. A crunch with no model gives an :class:`EmptyCrunchWarning`
        (is the crunch id right?). A failed ``init()`` leaves the runner as it
        was (listeners kept, nothing running): call it again, on the next tick
        say; until one succeeds, rounds raise. Once it succeeded, ``init()``
        returns at once. A ``close()`` while it waits (a SIGTERM during
        start-up) makes it return: the next ``call()`` then says the runner is
        closed.
        """
        timeout = self.init_timeout if timeout is None else check_timeout("timeout", timeout)
        if self._shutdown.requested:
            raise MrclientError("the runner is closed")
        started = time.monotonic()
        try:
            self.model_cluster.start(timeout)
        except ConnectionError as error:
            if self._shutdown.requested:  # closed on purpose while connecting: not a failure to report
                logger.info("closed while connecting to the orchestrator")
                return
            error.args = (wait_hint(str(error), time.monotonic() - started, timeout), *error.args[1:])
            raise
        except RuntimeError:  # the cluster is closed: close() came first
            if self._shutdown.requested:
                raise MrclientError("the runner is closed") from None
            raise
        self._started = True

    def sync(self) -> None:
        """Block until ``close()`` has finished; the model table is kept current meanwhile."""
        self._shutdown.done.wait()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called, True from that moment on (a coordinator loop's condition)."""
        return self._shutdown.requested

    @property
    def initialized(self) -> bool:
        """Whether an ``init()`` succeeded, so rounds may run (until ``close()``)."""
        return self._started

    @property
    def rounds_run(self) -> int:
        """How many rounds this runner has run, of every method (counted even with ``keep_stats`` off)."""
        return self._rounds_run

    def on_closed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` once ``close()`` has finished, or at once if it has; returns it.

        It runs on the thread that finished the close (or the caller's), must
        be quick, and an exception it raises is logged. An event loop hears of
        the close this way without a thread waiting (``mrclient.aio``).
        """
        self._shutdown.add_done_callback(check_callable("listener", listener, "a function of no argument"))
        return listener

    def close(self) -> None:
        """Stop the background thread and close every channel and pool; idempotent.

        Safe from a signal handler and from any thread, at any point of a
        round: the round under way returns at once, its models answered
        ``FAILED`` with detail ``MODEL_LEFT`` at no cost, and the next round
        raises ``MrclientError``. Returns once everything is stopped, except
        when it interrupted mrclient's own code on this thread (a signal
        handler that interrupted a round, a listener): then it returns at
        once, and the next ``close()`` (or the end of the ``with`` block) waits.
        """
        self._shutdown.request(sys._getframe(1))

    def __enter__(self: _Runner) -> _Runner:
        self.init()
        return self

    def __exit__(self, *exc: object) -> None:
        self._shutdown.request(sys._getframe(1))  # as close(), judged from the with block's frame

    # -- the model table --------------------------------------------------------------------

    @property
    def models(self) -> list[ModelRunner]:
        """The models ready to be called, as a snapshot."""
        return self.model_cluster.models

    @property
    def connected(self) -> bool:
        """Whether the orchestrator connection is up, so the model table is current.

        False while it reconnects (the table is kept meanwhile) and after ``close()``.
        """
        return self.model_cluster.connected

    def on_model_joined(
        self, listener: Callable[[ModelRunner], None], *, replay: bool = True
    ) -> Callable[[ModelRunner], None]:
        """Call ``listener(model_runner)`` each time a model becomes ready to be called.

        "Joined" means a new runner finished its setup: a new model, and also
        the initial models at ``init()``, a redeploy, a move, a recovery and a
        reconnect. With ``replay`` (the default), a listener registered after
        ``init()`` first hears of the models already ready. It runs on
        mrclient's listener thread, in order, outside every lock; an exception
        it raises is logged. To bring joiners up to date, use
        :meth:`joined_since_last` rather than calling them from here (a call
        from here races your own rounds). Returns ``listener``, so it works as
        a decorator.
        """
        return self.model_cluster.on_model_joined(listener, replay=replay)

    def on_model_left(self, listener: Callable[[ModelRunner], None]) -> Callable[[ModelRunner], None]:
        """Call ``listener(model_runner)`` each time a ready model leaves, after it is closed.

        Also once per ready model at ``close()``. Returns ``listener`` (a decorator too).
        """
        return self.model_cluster.on_model_left(listener)

    def joined_since_last(self) -> Roster:
        """The ready models, and those among them that joined since the previous call.

        One snapshot (``roster.models``); ``roster.joined`` are its runners that
        the previous call's snapshot did not have (all of them the first time).
        Call it at the top of each step, send ``roster.joined`` the history
        they missed (``model_runs=roster.joined``), then run the step's rounds
        with ``model_runs=roster.models``: a model that joins meanwhile waits
        for the next step, so it gets the history once, then every tick, and
        its calls never collide with a round. One caller: the coordinator's loop.
        """
        return self._roster.next(self.model_cluster.models)

    def wait_for_models(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` models are ready; False after ``timeout`` seconds (0: look, do not wait)."""
        return self.model_cluster.wait_for_models(count, timeout)

    @property
    def connection_state(self) -> ConnectionState:
        """The orchestrator connection as a snapshot (connected since when, reconnects, reports in flight)."""
        return self.model_cluster.connection_state

    # -- statistics (see mrclient/stats/) ---------------------------------------------------

    def stats(self, *, include_left: bool = True) -> ModelStatsTable[ModelRunner]:
        """Every model's statistics (``model_runner.stats``), as snapshots: the ready ones, then those that left.

        A dict of model runner -> :class:`~mrclient.ModelStats` that also gives
        ``to_records()``, ``to_frame()`` and, in a notebook, a table. A model
        that left (reported, stopped, redeployed, moved, gone from the crunch,
        or closed with the runner) stays, its ``state`` ``left`` with
        ``left_at`` and ``left_reason``, until it is back, until
        :meth:`forget_left`, or until it is among the oldest beyond the last
        ``LEFT_MODELS_KEPT`` (1000) that left while the runner ran; after
        ``close()`` every model that was ready is there, marked ``closed``.
        ``include_left=False`` gives the ready models only.
        """
        if not check_flag("include_left", include_left):
            return ModelStatsTable((runner, runner.stats) for runner in self.models)
        ready, left = self.model_cluster.models_and_left()
        return ModelStatsTable((runner, runner.stats) for runner in [*ready, *left])

    def forget_left(self) -> int:
        """Drop the models that left from :meth:`stats` (``totals()`` keeps their calls); returns how many."""
        return self.model_cluster.forget_left()

    def totals(self) -> CallTotals:
        """Rounds by method and calls by status since the runner was made, all models together."""
        return self._book.totals()

    def on_round(self, listener: Callable[[RoundSummary], None]) -> Callable[[RoundSummary], None]:
        """Call ``listener(summary)`` after each round (a :class:`~mrclient.RoundSummary`); returns it.

        Like the join and leave listeners it runs on a thread of mrclient's, in
        round order, never delaying the next round; an exception it raises is
        logged. No summary is made while ``keep_stats`` is False.
        """
        self._round_listeners.add("round", check_callable("listener", listener, "a function of the round's summary"))
        return listener

    def report_failure(self, model_runner: ModelRunner, failure_code: str, failure_reason: str | None = None) -> None:
        """Report a model to the orchestrator (e.g. ``LOW_PERFORMANCE``) and drop it.

        ``failure_code`` is one of ``BAD_IMPLEMENTATION``, ``CONNECTION_FAILED``,
        ``MULTIPLE_FAILED``, ``MULTIPLE_TIMEOUT``, ``LOW_PERFORMANCE`` and
        ``model_runner`` a runner of this runner (from ``models`` or a round's
        results); anything else raises ``InvalidCoordinatorUsageError`` and
        nothing is sent.
        """
        self.model_cluster.report_failure(model_runner, failure_code, failure_reason)

    # -- rounds -----------------------------------------------------------------------------

    def _pool_for(self, calls: int) -> ThreadPoolExecutor:
        """The call pool, grown (never shrunk) so ``calls`` never queue.

        Threads start lazily and stay warm between rounds; a grown pool replaces
        the old one, whose threads end once their calls are done.
        """
        calls_pools = self._calls
        with calls_pools.lock:
            if self._shutdown.requested or calls_pools.closed:
                raise MrclientError("the runner is closed")
            needed = 2 * calls + POOL_HEADROOM
            if calls_pools.pool is None or needed > calls_pools.capacity:
                if calls_pools.pool is not None:
                    calls_pools.pool.shutdown(wait=False)
                    calls_pools.retired.append(calls_pools.pool)
                calls_pools.capacity = max(needed, 2 * calls_pools.capacity)
                calls_pools.pool = ThreadPoolExecutor(calls_pools.capacity, thread_name_prefix="mrclient-call")
            return calls_pools.pool

    def _run_round(
        self,
        runners: Sequence[ModelRunner],
        request_of: Callable[[ModelRunner], Any],
        timeout: float | None,
        invoke: Invoke = execute,
        penalize: bool = True,
        subject: str | None = None,
        method: str = "",
    ) -> RoundResults:
        """One round on ``runners``, then the penalties; rounds on one runner run one at a time.

        ``subject`` names what was called (``"method 'tick'"``) in the error
        raised when every model's answer shows a mistake of the coordinator's;
        ``method`` names the round in its statistics.
        """
        timeout = self.timeout if timeout is None else check_timeout("timeout", timeout)
        self._check_can_run("the round")
        with self._round_lock, switch_interval(self.round_switch_interval):
            self._tell_if_table_frozen()
            started_at, started = time.time(), time.perf_counter()
            pool, policy = self._pool_for(len(runners)), self.policy
            skips = {runner: RESTED for runner in runners if penalize and policy.resting(runner)}
            called = [runner for runner in runners if runner not in skips] if skips else list(runners)
            answers = call_models(pool, called, request_of, timeout, invoke)
            return self._conclude(runners, answers, skips, started_at, started, penalize, subject, method)

    def _check_can_run(self, what: str) -> None:
        """Refuse a round or a map on a closed or uninitialized runner, or while a map is open."""
        if self._shutdown.requested:
            raise MrclientError("the runner is closed")
        if not self._started:  # never an empty round for a runner that is not running
            raise InvalidCoordinatorUsageError(
                f"init() has not succeeded on this runner: call init() first (again, if it raised), then {what}"
            )
        if self._calls.open_map is not None:  # on the map's own thread, waiting for the round lock would never end
            raise InvalidCoordinatorUsageError(
                f"a map is open on this runner and holds its models (a node serves one call at a time): finish "
                f"the map, or end it (break out of its loop, or close() its iterator), before {what}"
            )

    def _conclude(
        self,
        runners: Sequence[ModelRunner],
        answers: Mapping[ModelRunner, Answer],
        skips: Mapping[ModelRunner, CallOutcome],
        started_at: float,
        started: float,
        penalize: bool,
        subject: str | None,
        method: str,
        quiet: Collection[ModelRunner] = (),
    ) -> RoundResults:
        """The results of a round (or of one input of a map): mistake raised, penalties applied, statistics kept.

        ``answers`` are the models called; ``skips`` those not called (resting;
        in a map, busy, or charged for a node still busy); ``quiet`` models,
        reported or gone earlier in a map, count no more penalties. The round
        started at ``started_at`` (``time.time()``), ``started`` by ``time.perf_counter()``.
        """
        mistake = coordinator_mistake((outcome for outcome, _ in answers.values()), len(answers), subject)
        if mistake is not None:  # nobody is penalized for the coordinator's mistake
            raise InvalidCoordinatorUsageError(mistake)
        policy = self.policy
        results = RoundResults(method=method, started_at=started_at)
        not_the_models: dict[str, list[str]] = {}  # code -> details: the coordinator's side, told once
        for runner in runners:
            skip = skips.get(runner) if skips else None
            if skip is not None:
                results[runner] = result_of(runner, skip, 0)
                if skip is RESTED:
                    policy.record_rest(runner)
                elif skip.code == STILL_BUSY and penalize and runner not in quiet:
                    self._apply_penalty(runner, ErrorType.TIMEOUT, skip.detail)
                continue
            outcome, exec_us = answers[runner]
            result = results[runner] = result_of(runner, outcome, exec_us)
            if quiet and runner in quiet:
                continue
            if outcome.error is None:  # the common case, on the shortest path: a success clears penalties
                if penalize:
                    policy.record_success(runner)
            elif outcome.code in NO_PENALTY_CODES:
                not_the_models.setdefault(outcome.code, []).append(result.detail or outcome.code)
            else:
                self._after_call(runner, outcome, result.detail, penalize)
        for details in not_the_models.values():
            logger.warning("%d of %d models: %s (the coordinator's side, not the models': no penalty)",
                           len(details), len(answers), details[0])
        wall_time_s, summary = time.perf_counter() - started, None
        self._rounds_run += 1
        if self.keep_stats:
            summary = self._book.record(method, results, started_at, wall_time_s)
            self._round_listeners.post("round", summary)
        results._finish(wall_time_s, summary)
        return results

    def _map_rounds(
        self,
        model_runs: Iterable[ModelRunner] | None,
        inputs: Iterator[Any],
        prepare: Prepare,
        timeout: float,
        window: int,
        subject: str,
        method: str,
        invoke: Invoke = execute,
    ) -> Generator[RoundResults, None, None]:
        """A map (see ``maps``): one round's results per input, in order; it holds the round lock until it ends.

        The models are those ready when the map starts (or ``model_runs``).
        Each input's penalties and statistics are applied here, on the
        coordinator's thread, as its results are yielded. After ``close()`` the
        input under way is yielded, then ``MrclientError`` is raised, as the
        next round would.
        """
        self._check_can_run("a map")
        with self._round_lock:
            self._check_can_run("a map")  # a close() or another map may have come while this one waited
            self._tell_if_table_frozen()
            runners = self._runners(model_runs)
            rests = {runner: runner.cooldown_calls_remaining for runner in runners if self.policy.resting(runner)}
            run = MapRun(self._pool_for(len(runners)), runners, inputs, prepare, timeout, window, invoke, rests)
            self._calls.open_map = run
            interrupted = False
            try:
                run.start()
                quiet: set[ModelRunner] = set()  # reported or gone: no more penalties from this map
                while True:
                    if self._shutdown.requested:
                        raise MrclientError("the runner was closed during the map")
                    step = run.next_input()
                    if step is None:
                        if self._shutdown.requested:
                            raise MrclientError("the runner was closed during the map")
                        return
                    results = self._conclude(
                        runners, step.answers, step.skips, step.started_at, step.started, True, subject, method, quiet
                    )
                    quiet.update(runner for runner in runners if runner.closed)
                    yield results
            except (KeyboardInterrupt, SystemExit):
                interrupted = True  # Ctrl-C: do not wait for the calls in flight
                raise
            finally:
                self._calls.open_map = None
                run.finish(wait=not interrupted)

    def _after_call(self, runner: ModelRunner, outcome: CallOutcome, detail: str | None, penalize: bool) -> None:
        """What one model's outcome leads to: a penalty, a report, a reconnect, or nothing."""
        if outcome.error is ErrorType.AUTH_ERROR:  # not a penalty: the model cannot be trusted or reached
            self.model_cluster.reject(runner, "CONNECTION_FAILED", detail)
        elif outcome.code == CERTIFICATE_CHANGED:  # not the model's fault: pin its new certificate
            self._in_background(self.model_cluster.reconnect, runner)
        elif penalize:
            self._apply_penalty(runner, cast(ErrorType, outcome.error), detail)

    def _apply_penalty(self, runner: ModelRunner, error: ErrorType, detail: str | None) -> None:
        """A failed call's penalty (a success was recorded on the round's own path)."""
        policy = self.policy
        if error is ErrorType.TIMEOUT:
            verdict = policy.record_timeout(runner)
            if verdict is TimeoutVerdict.REPORT:
                self.report_failure(runner, "MULTIPLE_TIMEOUT", detail)
            elif verdict is TimeoutVerdict.CHECK_HEALTH:
                self._in_background(self._check_health, runner)
        elif error is ErrorType.BAD_IMPLEMENTATION:
            self.report_failure(runner, "BAD_IMPLEMENTATION", detail)
        elif error is ErrorType.ABORTED:
            pass  # MODEL_LEFT: the runner was closed (removed, replaced, close()) during the round
        elif error is ErrorType.SETUP_LOST:
            self._set_up_again(runner, detail)
        elif policy.record_failure(runner):
            self.report_failure(runner, "MULTIPLE_FAILED", detail)

    def _in_background(self, task: Callable[[ModelRunner], object], runner: ModelRunner) -> None:
        """Run ``task(runner)`` on the call pool, off the coordinator's thread; never raises."""
        try:
            self._pool_for(0).submit(task, runner)
        except (MrclientError, RuntimeError):  # close() came first: nothing left to look after
            logger.debug("closed: not running %s for model %s", getattr(task, "__name__", task), runner.model_id)

    def _set_up_again(self, runner: ModelRunner, detail: str | None) -> None:
        """The node lost the model's instance (restarted in place): connect and set it up again.

        It counts as one failure, carried over to the fresh runner, so a node
        that keeps losing its instance is reported ``MULTIPLE_FAILED`` in the
        end instead of being set up again forever. The setup itself runs on the
        cluster's pool, off the coordinator's thread.
        """
        if self.policy.record_failure(runner) and self.model_cluster.reporting:
            self.report_failure(runner, "MULTIPLE_FAILED", detail)
            return
        logger.warning("model %s lost its instance on the node (%s): setting it up again", runner.model_id, detail)
        fresh = self.model_cluster.reconnect(runner)
        if fresh is not None:
            self.policy.carry_failures(runner, fresh)

    def _tell_if_table_frozen(self) -> None:
        """Log once if the orchestrator thread stopped without close(): the table is no longer updated."""
        failure = self.model_cluster.sync_failure
        if failure is None or self._told_table_frozen:
            return
        self._told_table_frozen = True
        logger.error("the orchestrator connection stopped (%s): the model table is no longer updated; "
                     "calls go to the models known when it stopped", failure)

    def _check_health(self, runner: ModelRunner) -> None:
        """After repeated timeouts: keep a SERVING node, reconnect any other."""
        if runner.closed:
            return
        if runner.health(timeout=HEALTH_CHECK_TIMEOUT):
            logger.info(
                "model %s timed out %d times in a row but is SERVING", runner.model_id, runner.consecutive_timeouts
            )
            return
        logger.warning(
            "model %s is not serving after %d timeouts: reconnecting", runner.model_id, runner.consecutive_timeouts
        )
        self.model_cluster.reconnect(runner)

    def _runners(self, model_runs: Iterable[ModelRunner | str] | None) -> list[ModelRunner]:
        """The runners a round calls (``model_runs``, checked: see ``ModelCluster.select``)."""
        return self.model_cluster.select(model_runs)


class _CallPools:
    """The call pool of one runner, the pools it outgrew and its open map; what ``close()`` shuts down.

    Kept apart from the runner so that the tear-down holds it and not the
    runner (see ``_support.lifetime``). ``ModelConcurrentRunner._pool_for``
    grows it; ``close`` ends it for good.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the fields below
        self.pool: ThreadPoolExecutor | None = None
        self.capacity = 0
        self.retired: list[ThreadPoolExecutor] = []
        self.closed = False
        self.open_map: MapRun | None = None  # the map holding the round lock, if one is open

    def close(self) -> None:
        """Wait for the calls submitted, running or not: their runners are closed by then, so each ends at once.

        Not ``cancel_futures=True``: a future cancelled that way never wakes a
        ``concurrent.futures.wait()`` on it (only a worker taking it would), so
        a round whose calls were still queued waited out its whole deadline
        after the close. Run, each answers ``MODEL_LEFT`` from its closed runner.
        """
        with self.lock:
            self.closed = True
            pools = [*self.retired, *([self.pool] if self.pool else [])]
            self.pool, self.retired = None, []
        for pool in pools:
            pool.shutdown(wait=True)


def _tear_down(cluster: ModelCluster, round_listeners: ListenerDispatcher[RoundSummary], calls: _CallPools) -> None:
    """The work of ``close()``, on its own thread: the cluster, an open map, then the call pools."""
    cluster.close()  # closes the runners, which cancels calls in flight
    open_map = calls.open_map
    if open_map is not None:  # its tasks waiting for inputs end, and its iterator hands over what it has
        open_map.stop()
    round_listeners.close()
    calls.close()


def _weak_factory(create: Callable[..., ModelRunner]) -> Callable[..., ModelRunner]:
    """``create`` (a runner's bound method) for its cluster, without keeping the runner alive.

    The cluster's orchestrator thread holds its factory; a bound method there
    would keep a runner dropped without ``close()`` alive, and connected, for
    good. Once the runner is gone, its close is under way and no model is made.
    """
    method = weakref.WeakMethod(create)

    def factory(**identity: Any) -> ModelRunner:
        bound = method()
        if bound is None:
            raise MrclientError("the runner was garbage-collected: it is closing")
        return bound(**identity)

    return factory


# -- the options every runner shares ------------------------------------------------------------
#
# Each subclass repeats the base's parameters in its own ``__init__`` signature,
# on purpose: help(), IDE completion and mypy in a coordinator's code read a
# signature, and **kwargs would tell them nothing. What could drift is said once:
# * the forwarding: a subclass calls ``super().__init__(**shared_arguments(locals()))``,
#   which picks the base's parameters by name out of its own arguments, so no
#   subclass writes the options out again in a call;
# * the meaning: only the base's docstring documents the shared options; a
#   subclass documents its own and sends the reader to the base for the rest;
# * the signatures: tests/test_docstrings.py compares each subclass's shared
#   parameters (order, kind, default, annotation) and documented arguments with
#   the base's, and fails on any difference.
# An option for every runner is therefore written in the base's signature and
# docstring, plus the one signature line per subclass that the test asks for.

#: The parameters of ``ModelConcurrentRunner.__init__`` (``self`` aside), in order.
SHARED_PARAMETERS = tuple(inspect.signature(ModelConcurrentRunner.__init__).parameters)[1:]


def shared_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The base constructor's arguments, by name, out of a subclass constructor's ``locals()``."""
    return {name: arguments[name] for name in SHARED_PARAMETERS}


def check_request_size(size: int, subject: str) -> None:
    """Refuse a request no model node would accept, before any model is called."""
    if size > MAX_MESSAGE_BYTES:
        raise InvalidCoordinatorUsageError(
            f"the request for {subject} is {size / 2**20:.1f} MiB, over the {MAX_MESSAGE_BYTES / 2**20:.0f} MiB "
            "a model node accepts: send less per call"
        )
