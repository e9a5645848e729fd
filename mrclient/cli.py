"""The ``mrclient`` command: ``demo``, ``watch`` and ``call``.

``demo`` runs the README's coordinator loop on an embedded local cluster (a
``LocalOrchestrator`` and a few ``LocalModelNode`` servers in this process),
in secure mode with ``--secure``; ``watch`` (mrclient/watch/) shows what an
orchestrator announces, touching the model nodes only when asked (``--health``,
``--call``); ``call`` runs one round against a real orchestrator and shows a
row for every model it announced. ``--credentials`` or ``--gateway-key`` reach
secure nodes. Also run as ``python -m mrclient``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from . import __version__
from ._support.hints import EmptyCrunchWarning
from ._support.validation import check_host, check_port, check_shard
from .cluster.setup_state import SETTING_UP, SetupState
from .concurrent import DEFAULT_INIT_TIMEOUT, DynamicSubclassModelConcurrentRunner, ModelPredictResult
from .concurrent.results import identity
from .errors import InvalidCoordinatorUsageError, MrclientError
from .orchestrator.connection import orchestrator_url
from .runners import ModelRunner
from .security import GatewayCredentials, SecureCredentials
from .watch.watcher import OUTPUTS, CallPlan, HealthPlan, Watcher, no_models_notice, pick_output

#: The value column of ``call``'s table is cut here; ``--json`` prints values whole.
VALUE_WIDTH = 48
#: ``demo`` shows a success, a failure and a timeout: one working, one broken and one slow model.
DEMO_MIN_MODELS = 3

CALL_WARNING = (
    "mrclient: warning: --call sets every model up and calls {method} on the very instances the crunch's "
    "coordinator uses; a node serves one call at a time, so these calls compete with the coordinator's"
)

# -- output ------------------------------------------------------------------------------------


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


def _table(records: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width table, one row per record; values longer than ``VALUE_WIDTH`` are cut."""
    rows = [("MODEL", "NAME", "STATUS", "LATENCY", "VALUE", "DETAIL")]
    for record in records:
        value = "" if record["result"] is None else _json_text(record["result"])
        latency = record["latency_ms"]
        rows.append((
            record["model_id"], record["model_name"] or "", record["status"],
            "" if latency is None else f"{latency:.1f} ms",
            value if len(value) <= VALUE_WIDTH else value[: VALUE_WIDTH - 3] + "...",
            record["detail"] or "",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        ("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]).rstrip()
        for row in rows
    )


def format_results(results: Mapping[ModelRunner, ModelPredictResult]) -> str:
    """A round's results as a fixed-width table: one row per model."""
    return _table(_status_rows(results))


# -- demo --------------------------------------------------------------------------------------


def run_demo(models: int, rounds: int, timeout: float, secure: bool = False) -> int:
    from .testing import LocalModelNode, LocalOrchestrator
    from .testing.examples import BASE_CLASSNAME, BrokenTracker, EwmaTracker, SlowTracker, TrackerBase

    if models < DEMO_MIN_MODELS:
        raise ValueError(f"the demo needs at least {DEMO_MIN_MODELS} models (one working, one slow, one broken)")
    kinds: list[tuple[str, type[TrackerBase]]] = [("slow-tracker", SlowTracker), ("broken-tracker", BrokenTracker)]
    kinds += [(f"ewma-tracker-{i + 1}", EwmaTracker) for i in range(models - len(kinds))]
    SlowTracker.delay = timeout * 3
    security = _DemoSecurity() if secure else None
    with ExitStack() as stack:
        orchestrator = stack.enter_context(LocalOrchestrator(crunch_id="demo"))
        for number, (name, tracker) in enumerate(kinds, start=1):
            model_id = f"model-{number}"
            node_security, infos = security.node(model_id) if security else (None, None)
            node = stack.enter_context(LocalModelNode(classes=[TrackerBase, tracker], secure=node_security))
            orchestrator.add_model(host="127.0.0.1", port=node.port, name=name, infos=infos, model_id=model_id)
        if security:
            # A node whose identity is signed by a wallet that is not the participant's.
            node_security, infos = security.impostor("model-impostor")
            node = stack.enter_context(LocalModelNode(classes=[TrackerBase, EwmaTracker], secure=node_security))
            orchestrator.add_model(port=node.port, name="impostor", infos=infos, model_id="model-impostor")
            print("secure mode: mutual TLS, every node's identity checked (a throwaway CA and wallets)")
        print(f"local orchestrator on port {orchestrator.port}, {len(orchestrator.running_models)} model nodes")
        runner = stack.enter_context(
            DynamicSubclassModelConcurrentRunner(
                timeout=timeout,
                crunch_id="demo",
                host="127.0.0.1",
                port=orchestrator.port,
                base_classname=BASE_CLASSNAME,
                secure_credentials=security.credentials() if security else None,
                retry_backoff_factor=0.1,
            )
        )
        for round_number in range(1, rounds + 1):
            payload = {
                "falcon_location": 21.18,
                "time": 230.96 + round_number,
                "dove_location": 19.16 + round_number,
                "falcon_id": 1,
            }
            runner.call("tick", args=[payload])
            results = runner.call("predict")
            print(f"\nround {round_number}: {len(results)} models")
            print(format_results(results))
        if security:
            orchestrator.wait_for_reports(1, timeout=5.0)  # the impostor's, sent in the background
        if orchestrator.reports:
            print("\nthe orchestrator received these failure reports:")
            for report in orchestrator.reports:
                print(f"  {report['model_id']}: {report['failure_code']} ({report['failure_reason']})")
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


# -- watch and call ----------------------------------------------------------------------------


def _credentials(args: argparse.Namespace) -> SecureCredentials | GatewayCredentials | None:
    if args.credentials:
        return SecureCredentials.from_directory(args.credentials)
    if args.gateway_key:
        return GatewayCredentials.from_files(args.gateway_key)
    return None


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
        shard=getattr(args, "shard", None),
    )


def run_watch(args: argparse.Namespace) -> int:
    output = pick_output(args.output, sys.stdout.isatty())
    plan = runner = None
    if args.call:
        positional = _json_option(args.args, "--args")
        keywords = _json_option(args.kwargs, "--kwargs")
        if keywords is not None and not isinstance(keywords, dict):
            raise ValueError(f"--kwargs must be a JSON object of keyword arguments, got {args.kwargs!r}")
        plan = CallPlan(args.call, _as_list(positional), keywords, every=args.every)
        print(CALL_WARNING.format(method=args.call), file=sys.stderr)
        runner = _runner_from(args)
    health = HealthPlan(args.every, args.timeout, _credentials(args)) if args.health else None
    watcher = Watcher(
        args.crunch_id, args.host, args.port, output, refresh=args.refresh, health=health, runner=runner, call=plan,
        shards=args.shards,
    )
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()  # the display ends at its next refresh
        if not watcher.showing:  # still connecting: waits there are bounded by --init-timeout only
            raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    watcher.run(stop, args.init_timeout)
    return 0


def _as_list(value: Any) -> list[Any]:
    """Positional arguments from JSON: an array is the list, anything else one argument."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _json_option(text: str | None, what: str) -> Any:
    """The JSON value of a command-line argument; a ValueError naming the argument when it is not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"{what} is not valid JSON ({error}): {text!r}") from None


