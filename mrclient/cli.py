"""The ``mrclient`` command: ``demo``, ``watch`` and ``call``.

``demo`` runs the README's coordinator loop on an embedded local cluster (a
``LocalOrchestrator`` and a few ``LocalModelNode`` processes' worth of nodes in
this process), in secure mode with ``--secure``; ``watch`` and ``call`` talk
to a real orchestrator, with ``--credentials`` or ``--gateway-key`` for
secure nodes. Also run as ``python -m mrclient``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from . import __version__
from .concurrent import DynamicSubclassModelConcurrentRunner, ModelPredictResult
from .errors import MrclientError
from .runners import ModelRunner
from .security import GatewayCredentials, SecureCredentials


def format_results(results: dict[ModelRunner, ModelPredictResult]) -> str:
    """A fixed-width table: one row per model."""
    rows = [("model", "status", "value", "latency", "detail")]
    for runner, result in sorted(results.items(), key=lambda item: str(item[0].model_name)):
        value = "" if result.result is None else json.dumps(result.result, default=str)
        rows.append(
            (
                str(runner.model_name or runner.model_id),
                result.status.value,
                value if len(value) <= 48 else value[:45] + "...",
                f"{result.exec_time_us / 1000:.1f} ms",
                result.detail or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + f"  {row[4]}"
        for row in rows
    )


def run_demo(models: int, rounds: int, timeout: float, secure: bool = False) -> int:
    from .testing import LocalModelNode, LocalOrchestrator
    from .testing.examples import BASE_CLASSNAME, BrokenTracker, EwmaTracker, SlowTracker, TrackerBase

    kinds: list[tuple[str, type[TrackerBase]]] = [("slow-tracker", SlowTracker), ("broken-tracker", BrokenTracker)]
    kinds += [(f"ewma-tracker-{i + 1}", EwmaTracker) for i in range(max(0, models - len(kinds)))]
    kinds = kinds[:models]
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


def _runner_from(args: argparse.Namespace) -> DynamicSubclassModelConcurrentRunner:
    """A connected runner; closed by the caller's ``with`` block."""
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=args.timeout,
        crunch_id=args.crunch_id,
        host=args.host,
        port=args.port,
        base_classname=args.base_classname,
        report_failure=args.report_failure,
        secure_credentials=SecureCredentials.from_directory(args.credentials) if args.credentials else None,
        gateway_credentials=GatewayCredentials.from_files(args.gateway_key) if args.gateway_key else None,
    )
    runner.init(timeout=args.init_timeout)
    return runner


def _print_model(event: str, model: ModelRunner) -> None:
    print(f"{time.strftime('%X')} {event:<6} {model.model_id} {model.model_name} {model.target}", flush=True)


def run_watch(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with _runner_from(args) as runner:

        def left(model: ModelRunner) -> None:
            if not stop.is_set():  # on Ctrl-C every model "leaves" as the runner closes: not news
                _print_model("left", model)

        runner.on_model_joined(lambda m: _print_model("joined", m), replay=False)  # "ready" below
        runner.on_model_left(left)
        for model in runner.models:
            _print_model("ready", model)
        stop.wait()
    return 0


def _json_option(text: str | None, what: str) -> Any:
    """The JSON value of a command-line argument; a ValueError naming the argument when it is not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"{what} is not valid JSON ({error}): {text!r}") from None


def run_call(args: argparse.Namespace) -> int:
    positional = _json_option(args.args, "the positional arguments (ARGS)")
    if positional is None:
        positional = []
    elif not isinstance(positional, list):
        positional = [positional]
    keywords = _json_option(args.kwargs, "--kwargs")
    if keywords is not None and not isinstance(keywords, dict):
        raise ValueError(f"--kwargs must be a JSON object of keyword arguments, got {args.kwargs!r}")
    with _runner_from(args) as runner:
        results = runner.call(args.method, args=positional, kwargs=keywords)
        print(format_results(results))
    return 0


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="localhost", help="orchestrator host")
    parser.add_argument("--port", type=int, default=8000, help="orchestrator port")
    parser.add_argument("--crunch-id", required=True, help="the crunch to follow")
    parser.add_argument("--base-classname", required=True, help="fully qualified base class the models extend")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline in seconds")
    parser.add_argument("--init-timeout", type=float, default=30.0, help="seconds to wait for the orchestrator")
    parser.add_argument(
        "--report-failure", action="store_true", help="report failing models to the orchestrator (off by default)"
    )
    secure = parser.add_mutually_exclusive_group()
    secure.add_argument(
        "--credentials", metavar="DIR", help="secure mode (mutual TLS): a directory with ca.crt, tls.crt and tls.key"
    )
    secure.add_argument(
        "--gateway-key", metavar="PATH", help="secure mode behind a gateway: the coordinator's RSA key (PEM)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrclient",
        description="Drive the models of a CrunchDAO crunch from the command line: "
        "try the whole loop on a local cluster (demo), follow a crunch's models (watch), "
        "or call a method on all of them once (call).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the client does")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the coordinator loop on an embedded local cluster")
    demo.add_argument("--models", type=int, default=4, help="number of model nodes (one slow, one broken)")
    demo.add_argument("--rounds", type=int, default=3, help="number of rounds")
    demo.add_argument("--timeout", type=float, default=0.5, help="per-call deadline in seconds")
    demo.add_argument(
        "--secure", action="store_true", help="run the nodes in secure mode (mutual TLS, identity checks)"
    )

    watch = commands.add_parser("watch", help="print models as they join and leave, until Ctrl-C")
    _add_connection_options(watch)

    call = commands.add_parser("call", help="run one round against an orchestrator and print the table")
    _add_connection_options(call)
    call.add_argument("method", help="the method to call on every model")
    call.add_argument("args", nargs="?", help="JSON array of positional arguments")
    call.add_argument("--kwargs", help="JSON object of keyword arguments")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "demo":
            return run_demo(args.models, args.rounds, args.timeout, args.secure)
        if args.command == "watch":
            return run_watch(args)
        return run_call(args)
    except (MrclientError, ConnectionError, ImportError, ValueError, TypeError) as error:
        print(f"mrclient: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
