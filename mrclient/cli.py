"""The ``mrclient`` command: ``demo``, ``serve``, ``watch`` and ``call``.

``demo`` runs the README's coordinator loop on an embedded local cluster (a
``LocalOrchestrator`` and a few ``LocalModelNode`` servers in this process),
in secure mode with ``--secure``; ``serve`` keeps the same local crunch up
until Ctrl-C and prints the options that reach it; ``watch``
(mrclient/watch/) shows what an orchestrator announces, touching the model
nodes only when asked (``--health``, ``--call``); ``call`` runs one round
against a real orchestrator and shows a row for every model it announced.
``--credentials`` or ``--gateway-key`` reach secure nodes. Also run as
``python -m mrclient``.

What it prints fits the terminal: tables are cut to its width by the rule
of every text table of mrclient (``_support/tables.py``: ``fit_widths``; full
width when standard output is not a terminal), and help, notes, warnings and
errors wrap at 80 columns at most. Exit status:
0, 1 on an error, 2 for a bad command line, 128 + the signal's number when
Ctrl-C (130) or SIGTERM (143) stopped it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import signal
import socket
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from . import __version__
from ._support.hints import EmptyCrunchWarning
from ._support.tables import Column, clip, counted, fit_widths, terminal_width
from ._support.validation import check_crunch_id, check_host, check_port, check_shard
from .cluster.setup_state import SETTING_UP, SetupState
from .concurrent import DEFAULT_INIT_TIMEOUT, DynamicSubclassModelConcurrentRunner, ModelPredictResult
from .concurrent.results import identity
from .errors import InvalidCoordinatorUsageError, MrclientError
from .orchestrator.connection import OrchestratorConnectError, OrchestratorSettings, orchestrator_url
from .runners import ModelRunner
from .security import GatewayCredentials, SecureCredentials
from .watch.watcher import OUTPUTS, CallPlan, HealthPlan, Watcher, no_models_notice, pick_output

if TYPE_CHECKING:
    from .testing import LocalOrchestrator

#: The widest the value column of ``call``'s table gets; ``--json`` prints values whole.
VALUE_WIDTH = 48
#: ``demo`` shows a success, a failure and a timeout: one working, one broken and one slow model.
DEMO_MIN_MODELS = 3
#: Help, notes, warnings and errors wrap at the terminal's width, and at this many columns at most.
PROSE_WIDTH = 80
#: The command gives up early on answers that say the address is wrong, a host name that does not
#: resolve included: a person typed it, and waits (see mrclient/orchestrator/failures.py).
CLI_SETTINGS = OrchestratorSettings(give_up_on_unknown_host=True)

_T = TypeVar("_T")

CALL_WARNING = (
    "--call sets every model up and calls {method} on the very instances the crunch's coordinator uses; "
    "a node serves one call at a time, so these calls compete with the coordinator's"
)

# -- what the command says ---------------------------------------------------------------------


def _prose_width() -> int:
    return max(40, min(PROSE_WIDTH, shutil.get_terminal_size().columns))


def _wrap(text: str, prefix: str = "mrclient: ", width: int | None = None) -> str:
    """``text`` after ``prefix``, wrapped to ``width`` (default: the prose width); later lines indented further."""
    return textwrap.fill(
        " ".join(text.split()), width or _prose_width(), initial_indent=prefix,
        subsequent_indent=" " * (len(prefix) - len(prefix.lstrip()) + 2), break_long_words=False,
        break_on_hyphens=False,
    )  # fmt: skip


def _note(args: argparse.Namespace, text: str) -> None:
    """A word on standard error about what the command does or waits for (not with ``-q``)."""
    if not args.quiet:
        print(_wrap(text), file=sys.stderr, flush=True)


def _warning(text: str) -> None:
    print(_wrap(text, "mrclient: warning: "), file=sys.stderr, flush=True)


def _error(text: str) -> None:
    print(_wrap(text, "mrclient: error: "), file=sys.stderr, flush=True)


# -- output ------------------------------------------------------------------------------------

def _latency(value: Any) -> str:
    return "" if value is None else f"{value:.1f} ms"


def _value(value: Any) -> str:
    return "" if value is None else _json_text(value)


def _one_line(value: Any) -> str:
    return " ".join((value or "").split())


#: ``demo`` and ``call``, one row per model: the model, its status and its latency are never cut
#: (``least=None``); the others are cut with an ellipsis, down to ``least``, when the terminal is narrow.
#: ``width`` is the widest a value is shown even with room (``--json`` prints it whole).
RESULT_COLUMNS = (
    Column("model_id", "MODEL", least=None),
    Column("model_name", "NAME", least=8),
    Column("status", "STATUS", least=None),
    Column("latency_ms", "LATENCY", format=_latency, least=None),
    Column("result", "VALUE", format=_value, width=VALUE_WIDTH, least=10),
    Column("detail", "DETAIL", format=_one_line, least=10),
)
_VALUE = [column.title for column in RESULT_COLUMNS].index("VALUE")


def _status_rows(
    results: Mapping[ModelRunner, ModelPredictResult], not_called: Iterable[SetupState] = (), init_timeout: float = 0.0
) -> list[dict[str, Any]]:
    """One plain record per model: those called, then those that could not be, sorted by name and id."""
    records = []
    for runner, result in results.items():
        records.append(_record(runner, result.status.value, result.result, result.exec_time_us / 1000, result.detail))
    for state in not_called:
        detail = state.detail
        if state.state == SETTING_UP:
            detail = f"still setting up after --init-timeout ({init_timeout:g}s): not called"
        records.append(_record(state.runner, state.state, None, None, detail))
    records.sort(key=lambda record: (record["model_name"] or "", record["model_id"]))
    return records


def _record(
    runner: ModelRunner, status: str, result: Any, latency_ms: float | None, detail: str | None
) -> dict[str, Any]:
    return {
        **identity(runner),
        "deployment_id": runner.deployment_id,
        "address": runner.target,
        "status": status,
        "latency_ms": None if latency_ms is None else round(latency_ms, 3),
        "result": result,
        "detail": detail,
    }


def _jsonable(value: Any) -> Any:
    """What ``json`` cannot encode by itself: a DataFrame as its records, an array as a list, else text."""
    to_dict, to_list = getattr(value, "to_dict", None), getattr(value, "tolist", None)
    try:
        if to_dict is not None:
            return to_dict(orient="records")
        if to_list is not None:
            return to_list()
    except (TypeError, ValueError):
        pass
    return str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, default=_jsonable, ensure_ascii=False)


@dataclass(frozen=True)
class _Table:
    """A table of results as lines, and whether a value was cut to fit."""

    lines: list[str]
    values_cut: bool


def _table(records: Sequence[Mapping[str, Any]], width: int | None) -> _Table:
    """One row per record, ``width`` columns wide (None: full width, values cut at ``VALUE_WIDTH``)."""
    rows = [[column.title for column in RESULT_COLUMNS]]
    rows += [[column.format(record.get(column.key)) for column in RESULT_COLUMNS] for record in records]
    natural = [
        min(widest, max(column.width, len(column.title))) if column.width else widest
        for column, widest in zip(RESULT_COLUMNS, (max(len(row[i]) for row in rows) for i in range(len(rows[0]))),
                                  strict=True)
    ]
    widths: list[int | None] = list(natural)
    if width is not None:
        least, drop = [c.least for c in RESULT_COLUMNS], [c.drop for c in RESULT_COLUMNS]
        widths = fit_widths(natural, least, drop, width)
    lines = [
        "  ".join(clip(cell, size).ljust(size) for cell, size in zip(row, widths, strict=True) if size is not None)
        .rstrip()
        for row in rows
    ]
    value_width = widths[_VALUE]
    values_cut = any(value_width is None or len(row[_VALUE]) > value_width for row in rows[1:] if row[_VALUE])
    return _Table(lines, values_cut)


def format_results(results: Mapping[ModelRunner, ModelPredictResult], width: int | None = None) -> str:
    """A round's results as a fixed-width table, one row per model, ``width`` columns wide (None: full width)."""
    return "\n".join(_table(_status_rows(results), width).lines)