def run_call(args: argparse.Namespace) -> int:
    positional = _as_list(_json_option(args.args, "ARGS (the method's positional arguments)"))
    keywords = _json_option(args.kwargs, "--kwargs")
    if keywords is not None and not isinstance(keywords, dict):
        raise ValueError(f"--kwargs must be a JSON object of keyword arguments, got {args.kwargs!r}")
    deadline = time.monotonic() + args.init_timeout
    with _runner_from(args) as runner:  # init(): the orchestrator's snapshot and the first setups
        cluster = runner.model_cluster
        if not cluster.wait_for_setups(0):
            remaining = deadline - time.monotonic()
            setting_up = sum(1 for state in cluster.setup_states() if state.state == SETTING_UP)
            if remaining > 0 and setting_up:
                models = "1 model" if setting_up == 1 else f"{setting_up} models"
                _note(args, f"waiting up to {remaining:.0f}s more (--init-timeout) for {models} still setting up")
                cluster.wait_for_setups(remaining)
        states = cluster.setup_states()
        if not states and cluster.shard is not None and cluster.crunch_size:
            _error(f"{cluster.shard} owns none of the {cluster.crunch_size} models of crunch {args.crunch_id!r}: "
                   "nothing to call")
            return 1
        if not states:
            _error(no_models_notice(args.crunch_id, _url(args)))
            return 1
        ready = [state.runner for state in states if state.ready]
        results = runner.call(args.method, args=positional, kwargs=keywords, model_runs=ready) if ready else {}
        records = _status_rows(results, [state for state in states if not state.ready], args.init_timeout)
        if args.json:
            for record in records:
                print(_json_text(record))
        else:
            print(_table(records))
            if any(record["result"] is not None and len(_json_text(record["result"])) > VALUE_WIDTH
                   for record in records):
                print(f"(values longer than {VALUE_WIDTH} characters are cut: --json prints them whole)")
    if not results:
        _error(f"no model of crunch {args.crunch_id!r} could be called ({len(states)} announced, none set up)")
        return 1
    return 0


def _url(args: argparse.Namespace) -> str:
    return orchestrator_url(args.host, args.port, args.crunch_id)


def _note(args: argparse.Namespace, text: str) -> None:
    """A word on standard error about what the command waits for (not with ``-q``)."""
    if not args.quiet:
        print(f"mrclient: {text}", file=sys.stderr)


def _error(text: str) -> None:
    print(f"mrclient: error: {text}", file=sys.stderr)


# -- the parser --------------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (when it has a meaningful one); descriptions keep their lines."""

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


def _port(text: str) -> int:
    try:
        return check_port(text)
    except InvalidCoordinatorUsageError:
        raise argparse.ArgumentTypeError(f"not a TCP port number (1 to 65535): {text!r}") from None


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


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    """``-v`` and ``-q``, before or after the subcommand (SUPPRESS: absent after it keeps what came before)."""
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log what the client does (-vv: in detail)")
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print results and errors only: no logs, no notes")


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", type=_host, default="localhost", help="the orchestrator's host name or IP address")
    parser.add_argument("--port", type=_port, default=8000, help="the orchestrator's WebSocket port")
    parser.add_argument("--crunch-id", required=True, help="the crunch (the orchestrator URL's path)")
    parser.add_argument(
        "--init-timeout", type=_seconds, default=DEFAULT_INIT_TIMEOUT, metavar="SECONDS",
        help="how long to wait for the orchestrator's list of models and (call, watch --call) for their setups; "
        "the library's init_timeout has the same default",
    )  # fmt: skip
    secure = parser.add_mutually_exclusive_group()
    secure.add_argument(
        "--credentials", metavar="DIR", help="secure mode (mutual TLS): a directory with ca.crt, tls.crt and tls.key"
    )
    secure.add_argument(
        "--gateway-key", metavar="PATH", help="secure mode behind a gateway: the coordinator's RSA key (PEM)"
    )


def _add_calling_options(parser: argparse._ActionsContainer, needed: bool) -> None:
    """The options of a command that sets models up and calls them (a parser, or a group of one)."""
    parser.add_argument("--base-classname", required=needed, metavar="CLASS",
                        help="the fully qualified base class the models extend")
    parser.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="deadline of a call (watch: and of a health check)")
    parser.add_argument(
        "--report-failure", action="store_true", help="report failing models to the orchestrator (off by default)"
    )


_WATCH_EPILOG = """\
By default watch reads the orchestrator and nothing else: it contacts no model
node, so it cannot disturb a live crunch. Two options touch the nodes, and say so:

  --health  asks each running node's gRPC health service (a health channel of
            its own; no Setup, no model call) every --every seconds.
  --call    sets every model up and calls METHOD every --every seconds: a
            coordinator of its own. A node serves one call at a time, so these
            calls compete with the crunch coordinator's (RESOURCE_EXHAUSTED).
"""