# -- the local crunch: demo and serve ------------------------------------------------------------


@dataclass(frozen=True)
class _LocalCrunch:
    """The orchestrator and nodes of ``demo`` and ``serve``: what a coordinator needs to reach them."""

    orchestrator: LocalOrchestrator
    crunch_id: str
    base_classname: str
    models: list[tuple[str, str, str]]  # (model id, name, what it does)
    security: _DemoSecurity | None


def _start_local_crunch(
    stack: ExitStack, crunch_id: str, models: int, slow_delay: float, secure: bool, port: int = 0
) -> _LocalCrunch:
    """Start a local orchestrator and the demo's model nodes (closed by ``stack``): one slow, one broken."""
    from .testing import LocalModelNode, LocalOrchestrator
    from .testing.examples import BASE_CLASSNAME, BrokenTracker, EwmaTracker, SlowTracker, TrackerBase

    kinds: list[tuple[str, type[TrackerBase], str]] = [
        ("slow-tracker", SlowTracker, f"answers predict after {slow_delay:g}s"),
        ("broken-tracker", BrokenTracker, "raises in predict"),
    ]
    kinds += [(f"ewma-tracker-{i + 1}", EwmaTracker, "works") for i in range(models - len(kinds))]
    SlowTracker.delay = slow_delay
    security = _DemoSecurity() if secure else None
    orchestrator = stack.enter_context(LocalOrchestrator(crunch_id=crunch_id, port=port))
    served = []
    for number, (name, tracker, behaviour) in enumerate(kinds, start=1):
        model_id = f"model-{number}"
        node_security, infos = security.node(model_id) if security else (None, None)
        node = stack.enter_context(LocalModelNode(classes=[TrackerBase, tracker], secure=node_security))
        orchestrator.add_model(host="127.0.0.1", port=node.port, name=name, infos=infos, model_id=model_id)
        served.append((model_id, name, behaviour))
    if security:
        # A node whose identity is signed by a wallet that is not the participant's.
        node_security, infos = security.impostor("model-impostor")
        node = stack.enter_context(LocalModelNode(classes=[TrackerBase, EwmaTracker], secure=node_security))
        orchestrator.add_model(port=node.port, name="impostor", infos=infos, model_id="model-impostor")
        served.append(("model-impostor", "impostor", "signed by another wallet: refused"))
    return _LocalCrunch(orchestrator, crunch_id, BASE_CLASSNAME, served, security)


def run_demo(args: argparse.Namespace) -> int:
    if args.models < DEMO_MIN_MODELS:
        raise ValueError(f"the demo needs at least {DEMO_MIN_MODELS} models (one working, one slow, one broken)")
    width = terminal_width()
    with ExitStack() as stack:
        crunch = _start_local_crunch(stack, "demo", args.models, args.timeout * 3, args.secure)
        orchestrator, security = crunch.orchestrator, crunch.security
        if security and not args.quiet:
            print("secure mode: mutual TLS, each node's identity checked (a throwaway CA, wallets)")
        if not args.quiet:
            nodes = counted(len(orchestrator.running_models), "model node")
            print(f"local orchestrator on port {orchestrator.port}, {nodes}")
        runner = stack.enter_context(
            DynamicSubclassModelConcurrentRunner(
                timeout=args.timeout,
                crunch_id=crunch.crunch_id,
                host="127.0.0.1",
                port=orchestrator.port,
                base_classname=crunch.base_classname,
                secure_credentials=security.credentials() if security else None,
                retry_backoff_factor=0.1,
            )
        )
        for round_number in range(1, args.rounds + 1):
            payload = {
                "falcon_location": 21.18,
                "time": 230.96 + round_number,
                "dove_location": 19.16 + round_number,
                "falcon_id": 1,
            }
            runner.call("tick", args=[payload])
            results = runner.call("predict")
            print(f"\nround {round_number}: {counted(len(results), 'model')}")
            print(format_results(results, width))
        if security:
            orchestrator.wait_for_reports(1, timeout=5.0)  # the impostor's, sent in the background
        if orchestrator.reports:
            print("\nthe orchestrator received these failure reports:")
            for report in orchestrator.reports:
                text = f"{report['model_id']}: {report['failure_code']} ({report['failure_reason']})"
                print(text if width is None else _wrap(text, "  ", width))
    return 0


class _DemoSecurity:
    """The demo's secure crunch: one CA, the coordinator's certificate, a wallet per participant."""

    def __init__(self) -> None:
        from .testing.secure import LocalCertificateAuthority

        self.authority = LocalCertificateAuthority("mrclient demo CA")

    def credentials(self) -> SecureCredentials:
        return self.authority.coordinator_credentials()

    def node(self, model_id: str) -> tuple[Any, dict[str, str]]:
        from .testing.secure import Cruncher

        cruncher = Cruncher.generate()
        return self.authority.mutual_tls_node(model_id, cruncher), cruncher.infos()

    def impostor(self, model_id: str) -> tuple[Any, dict[str, str]]:
        from .testing.secure import Cruncher

        participant, impostor = Cruncher.generate(), Cruncher.generate()
        return self.authority.mutual_tls_node(model_id, impostor), participant.infos()


#: How often ``serve`` looks for failure reports to print, seconds.
SERVE_POLL = 0.2