_CALL_EPILOG = """\
Every model the orchestrator announces gets a row: those set up are called,
the others say why not (SETTING_UP after --init-timeout, SETUP_FAILED and the
reason). With --shard I/K, only the models of that shard get a row and a
call. Exit status: 0 when the method was called on at least one model,
whatever it answered; 1 when no model could be called (the crunch has none:
check --crunch-id; or the shard has none) or on an error; 2 for a bad
command line.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrclient",
        description="Drive the models of a CrunchDAO crunch from the command line: try the whole loop\n"
        "on a local cluster (demo), follow a crunch as its orchestrator announces it (watch),\n"
        "or call a method on all its models once (call).",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_log_options(parser)
    parser.set_defaults(verbose=0, quiet=False)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the coordinator loop on an embedded local cluster",
                               formatter_class=_HelpFormatter)
    _add_log_options(demo)
    demo.add_argument("--models", type=_count(DEMO_MIN_MODELS, " (one working, one slow, one broken)"), default=4,
                      help="number of model nodes: one slow, one broken, the others working")
    demo.add_argument("--rounds", type=_count(1), default=3, help="number of rounds")
    demo.add_argument("--timeout", type=_seconds, default=0.5, metavar="SECONDS", help="deadline of a call")
    demo.add_argument(
        "--secure", action="store_true", help="run the nodes in secure mode (mutual TLS, identity checks)"
    )

    watch = commands.add_parser(
        "watch",
        help="show the crunch's models as the orchestrator announces them, until Ctrl-C",
        description="A live table of the crunch's models as the orchestrator announces them: state,\n"
        "since when, cruncher, address, deployment, and who left and when, under a line on the\n"
        "orchestrator connection. One line per event when standard output is not a terminal.",
        epilog=_WATCH_EPILOG,
        formatter_class=_HelpFormatter,
    )
    _add_log_options(watch)
    _add_connection_options(watch)
    watch.add_argument("--health", action="store_true",
                       help="also ask each running node's gRPC health service (touches the nodes, see below)")
    watch.add_argument("--call", metavar="METHOD",
                       help="also set the models up and call METHOD on each (touches the nodes, see below)")
    with_call = watch.add_argument_group("with --call")
    _add_calling_options(with_call, needed=False)
    with_call.add_argument("--args", help="JSON array of positional arguments")
    with_call.add_argument("--kwargs", help="JSON object of keyword arguments")
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

    call = commands.add_parser(
        "call", help="run one round against an orchestrator and print a row per model",
        description="Call METHOD once on every model of the crunch and print a row per model.",
        epilog=_CALL_EPILOG, formatter_class=_HelpFormatter,
    )  # fmt: skip
    _add_log_options(call)
    _add_connection_options(call)
    _add_calling_options(call, needed=True)
    call.add_argument("method", help="the method to call on every model")
    call.add_argument("args", nargs="?", metavar="ARGS", help="JSON array of positional arguments")
    call.add_argument("--kwargs", help="JSON object of keyword arguments")
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
    if not args.call and (args.args or args.kwargs):
        parser.error("--args and --kwargs go with --call")


_LOG_LEVELS = {-1: logging.CRITICAL, 0: logging.ERROR, 1: logging.INFO}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    level = _LOG_LEVELS.get(-1 if args.quiet else args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings.catch_warnings():
            # call and watch say in their own words that a crunch is empty, and exit accordingly.
            warnings.simplefilter("ignore", EmptyCrunchWarning)
            if args.command == "demo":
                return run_demo(args.models, args.rounds, args.timeout, args.secure)
            if args.command == "watch":
                return run_watch(args)
            return run_call(args)
    except ConnectionError as error:
        _error(str(error))
        if "--init-timeout" in str(error):  # the library's message already says what bounds the wait
            print("mrclient: check --host, --port and --crunch-id", file=sys.stderr)
        else:
            print(f"mrclient: waited up to --init-timeout ({args.init_timeout:g}s): check --host, --port and "
                  "--crunch-id, or give the orchestrator longer with --init-timeout SECONDS", file=sys.stderr)
        return 1
    except (MrclientError, ImportError, ValueError, TypeError) as error:
        _error(str(error))
        return 1
    except KeyboardInterrupt:  # Ctrl-C while connecting or during a call: everything was closed on the way out
        return 130


if __name__ == "__main__":
    sys.exit(main())