def run_serve(args: argparse.Namespace, signals: _Signals) -> int:
    """Serve a local crunch until ``signals.stop`` is set (Ctrl-C, SIGTERM); say how to reach it."""
    with ExitStack() as stack:
        crunch = _start_local_crunch(stack, args.crunch_id, args.models, args.timeout * 3, args.secure, args.port)
        credentials = None
        if crunch.security:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="mrclient-serve-"))
            credentials = str(crunch.security.authority.write_coordinator_files(directory))
        print("\n".join(_serving_text(crunch, args.timeout, credentials)), flush=True)
        signals.stoppable = lambda: True  # from here on, Ctrl-C stops the loop below
        reported = 0
        while not signals.stop.wait(SERVE_POLL):
            reports = crunch.orchestrator.reports
            for report in reports[reported:]:
                _note(args, f"report from a coordinator: {report['model_id']} {report['failure_code']} "
                            f"({report['failure_reason']}); the orchestrator stopped it")
            reported = len(reports)
        _note(args, "stopping the local crunch")
    return 0


def _serving_text(crunch: _LocalCrunch, timeout: float, credentials: str | None) -> list[str]:
    """What ``serve`` prints once up: the crunch, the options that reach it, and commands to paste."""
    orchestrator = crunch.orchestrator
    where = f"--host 127.0.0.1 --port {orchestrator.port} --crunch-id {crunch.crunch_id}"
    secure = f" \\\n      --credentials {credentials}" if credentials else ""
    ids, names = (max(len(model[i]) for model in crunch.models) for i in (0, 1))
    lines = [f"serving crunch {crunch.crunch_id!r} on {orchestrator.url} until Ctrl-C:"]
    lines += [f"  {model_id:<{ids}}  {name:<{names}}  {behaviour}" for model_id, name, behaviour in crunch.models]
    lines += [
        "",
        "a coordinator reaches it with:",
        f"  {where}",
        f"  --base-classname {crunch.base_classname}",
    ]
    if credentials:
        lines.append(f"  --credentials {credentials}")
    lines += [
        "",
        f"  mrclient watch {where}{secure}",
        f"  mrclient call {where} \\",
        f"      --base-classname {crunch.base_classname}{secure} \\",
        f"      --timeout {timeout:g} predict",
    ]
    return "\n".join(lines).splitlines()


# -- watch and call ----------------------------------------------------------------------------


def _credentials(args: argparse.Namespace) -> SecureCredentials | GatewayCredentials | None:
    """What ``--credentials`` or ``--gateway-key`` loaded when the command line was parsed, if either was given."""
    credentials: SecureCredentials | GatewayCredentials | None = args.credentials or args.gateway_key
    return credentials


def _runner_from(args: argparse.Namespace) -> DynamicSubclassModelConcurrentRunner:
    """A runner for the crunch, not yet connected: ``init()`` is the caller's, and so is ``close()``."""
    credentials = _credentials(args)
    return DynamicSubclassModelConcurrentRunner(
        timeout=args.timeout,
        crunch_id=args.crunch_id,
        host=args.host,
        port=args.port,
        base_classname=args.base_classname,
        report_failure=args.report_failure,
        secure_credentials=credentials if isinstance(credentials, SecureCredentials) else None,
        gateway_credentials=credentials if isinstance(credentials, GatewayCredentials) else None,
        init_timeout=args.init_timeout,
        orchestrator_settings=CLI_SETTINGS,
        shard=getattr(args, "shard", None),
    )


def _connecting(args: argparse.Namespace) -> None:
    _note(args, f"connecting to {_url(args)} (up to {args.init_timeout:g}s: --init-timeout)")


def run_watch(args: argparse.Namespace, signals: _Signals) -> int:
    output = pick_output(args.output, sys.stdout.isatty())
    plan = runner = None
    if args.call:
        plan = CallPlan(args.call, _as_list(args.args), args.kwargs, every=args.every)
        _warning(CALL_WARNING.format(method=args.call))
        runner = _runner_from(args)
    health = HealthPlan(args.every, args.timeout, _credentials(args)) if args.health else None
    watcher = Watcher(
        args.crunch_id, args.host, args.port, output, refresh=args.refresh, health=health, runner=runner, call=plan,
        settings=CLI_SETTINGS, shards=args.shards,
    )  # fmt: skip
    # Still connecting, a signal raises KeyboardInterrupt (the waits there are bounded by
    # --init-timeout only); once the table shows, it sets signals.stop and the display ends.
    signals.stoppable = lambda: watcher.showing
    signals.wakers.append(watcher.board.changed.set)  # the lines output waits on it
    _connecting(args)
    watcher.run(signals.stop, args.init_timeout)
    return 0


def _as_list(value: Any) -> list[Any]:
    """Positional arguments from JSON: an array is the list, anything else one argument."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def run_call(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.init_timeout
    _connecting(args)
    with _runner_from(args) as runner:  # init(): the orchestrator's snapshot and the first setups
        cluster = runner.model_cluster
        if not cluster.wait_for_setups(0):
            remaining = deadline - time.monotonic()
            setting_up = sum(1 for state in cluster.setup_states() if state.state == SETTING_UP)
            if remaining > 0 and setting_up:
                _note(args, f"waiting up to {remaining:.0f}s more (--init-timeout) for {counted(setting_up, 'model')} "
                            "still setting up")
                cluster.wait_for_setups(remaining)
        states = cluster.setup_states()
        if not states and cluster.shard is not None and cluster.crunch_size:
            models = counted(cluster.crunch_size, "model")
            _error(f"{cluster.shard} owns none of the {models} of crunch {args.crunch_id!r}: nothing to call")
            return 1
        if not states:
            _error(no_models_notice(args.crunch_id, _url(args)))
            return 1
        ready = [state.runner for state in states if state.ready]
        results: Mapping[ModelRunner, ModelPredictResult] = {}
        if ready:
            results = runner.call(args.method, args=_as_list(args.args), kwargs=args.kwargs, model_runs=ready)
        records = _status_rows(results, [state for state in states if not state.ready], args.init_timeout)
        if args.json:
            for record in records:
                print(_json_text(record))
        else:
            table = _table(records, terminal_width())
            print("\n".join(table.lines))
            if table.values_cut:
                print("(long values are cut: --json prints them whole)")
    if not results:
        _error(f"no model of crunch {args.crunch_id!r} could be called ({len(states)} announced, none set up)")
        return 1
    return 0


def _url(args: argparse.Namespace) -> str:
    return orchestrator_url(args.host, args.port, args.crunch_id)


def _connection_failed(error: ConnectionError, init_timeout: float | None) -> None:
    """``watch`` and ``call`` could not reach the orchestrator: why, in the command line's words."""
    if init_timeout is None or (isinstance(error, OrchestratorConnectError) and error.gave_up):
        _error(str(error))  # the answers said the address is wrong, or the orchestrator refused: in one line
        return
    if isinstance(error, OrchestratorConnectError):
        why = f": {error.reason}" if error.reason else ""
        _error(f"could not connect to the orchestrator at {error.url} within --init-timeout ({init_timeout:g}s){why}")
    else:
        _error(str(error))
    print(_wrap("check --host, --port and --crunch-id, or give the orchestrator longer with --init-timeout SECONDS"),
          file=sys.stderr)


# -- signals -----------------------------------------------------------------------------------


class _Signals:
    """Ctrl-C (SIGINT) and SIGTERM while a command runs: remembered, and turned into a stop.

    While the command is ``stoppable`` (watch showing its table, serve
    serving) a signal sets ``stop``, and the command ends by itself; before
    that, and at a second signal, it raises ``KeyboardInterrupt`` on the
    main thread, and the command's ``with`` and ``finally`` close what it
    opened. ``stop`` is set by a thread of this object's (``mrclient-signals``),
    which reads the signal numbers Python writes to its wake-up socket: no
    lock is taken in the handler, and the stop does not wait for the main
    thread to be woken; that thread also unblocks both signals, should the
    process have been started with them blocked. Used as a context manager,
    on the main thread only.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.stop = threading.Event()
        self.stoppable: Callable[[], bool] = lambda: False
        #: Called after ``stop`` is set, on the relay thread: what else a stopping command waits on.
        self.wakers: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._relay: threading.Thread | None = None

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as shells say a process a signal ended: 130 for Ctrl-C."""
        return 128 + (self.received or signal.SIGINT)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if not first or not self.stoppable():
            raise KeyboardInterrupt

    def __enter__(self) -> _Signals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only: nothing to install
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self)
        self._relay = threading.Thread(target=self._stop_on_signal, args=(reader,), name="mrclient-signals",
                                       daemon=True)
        self._relay.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sockets is None:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd)
        reader, writer = self._sockets
        writer.close()  # the relay reads the end of the stream and returns
        if self._relay is not None:
            self._relay.join(5.0)
        reader.close()

    def _stop_on_signal(self, reader: socket.socket) -> None:
        if hasattr(signal, "pthread_sigmask"):
            # A process started with these signals blocked (a parent's mask is inherited) still hears
            # them: on this thread, which Python's handler then acts for on the main thread.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        while True:
            try:
                received = reader.recv(64)
            except OSError:
                return
            if not received:
                return
            if {signal.SIGINT, signal.SIGTERM} & set(received):
                self.stop.set()
                for wake in self.wakers:
                    wake()


# -- the parser --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose error message wraps at the prose width, as everything else it says."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(2, _wrap(message, f"{self.prog}: error: ") + "\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help at most 80 columns wide; each option's default shown (when meaningful); descriptions keep their lines."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=min(shutil.get_terminal_size().columns, PROSE_WIDTH) - 2)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or "%(default)" in text or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def _count(minimum: int, why: str = "") -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{why}, got {value}")
        return value

    return parse


def _shard(text: str) -> tuple[int, int]:
    """``--shard I/K``: shard ``I`` (from 0) of ``K``."""
    index, slash, count = text.partition("/")
    try:
        if not slash:
            raise ValueError
        shard = check_shard((int(index), int(count)))
    except (ValueError, InvalidCoordinatorUsageError):
        raise argparse.ArgumentTypeError(
            f"not a shard I/K (I from 0 to K - 1, e.g. 0/3 for the first of three): {text!r}"
        ) from None
    assert shard is not None
    return shard


def _checked(check: Callable[[str], _T], words: str) -> Callable[[str], _T]:
    """An option's type from the library's check of the same value: its error said in the option's words."""

    def parse(text: str) -> _T:
        try:
            return check(text)
        except InvalidCoordinatorUsageError:
            raise argparse.ArgumentTypeError(f"{words}: {text!r}") from None

    return parse


_port = _checked(check_port, "not a TCP port number (1 to 65535)")
_crunch_id = _checked(check_crunch_id, "not a crunch id (the orchestrator URL's path; not empty)")


def _any_port(text: str) -> int:
    """A port to listen on: 0 lets the system pick a free one."""
    return 0 if text.strip() == "0" else _port(text)


def _host(text: str) -> str:
    """The orchestrator's host; a URL or ``host:port`` gets a hint in this command's own options."""
    try:
        return check_host(text)
    except InvalidCoordinatorUsageError:
        pass
    try:
        parsed = urllib.parse.urlsplit(text if "//" in text else f"//{text}")
        hostname, port = parsed.hostname, parsed.port
    except ValueError:
        hostname = port = None
    if hostname and (parsed.scheme or port or parsed.path.strip("/")):
        hint = f"--host {hostname} --port {port or 'PORT'}"
        if parsed.path.strip("/"):
            hint += f" --crunch-id {parsed.path.strip('/')}"
        raise argparse.ArgumentTypeError(f"give the host alone, not a URL or host:port: got {text!r}; try {hint}")
    raise argparse.ArgumentTypeError(f"not a host name or an IP address: {text!r}")


def _class_name(text: str) -> str:
    if not text.strip() or any(char.isspace() for char in text):
        raise argparse.ArgumentTypeError(f"must be a fully qualified class name (package.module.Class), got {text!r}")
    return text


def _method(text: str) -> str:
    """A method of the models: a Python name."""
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"not a method name (a Python name, e.g. predict): {text!r}")
    return text


def _loaded(load: Callable[[str], _T]) -> Callable[[str], _T]:
    """An option's type that loads what it names (credentials) as it is parsed: a file that cannot be used exits 2."""

    def parse(text: str) -> _T:
        try:
            return load(text)
        except (OSError, ValueError, TypeError, ImportError, MrclientError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _json_value(text: str) -> Any:
    """A JSON value (ARGS, --args); an empty string is none."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {text!r}") from None


def _json_object(text: str) -> dict[str, Any] | None:
    """A JSON object of keyword arguments (--kwargs); an empty string is none."""
    value = _json_value(text)
    if value is not None and not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object of keyword arguments, e.g. '{{\"alpha\": 0.5}}', got {text!r}"
        )
    return value


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    """``-v`` and ``-q``, before or after the subcommand (SUPPRESS: absent after it keeps what came before)."""
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log what the client does (-vv: in detail)")
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print results and errors only: no logs, no notes")


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", type=_host, default="localhost", help="the orchestrator's host name or IP address")
    parser.add_argument("--port", type=_port, default=8000, help="the orchestrator's WebSocket port")
    parser.add_argument("--crunch-id", type=_crunch_id, required=True,
                        help="the crunch (the orchestrator URL's path)")
    parser.add_argument(
        "--init-timeout", type=_seconds, default=DEFAULT_INIT_TIMEOUT, metavar="SECONDS",
        help="how long to wait for the orchestrator's list of models and (call, watch --call) for their setups; "
        "the library's init_timeout has the same default",
    )  # fmt: skip
    secure = parser.add_mutually_exclusive_group()
    secure.add_argument(
        "--credentials", metavar="DIR", type=_loaded(SecureCredentials.from_directory),
        help="secure mode (mutual TLS): a directory with ca.crt, tls.crt and tls.key"
    )
    secure.add_argument(
        "--gateway-key", metavar="PATH", type=_loaded(GatewayCredentials.from_files),
        help="secure mode behind a gateway: the coordinator's RSA key (PEM)"
    )


def _add_calling_options(parser: argparse._ActionsContainer, needed: bool, timeout_help: str) -> None:
    """The options of a command that sets models up and calls them (a parser, or a group of one)."""
    parser.add_argument("--base-classname", type=_class_name, required=needed, metavar="CLASS",
                        help="the fully qualified base class the models extend")
    parser.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS", help=timeout_help)
    parser.add_argument(
        "--report-failure", action="store_true", help="report failing models to the orchestrator (off by default)"
    )


_WATCH_EPILOG = """\
By default watch reads the orchestrator and nothing else: it contacts no
model node, so it cannot disturb a live crunch. Two options touch the nodes,
and say so:

  --health  asks each running node's gRPC health service (a health channel
            of its own; no Setup, no model call) every --every seconds.
  --call    sets every model up and calls METHOD every --every seconds: a
            coordinator of its own. A node serves one call at a time, so
            these calls compete with the crunch coordinator's
            (RESOURCE_EXHAUSTED).

It says at once where it connects and for how long. A web server on the
port (an HTTP answer that is not a WebSocket) or a host name that does not
resolve ends it after a few tries; a refused connection is tried again for
the whole --init-timeout, as an orchestrator restarting refuses them.
Exit status: 130 after Ctrl-C, 143 after SIGTERM; 1 when the orchestrator
is not reached or on an error; 2 for a bad command line.
"""

_CALL_EPILOG = """\
Every model the orchestrator announces gets a row: those set up are called,
the others say why not (SETTING_UP after --init-timeout, SETUP_FAILED and
the reason). With --shard I/K, only the models of that shard get a row and
a call. The table fits the terminal (long values and details are cut, the
model and its status never); --json prints everything whole.

Exit status: 0 when the method was called on at least one model, whatever
it answered; 1 when no model could be called (the crunch has none: check
--crunch-id; or the shard has none), when the orchestrator is not reached
or on an error; 2 for a bad command line; 130 after Ctrl-C.
"""

_SERVE_EPILOG = """\
The crunch is the demo's: a local orchestrator and model nodes on loopback
(one slow, one broken, the others working), in this process. Once it is up,
serve prints the --host, --port, --crunch-id and --base-classname that reach
it, with a watch and a call command to paste in another terminal, and a
line for each failure report a coordinator sends. It is a crunch to develop
a coordinator against. Ctrl-C stops it: exit status 130 (143 after SIGTERM).
"""


def _command(
    commands: Any, name: str, summary: str, description: str | None = None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand's parser: its help laid out as every command's, with ``-v`` and ``-q``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description, epilog=epilog, formatter_class=_HelpFormatter
    )
    _add_log_options(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mrclient",
        description="Drive the models of a CrunchDAO crunch from the command line: try the whole\n"
        "loop on a local cluster (demo), serve a local crunch to work against (serve),\n"
        "follow a crunch as its orchestrator announces it (watch), or call a method on\n"
        "all its models once (call).",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_log_options(parser)
    parser.set_defaults(verbose=0, quiet=False)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = _command(commands, "demo", "run the coordinator loop on an embedded local cluster")
    demo.add_argument("--models", type=_count(DEMO_MIN_MODELS, " (one working, one slow, one broken)"), default=4,
                      help="number of model nodes: one slow, one broken, the others working")
    demo.add_argument("--rounds", type=_count(1), default=3, help="number of rounds")
    demo.add_argument("--timeout", type=_seconds, default=0.5, metavar="SECONDS", help="deadline of a call")
    demo.add_argument(
        "--secure", action="store_true", help="run the nodes in secure mode (mutual TLS, identity checks)"
    )

    serve = _command(
        commands, "serve", "serve the demo's local crunch until Ctrl-C, to point watch, call or a coordinator at",
        "Serve a local crunch (an orchestrator and the demo's model nodes) until Ctrl-C.", _SERVE_EPILOG,
    )
    serve.add_argument("--port", type=_any_port, default=0,
                       help="the orchestrator's port on 127.0.0.1 (0: a free port, printed)")
    serve.add_argument("--crunch-id", type=_crunch_id, default="demo", help="the crunch's id")
    serve.add_argument("--models", type=_count(DEMO_MIN_MODELS, " (one working, one slow, one broken)"), default=4,
                       help="number of model nodes: one slow, one broken, the others working")
    serve.add_argument("--timeout", type=_seconds, default=1.0, metavar="SECONDS",
                       help="the deadline the printed call command gives; the slow model takes three times as long")
    serve.add_argument("--secure", action="store_true",
                       help="secure mode (mutual TLS, identity checks): the coordinator's files in a temporary "
                       "directory, printed as --credentials")

    watch = _command(
        commands, "watch", "show the crunch's models as the orchestrator announces them, until Ctrl-C",
        "A live table of the crunch's models as the orchestrator announces them: state,\n"
        "since when, cruncher, address, deployment, and who left and when, under a line\n"
        "on the orchestrator connection. One line per event when standard output is not\n"
        "a terminal.",
        _WATCH_EPILOG,
    )
    _add_connection_options(watch)
    watch.add_argument("--health", action="store_true",
                       help="also ask each running node's gRPC health service (touches the nodes, see below)")
    watch.add_argument("--call", type=_method, metavar="METHOD",
                       help="also set the models up and call METHOD on each (touches the nodes, see below)")
    with_call = watch.add_argument_group("with --call or --health")
    _add_calling_options(with_call, needed=False,
                         timeout_help="deadline of each call (--call) and of each health check (--health)")
    with_call.add_argument("--args", type=_json_value, help="with --call: JSON array of positional arguments")
    with_call.add_argument("--kwargs", type=_json_object, help="with --call: JSON object of keyword arguments")
    watch.add_argument("--every", type=_seconds, default=10.0, metavar="SECONDS",
                       help="seconds between two calls (--call) or two health checks (--health)")
    watch.add_argument("--refresh", type=_seconds, default=1.0, metavar="SECONDS", help="seconds between redraws")
    watch.add_argument("--shards", type=_count(1), metavar="K",
                       help="show each model's shard among K (mrclient.shard_of), and how many each shard runs")
    watch.add_argument(
        "--output", choices=OUTPUTS, default="auto",
        help="rich: live table (the watch extra); table: plain-text live table; lines: one line per event; "
        "auto: rich or table on a terminal, lines otherwise",
    )  # fmt: skip

    call = _command(
        commands, "call", "run one round against an orchestrator and print a row per model",
        "Call METHOD once on every model of the crunch and print a row per model.", _CALL_EPILOG,
    )
    _add_connection_options(call)
    _add_calling_options(call, needed=True,
                         timeout_help="how long each model has to answer: past it, its row says TIMEOUT")
    call.add_argument("method", type=_method, help="the method to call on every model")
    call.add_argument("args", nargs="?", type=_json_value, metavar="ARGS", help="JSON array of positional arguments")
    call.add_argument("--kwargs", type=_json_object, help="JSON object of keyword arguments")
    call.add_argument("--shard", type=_shard, metavar="I/K",
                      help="call only the models of shard I of K (I from 0), as a runner with shard=(I, K) does")
    call.add_argument(
        "--json", action="store_true",
        help="print the whole results as JSON Lines: one JSON object per model and line (model_id, model_name, "
        "cruncher, deployment_id, address, status, latency_ms, result, detail) instead of the table",
    )  # fmt: skip
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say by itself: options that go together."""
    if args.verbose and args.quiet:
        parser.error("-v and -q contradict each other: give one")
    if args.command != "watch":
        return
    if args.call and not args.base_classname:
        parser.error("watch --call needs --base-classname: the models are set up before they are called")
    if not args.call and (args.args is not None or args.kwargs is not None):
        parser.error("--args and --kwargs go with --call")


_LOG_LEVELS = {-1: logging.CRITICAL, 0: logging.ERROR, 1: logging.INFO}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    level = _LOG_LEVELS.get(-1 if args.quiet else args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    signals = _Signals()
    try:
        with signals, warnings.catch_warnings():
            # call and watch say in their own words that a crunch is empty, and exit accordingly.
            warnings.simplefilter("ignore", EmptyCrunchWarning)
            if args.command == "demo":
                status = run_demo(args)
            elif args.command == "serve":
                status = run_serve(args, signals)
            elif args.command == "watch":
                status = run_watch(args, signals)
            else:
                status = run_call(args)
    except KeyboardInterrupt:  # a signal while connecting or during a call: everything was closed on the way out
        return signals.exit_status
    except ConnectionError as error:
        if signals.received:  # closed while connecting, because of the signal
            return signals.exit_status
        _connection_failed(error, getattr(args, "init_timeout", None))
        return 1
    except (MrclientError, ImportError, ValueError, TypeError) as error:
        _error(str(error))
        return 1
    return signals.exit_status if signals.received else status


if __name__ == "__main__":
    sys.exit(main())
