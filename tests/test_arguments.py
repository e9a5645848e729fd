"""Every parameter of every public callable, given a wrong type or value: the error names it and what it takes.

One row per (callable, parameter, bad value, words the error must contain):
``call(args=5)`` used to say only ``'int' object is not iterable``. A
coordinator's mistake raises ``InvalidCoordinatorUsageError``; the codec's
``encode_data``/``decode_data`` raise ``ValueError`` as before; the testing
kit raises ``ValueError`` (a test's mistake, not a coordinator's). No row
needs the network: the runners are made and not started.

``test_every_public_parameter_has_a_row`` reads the public surface
(``mrclient.__all__`` and the ``__all__`` of the documented modules, with
``inspect.signature``) and fails for a callable or parameter without a row,
unless ``EXEMPT`` says why it has none. To cover a new parameter, add a row to
``ROWS`` (and, for a new callable, its way to be called to ``CALLS``). The
command line's options have rows of their own (``CLI_ROWS``): a bad value
exits 2 with the usage line and the option's name on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

import mrclient
from conftest import TESTS
from mrclient import (
    Args,
    DynamicSubclassModelConcurrentRunner,
    DynamicSubclassModelRunner,
    GatewayCredentials,
    InvalidCoordinatorUsageError,
    ModelCluster,
    ModelConcurrentRunner,
    ModelRunner,
    SecureCredentials,
    TrainInferModelConcurrentRunner,
    TrainInferModelRunner,
    VariantType,
)
from mrclient.aio import AsyncRunner
from mrclient.cli import build_parser
from mrclient.notebook import LiveView
from mrclient.testing import LocalModelNode, LocalOrchestrator

#: The modules whose ``__all__`` is public (docs/api.rst documents them).
PUBLIC_MODULES = (
    "mrclient", "mrclient.aio", "mrclient.notebook", "mrclient.plotting", "mrclient.metrics", "mrclient.results",
    "mrclient.testing", "mrclient.testing.secure", "mrclient.testing.examples",
)  # fmt: skip

USAGE = InvalidCoordinatorUsageError
KIT = (ValueError, TypeError)  # the testing kit: a test's mistake

# -- what exists without a row, and why ---------------------------------------------------------------------

_SNAPSHOT = "a frozen snapshot the library makes and hands out; a coordinator reads it, it does not construct it"
_SECURE_KIT = ("the secure-mode test kit: its arguments are the certificates, keys and identities its own methods "
               "make (tests/test_secure_mode.py and tests/test_secure_checks.py exercise it)")
_HOT_PATH = ("the round's plumbing, called once per model per round with values the concurrent runner checked; a "
             "coordinator scheduling models itself uses the checked call(), infer() and reinitialize()")

#: ``callable`` or ``(callable, parameter)`` -> why it has no row.
EXEMPT: dict[str | tuple[str, str], str] = {
    **{f"{cls}.__init__": _SNAPSHOT for cls in (
        "CallTotals", "ConnectionState", "MethodCounts", "ModelStats", "Roster", "RoundResults", "RoundSummary",
        "RunnerOverview", "ModelPredictResult",
    )},  # fmt: skip
    **{f"ModelPredictResult.{name}": "the async reference client's constructors of a result, kept for ported code"
       for name in ("of_success", "of_failed", "of_timeout")},
    "InvalidCoordinatorUsageError.__init__": "an exception: its message is whatever mrclient says",
    **{name: _SECURE_KIT for name in (
        "Cruncher.__init__", "Cruncher.generate", "Cruncher.sign", "Cruncher.sign_identity",
        "LocalCertificateAuthority.__init__", "LocalCertificateAuthority.issue",
        "LocalCertificateAuthority.coordinator_credentials", "LocalCertificateAuthority.write_coordinator_files",
        "LocalCertificateAuthority.write_gateway_key", "LocalCertificateAuthority.mutual_tls_node",
        "LocalCertificateAuthority.gateway_node", "GatewayNodeSecurity.__init__", "GatewayNodeSecurity.check_call",
        "MutualTlsNodeSecurity.__init__", "MutualTlsNodeSecurity.check_call", "SignedIdentity.__init__",
        "SignedIdentity.from_json", "UnaryInterceptor.__init__", "UnaryInterceptor.intercept_service",
        "secure.public_key_der", "secure.public_key_sha256",
    )},  # fmt: skip
    **{name: "an example participant's model (mrclient.testing.examples), not mrclient's API"
       for name in ("TrackerBase.tick", "EwmaTracker.__init__", "EwmaTracker.tick")},
    **{name: _HOT_PATH for name in (
        "ModelRunner.execute", "ModelRunner.invoke", "ModelRunner.send", "DynamicSubclassModelRunner.execute",
        "TrainInferModelRunner.execute", "TrainInferModelRunner.execute_reinitialize",
    )},  # fmt: skip
    ("ModelConcurrentRunner.create_model_runner", "kwargs"): "abstract: the two kinds' rows cover it",
    ("RunnerOverview.html", "rows"): "what rows() makes, passed by the live view; a row checks its shape",
    "Args.__init__": ("any values: each is encoded when a runner prepares the call, and a bad one is refused there, "
                      "naming its position or keyword (rows of call(arguments=Args(...)))"),
}


# -- the objects the rows call --------------------------------------------------------------------------------

GOOD_RUNNER = dict(timeout=1, crunch_id="arguments", host="127.0.0.1", port=1, base_classname="a.B")
GOOD_IDENTITY = dict(deployment_id="d-1", model_id="m-1", model_name="one", ip="127.0.0.1", port=1, infos={})


class _Concrete(ModelConcurrentRunner):
    """The abstract base's constructor, called as its subclasses call it."""

    def create_model_runner(self, **kwargs: Any) -> ModelRunner:
        return DynamicSubclassModelRunner(base_classname="a.B", **kwargs)


class _ConcreteModel(ModelRunner):
    """The abstract per-model runner's constructor, called as its flavours call it."""

    def setup(self, channel: grpc.Channel, timeout: float) -> tuple[bool, ModelRunner.ErrorType | None]:
        raise NotImplementedError

    def execute(self, request: Any, timeout: float) -> Any:
        raise NotImplementedError


@dataclass
class Env:
    """The objects of the method rows, made once (none is started: nothing touches the network)."""

    runner: DynamicSubclassModelConcurrentRunner
    infer_runner: TrainInferModelConcurrentRunner
    facade: AsyncRunner[DynamicSubclassModelConcurrentRunner]
    infer_facade: AsyncRunner[TrainInferModelConcurrentRunner]
    model: DynamicSubclassModelRunner
    infer_model: TrainInferModelRunner
    orchestrator: LocalOrchestrator
    view: LiveView
    pem_files: dict[str, str]  # ca.crt, tls.crt, tls.key (junk) and gateway.key (an RSA key): readable files
    rsa_key: Any
    key_pem: bytes
    channel: grpc.Channel  # never used: gRPC connects on a channel's first call


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory = tmp_path_factory.mktemp("arguments")
    files = {name: directory / name for name in ("ca.crt", "tls.crt", "tls.key", "gateway.key")}
    for name, path in files.items():
        path.write_bytes(key_pem if name == "gateway.key" else b"not PEM")
    runner = DynamicSubclassModelConcurrentRunner(**GOOD_RUNNER)  # type: ignore[arg-type]
    infer_runner = TrainInferModelConcurrentRunner(timeout=1, crunch_id="arguments", host="127.0.0.1", port=1)
    orchestrator = LocalOrchestrator(crunch_id="arguments")  # not started: add_model announces to nobody
    orchestrator.add_model(port=5555, model_id="m-1")
    made = Env(
        runner, infer_runner, AsyncRunner(runner), AsyncRunner(infer_runner),
        DynamicSubclassModelRunner(base_classname="a.B", **GOOD_IDENTITY),  # type: ignore[arg-type]
        TrainInferModelRunner(**GOOD_IDENTITY),  # type: ignore[arg-type]
        orchestrator, LiveView(runner, lambda bundle: None), {name: str(path) for name, path in files.items()},
        rsa_key, key_pem, grpc.insecure_channel("127.0.0.1:1"),
    )  # fmt: skip
    yield made
    for closing in (runner, infer_runner, made.model, made.infer_model, made.channel):
        closing.close()


def _awaited(method: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine method, run to its end (its signature is the method's)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(method(*args, **kwargs))

    run.__wrapped__ = method  # type: ignore[attr-defined]
    return run


def _made(cls: type) -> Callable[..., Any]:
    """Construct, and close what was made if construction wrongly succeeded (the row then fails)."""

    def construct(*args: Any, **kwargs: Any) -> Any:
        made = cls(*args, **kwargs)
        if hasattr(made, "close"):
            made.close()
        return made

    construct.__wrapped__ = cls  # type: ignore[attr-defined]
    return construct


def _cluster(
    crunch_id: Any = "arguments", host: Any = "127.0.0.1", port: Any = 1, runner_factory: Any = print, **kwargs: Any
) -> ModelCluster:
    """A ModelCluster with good arguments but those given; closed if made."""
    cluster = ModelCluster(crunch_id, host, port, runner_factory, **kwargs)
    cluster.close()
    return cluster


_cluster.__wrapped__ = ModelCluster  # type: ignore[attr-defined]


def _module(name: str) -> Any:
    return importlib.import_module(name)


def _orchestrator_wait(name: str) -> Callable[[Env], Callable[..., Any]]:
    return lambda e: getattr(e.orchestrator, name)


#: A good set of arguments, or a function of the env making one; ``"*"`` holds the positional ones.
Good = dict[str, Any] | Callable[[Env], dict[str, Any]]
NO_RUNNER = {k: v for k, v in GOOD_RUNNER.items() if k != "base_classname"}

#: callable -> (how to get it from the env, its good arguments): a row replaces one of them. ``_made(cls)``:
#: a constructor whose object, if made despite the bad argument, is closed; ``_awaited(method)``: a coroutine.
CALLS: dict[str, tuple[Callable[[Env], Callable[..., Any]], Good]] = {
    # the concurrent runners
    "DynamicSubclassModelConcurrentRunner.__init__": (lambda e: _made(DynamicSubclassModelConcurrentRunner), GOOD_RUNNER),
    "TrainInferModelConcurrentRunner.__init__": (lambda e: _made(TrainInferModelConcurrentRunner), NO_RUNNER),
    "ModelConcurrentRunner.__init__": (lambda e: _made(_Concrete), NO_RUNNER),
    "DynamicSubclassModelConcurrentRunner.call": (lambda e: e.runner.call, {"method_name": "predict"}),
    "DynamicSubclassModelConcurrentRunner.map": (lambda e: e.runner.map, {"method_name": "predict", "inputs": []}),
    "DynamicSubclassModelConcurrentRunner.create_model_runner": (lambda e: e.runner.create_model_runner, {}),
    "TrainInferModelConcurrentRunner.create_model_runner": (lambda e: e.infer_runner.create_model_runner, {}),
    "TrainInferModelConcurrentRunner.predict": (lambda e: e.infer_runner.predict, {"value": 1.0}),
    "TrainInferModelConcurrentRunner.reinitialize": (lambda e: e.infer_runner.reinitialize, {}),
    "TrainInferModelConcurrentRunner.map_predict": (lambda e: e.infer_runner.map_predict, {"values": []}),
    "ModelConcurrentRunner.stats": (lambda e: e.runner.stats, {}),
    "ModelConcurrentRunner.init": (lambda e: e.runner.init, {}),
    "ModelConcurrentRunner.wait_for_models": (lambda e: e.runner.wait_for_models, {"count": 0, "timeout": 0}),
    "ModelConcurrentRunner.on_model_joined": (lambda e: e.runner.on_model_joined, {"listener": print}),
    "ModelConcurrentRunner.on_model_left": (lambda e: e.runner.on_model_left, {}),
    "ModelConcurrentRunner.on_round": (lambda e: e.runner.on_round, {}),
    "ModelConcurrentRunner.on_closed": (lambda e: e.runner.on_closed, {}),
    "ModelConcurrentRunner.report_failure": (
        lambda e: e.runner.report_failure, {"model_runner": None, "failure_code": "LOW_PERFORMANCE"}
    ),
    # the model table
    "ModelCluster.__init__": (lambda e: _cluster, {}),
    "ModelCluster.start": (lambda e: e.runner.model_cluster.start, {}),
    "ModelCluster.wait_for_models": (lambda e: e.runner.model_cluster.wait_for_models, {"count": 0, "timeout": 0}),
    "ModelCluster.wait_for_setups": (lambda e: e.runner.model_cluster.wait_for_setups, {}),
    "ModelCluster.on_model_joined": (lambda e: e.runner.model_cluster.on_model_joined, {"listener": print}),
    "ModelCluster.on_model_left": (lambda e: e.runner.model_cluster.on_model_left, {}),
    "ModelCluster.select": (lambda e: e.runner.model_cluster.select, {}),
    "ModelCluster.report_failure": (
        lambda e: e.runner.model_cluster.report_failure, {"runner": None, "code": "LOW_PERFORMANCE"}
    ),
    "ModelCluster.reject": (lambda e: e.runner.model_cluster.reject, {"runner": None, "code": "LOW_PERFORMANCE"}),
    "ModelCluster.remove": (lambda e: e.runner.model_cluster.remove, {"runner": None}),
    "ModelCluster.reconnect": (lambda e: e.runner.model_cluster.reconnect, {}),
    # the per-model runners
    "ModelRunner.__init__": (lambda e: _made(_ConcreteModel), GOOD_IDENTITY),
    "DynamicSubclassModelRunner.__init__": (
        lambda e: _made(DynamicSubclassModelRunner), {"base_classname": "a.B", **GOOD_IDENTITY}
    ),
    "TrainInferModelRunner.__init__": (lambda e: _made(TrainInferModelRunner), GOOD_IDENTITY),
    "ModelRunner.init": (lambda e: e.model.init, {}),
    "ModelRunner.mark_left": (lambda e: e.model.mark_left, {}),
    "ModelRunner.health": (lambda e: e.model.health, {}),
    "ModelRunner.bind": (lambda e: e.model.bind, {}),
    "ModelRunner.setup": (lambda e: e.model.setup, lambda e: {"channel": e.channel, "timeout": 1}),
    "DynamicSubclassModelRunner.bind": (lambda e: e.model.bind, {}),
    "DynamicSubclassModelRunner.setup": (lambda e: e.model.setup, lambda e: {"channel": e.channel, "timeout": 1}),
    "DynamicSubclassModelRunner.call": (lambda e: e.model.call, {"method_name": "predict"}),
    "TrainInferModelRunner.bind": (lambda e: e.infer_model.bind, {}),
    "TrainInferModelRunner.setup": (lambda e: e.infer_model.setup, lambda e: {"channel": e.channel, "timeout": 1}),
    "TrainInferModelRunner.infer": (lambda e: e.infer_model.infer, {"value": 1.0}),
    "TrainInferModelRunner.reinitialize": (lambda e: e.infer_model.reinitialize, {}),
    # the asyncio facade
    "AsyncRunner.__init__": (lambda e: AsyncRunner, lambda e: {"runner": e.runner}),
    "AsyncRunner.init": (lambda e: _awaited(e.facade.init), {}),
    "AsyncRunner.wait_for_models": (lambda e: _awaited(e.facade.wait_for_models), {"count": 0, "timeout": 0}),
    "AsyncRunner.call": (lambda e: _awaited(e.facade.call), {"method_name": "predict"}),
    "AsyncRunner.predict": (lambda e: _awaited(e.infer_facade.predict), {"value": 1.0}),
    "AsyncRunner.reinitialize": (lambda e: _awaited(e.infer_facade.reinitialize), {}),
    # map() and map_predict() check their arguments when called (the map starts with the first async for step)
    "AsyncRunner.map": (lambda e: e.facade.map, {"method_name": "predict", "inputs": []}),
    "AsyncRunner.map_predict": (lambda e: e.infer_facade.map_predict, {"values": []}),
    "AsyncRunner.stats": (lambda e: e.facade.stats, {}),
    "AsyncRunner.on_model_joined": (lambda e: e.facade.on_model_joined, {"listener": print}),
    "AsyncRunner.on_model_left": (lambda e: e.facade.on_model_left, {}),
    "AsyncRunner.on_round": (lambda e: e.facade.on_round, {}),
    "AsyncRunner.report_failure": (
        lambda e: e.facade.report_failure, {"model_runner": None, "failure_code": "LOW_PERFORMANCE"}
    ),
    # values on the wire, shards
    "mrclient.encode_data": (lambda e: mrclient.encode_data, {"data_type": VariantType.JSON, "value": 1}),
    "mrclient.decode_data": (lambda e: mrclient.decode_data, {"data": b"1", "data_type": VariantType.JSON}),
    "mrclient.shard_of": (lambda e: mrclient.shard_of, {"model_id": "m-1", "count": 2}),
    # credentials
    "SecureCredentials.__init__": (lambda e: SecureCredentials, dict.fromkeys(("ca_bytes", "cert_bytes", "key_bytes"), b"x")),
    "SecureCredentials.from_files": (lambda e: SecureCredentials.from_files, lambda e: {
        "ca_cert_path": e.pem_files["ca.crt"], "tls_cert_path": e.pem_files["tls.crt"],
        "tls_key_path": e.pem_files["tls.key"],
    }),  # fmt: skip
    "SecureCredentials.from_directory": (lambda e: SecureCredentials.from_directory, {"path": "/nonexistent"}),
    "GatewayCredentials.__init__": (lambda e: GatewayCredentials, lambda e: {"private_key": e.rsa_key}),
    "GatewayCredentials.from_pem": (lambda e: GatewayCredentials.from_pem, lambda e: {"key_pem": e.key_pem}),
    "GatewayCredentials.from_files": (
        lambda e: GatewayCredentials.from_files, lambda e: {"cert_or_key_path": e.pem_files["gateway.key"]}
    ),
    "GatewayCredentials.token": (lambda e: GatewayCredentials(e.rsa_key).token, {"model_id": "m-1"}),
    # statistics and views
    "ModelStatsTable.to_records": (lambda e: e.runner.stats().to_records, {}),
    "ModelStatsTable.to_frame": (lambda e: e.runner.stats().to_frame, {}),
    "RunnerOverview.html": (lambda e: e.runner.overview().html, {}),
    "RunnerOverview.rows": (lambda e: e.runner.overview().rows, {}),
    "LiveView.__init__": (lambda e: LiveView, lambda e: {"runner": e.runner, "publish": print}),
    "LiveView.stop": (lambda e: e.view.stop, {}),
    "LiveView.join": (lambda e: e.view.join, {}),
    "LiveView.bundle": (lambda e: e.view.bundle, {}),
    "notebook.show": (lambda e: _module("mrclient.notebook").show, lambda e: {"runner": e.runner}),
    "plotting.latency_figure": (lambda e: _module("mrclient.plotting").latency_figure, {"source": []}),
    "plotting.status_figure": (lambda e: _module("mrclient.plotting").status_figure, {"source": []}),
    "MrclientCollector.__init__": (lambda e: _module("mrclient.metrics").MrclientCollector, lambda e: {"*": (e.runner,)}),
    "metrics.register_metrics": (lambda e: _module("mrclient.metrics").register_metrics, lambda e: {"*": (e.runner,)}),
    # the testing kit
    "LocalOrchestrator.__init__": (lambda e: LocalOrchestrator, {"crunch_id": "arguments"}),
    "LocalOrchestrator.add_model": (lambda e: e.orchestrator.add_model, {"port": 5555}),
    "LocalOrchestrator.stop_model": (lambda e: e.orchestrator.stop_model, {}),
    "LocalOrchestrator.recover_model": (lambda e: e.orchestrator.recover_model, {"model_id": "m-1"}),
    "LocalOrchestrator.move_model": (lambda e: e.orchestrator.move_model, {"model_id": "m-1"}),
    "LocalOrchestrator.redeploy_model": (lambda e: e.orchestrator.redeploy_model, {"model_id": "m-1"}),
    "LocalOrchestrator.remove_model": (lambda e: e.orchestrator.remove_model, {}),
    "LocalOrchestrator.set_state": (lambda e: e.orchestrator.set_state, {"model_id": "m-1", "state": "RUNNING"}),
    "LocalOrchestrator.set_infos": (lambda e: e.orchestrator.set_infos, {"model_id": "m-1", "infos": {}}),
    "LocalOrchestrator.model": (lambda e: e.orchestrator.model, {}),
    "LocalOrchestrator.send_raw": (lambda e: e.orchestrator.send_raw, {"data": "{}"}),
    **{f"LocalOrchestrator.{name}": (_orchestrator_wait(name), {"count": 0, "timeout": 0})
       for name in ("wait_for_clients", "wait_for_connections", "wait_for_reports", "wait_for_ignored_reports")},
    "LocalModelNode.__init__": (lambda e: LocalModelNode, {}),
    "LocalModelNode.set_serving": (lambda e: LocalModelNode().set_serving, {}),
}


# -- the rows --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """``callable(parameter=bad)`` raises ``error`` whose message holds every one of ``words``."""

    callable: str
    parameter: str
    bad: Any
    words: tuple[str, ...]
    error: type[BaseException] | tuple[type[BaseException], ...] = USAGE

    @property
    def id(self) -> str:
        """Stable from one process to the next (xdist's workers collect alike): no addresses."""
        shown = repr(self.bad)
        if " at 0x" in shown:
            shown = f"<{type(self.bad).__name__}>"
        return f"{self.callable}({self.parameter}={shown:.40})"


def rows(callable_: str, error: Any = USAGE, **bad: tuple[Any, str | tuple[str, ...]]) -> list[Row]:
    """``rows("X.f", timeout=(-1, "positive"))``: one row per keyword; the parameter's name is always a word."""
    made = []
    for parameter, (value, words) in bad.items():
        words = (words,) if isinstance(words, str) else words
        made.append(Row(callable_, parameter.rstrip("_"), value, (parameter.rstrip("_"), *words), error))
    return made


def shared(callable_: str) -> list[Row]:
    """The options every concurrent runner takes, each given a bad value."""
    return rows(
        callable_,
        timeout=(-1, "positive"), crunch_id=("", "crunch's id"), host=("ws://h:8000/c", "not a URL"),
        port=("eighty", "TCP port"), max_consecutive_failures=(-1, "0 or more"),
        max_consecutive_timeouts=(1.5, "integer"), secure_credentials=("/certs", "SecureCredentials"),
        gateway_credentials=(b"key", "GatewayCredentials"), report_failure=("no", "True or False"),
        retry_backoff_factor=("2", "seconds"), orchestrator_settings=({}, "OrchestratorSettings"),
        init_timeout=(0, "positive"), round_switch_interval=(-1, "positive"), keep_stats=("yes", "True or False"),
        shard=((3, 3), "index from 0 to count - 1"),
    )  # fmt: skip


def shards(callable_: str) -> list[Row]:
    """``shard=(index, count)`` given what is not two integers, a count below 1, an index out of range."""
    return [
        Row(callable_, "shard", "0/3", ("shard", "two integers")),
        Row(callable_, "shard", (1,), ("shard", "two integers")),
        Row(callable_, "shard", (0.0, 2), ("shard", "two integers")),
        Row(callable_, "shard", (0, 0), ("shard", "count of 1 or more")),
        Row(callable_, "shard", (-1, 2), ("shard", "index from 0 to count - 1")),
    ]


def maps(callable_: str, items: str) -> list[Row]:
    """A map's parameters (``items``: ``inputs`` or ``values``), checked when map() is called, before it starts."""
    return [
        *rows(callable_, **{items: (5, "iterable of inputs")}, timeout=TIMEOUT, model_runs=MODEL_RUNS,
              window=(0, "positive whole number")),
        Row(callable_, items, "abc", (items, "not one str")),
        Row(callable_, "model_runs", [None], ("model_runs[0]", "NoneType")),
        Row(callable_, "window", 1.5, ("window", "positive whole number")),
        Row(callable_, "timeout", "1", ("timeout", "seconds")),
    ]


MODEL_RUNS = ("model-1", "not one string")  # a bad model_runs and what its error says
TIMEOUT = (-1, "positive")
LISTENER = (5, "function")

ROWS: list[Row] = [
    *shared("DynamicSubclassModelConcurrentRunner.__init__"),
    *rows("DynamicSubclassModelConcurrentRunner.__init__", base_classname=("a b", "dotted name"),
          instance_args=(5, "list or tuple"), instance_kwargs=(5, "mapping")),
    *shared("TrainInferModelConcurrentRunner.__init__"),
    *rows("TrainInferModelConcurrentRunner.__init__", service_name=("Infer", "TrainInferStreamService")),
    *shared("ModelConcurrentRunner.__init__"),
    *[row for name in ("DynamicSubclassModelConcurrentRunner", "TrainInferModelConcurrentRunner",
                       "ModelConcurrentRunner", "ModelCluster") for row in shards(f"{name}.__init__")],
    *rows("DynamicSubclassModelConcurrentRunner.call", method_name=("", "non-empty string"),
          arguments=(5, "(args, kwargs)"), timeout=TIMEOUT, model_runs=MODEL_RUNS,
          args=(5, "list or tuple"), kwargs=([1], "mapping")),
    Row("DynamicSubclassModelConcurrentRunner.call", "arguments", Args({1, 2}), ("arguments: args", "cannot encode")),
    Row("DynamicSubclassModelConcurrentRunner.call", "arguments", Args(x=object()),
        ("arguments: kwargs", "keyword 'x'", "cannot encode")),
    *rows("DynamicSubclassModelConcurrentRunner.map", method_name=("", "non-empty string")),
    *maps("DynamicSubclassModelConcurrentRunner.map", "inputs"),
    *maps("TrainInferModelConcurrentRunner.map_predict", "values"),
    *rows("ModelConcurrentRunner.stats", include_left=("no", "True or False")),
    # **kwargs: the error names the keyword given, not "kwargs"
    Row("DynamicSubclassModelConcurrentRunner.create_model_runner", "kwargs", {**GOOD_IDENTITY, "port": "x"},
        ("port", "TCP port")),
    Row("TrainInferModelConcurrentRunner.create_model_runner", "kwargs", {**GOOD_IDENTITY, "ip": "a b"},
        ("ip", "host name")),
    *rows("TrainInferModelConcurrentRunner.predict", value=(object(), "cannot encode"), timeout=TIMEOUT,
          model_runs=MODEL_RUNS),
    *rows("TrainInferModelConcurrentRunner.reinitialize", timeout=TIMEOUT, model_runs=MODEL_RUNS),
    *rows("ModelConcurrentRunner.init", timeout=TIMEOUT),
    *rows("ModelConcurrentRunner.wait_for_models", count=(-1, "0 or more"), timeout=("soon", "seconds")),
    *rows("ModelConcurrentRunner.on_model_joined", listener=LISTENER, replay=("yes", "True or False")),
    *rows("ModelConcurrentRunner.on_model_left", listener=LISTENER),
    *rows("ModelConcurrentRunner.on_round", listener=LISTENER),
    *rows("ModelConcurrentRunner.on_closed", listener=LISTENER),
    *rows("ModelConcurrentRunner.report_failure", model_runner=({"model_id": "m-1"}, "model runner"),
          failure_code=("LOW_PERF", "LOW_PERFORMANCE"), failure_reason=(5, "string or None")),
    # the model table
    *rows("ModelCluster.__init__", crunch_id=("", "crunch's id"), host=("h:1", "port separately"),
          port=(0, "TCP port"), runner_factory=(5, "function"), report_failure=("no", "True or False"),
          setup_workers=(0, "1 or more"), settings=({}, "OrchestratorSettings"),
          listener_join_timeout=(-1, "positive"), shard=((0, 0), "count of 1 or more")),
    *rows("ModelCluster.start", timeout=TIMEOUT),
    *rows("ModelCluster.wait_for_models", count=("3", "0 or more"), timeout=(-1, "0 or more")),
    *rows("ModelCluster.wait_for_setups", timeout=(float("nan"), "seconds")),
    *rows("ModelCluster.on_model_joined", listener=LISTENER, replay=(1, "True or False")),
    *rows("ModelCluster.on_model_left", listener=LISTENER),
    *rows("ModelCluster.select", model_runs=([None], "model_runs[0]")),
    *rows("ModelCluster.report_failure", runner=("m-1", "model runner"), code=("X", "LOW_PERFORMANCE"),
          reason=(5, "string or None")),
    *rows("ModelCluster.reject", runner=("m-1", "model runner"), code=("X", "LOW_PERFORMANCE"),
          reason=(5, "string or None")),
    *rows("ModelCluster.remove", runner=("m-1", "model runner"), reason=("", "why the model left")),
    *rows("ModelCluster.reconnect", runner=(None, "model runner")),
    # the per-model runners
    *rows("ModelRunner.__init__", deployment_id=(5, "string"), model_id=("", "model's id"),
          model_name=(5, "string or None"), ip=("h:1", "port separately"), port=(70000, "TCP port"),
          infos=([1], "dict"), retry_backoff_factor=(0, "positive"), connect_attempts=(0, "1 or more"),
          setup_timeout=("1", "seconds"), secure_credentials=("/certs", "SecureCredentials"),
          gateway_credentials=(b"key", "GatewayCredentials")),
    *rows("DynamicSubclassModelRunner.__init__", base_classname=("", "dotted name"),
          instance_args=("abc", "list or tuple"), instance_kwargs=(3, "mapping")),
    Row("DynamicSubclassModelRunner.__init__", "kwargs", {"port": None}, ("port", "TCP port")),
    *rows("TrainInferModelRunner.__init__", service_name=(5, "TrainInferService")),
    Row("TrainInferModelRunner.__init__", "kwargs", {"connect_attempts": "5"}, ("connect_attempts", "1 or more")),
    *rows("ModelRunner.init", on_retry=(5, "function")),
    *rows("ModelRunner.mark_left", reason=(None, "why the model left")),
    *rows("ModelRunner.health", timeout=TIMEOUT),
    *rows("ModelRunner.bind", channel=("127.0.0.1:1", "grpc.Channel")),
    *rows("ModelRunner.setup", channel=(None, "grpc.Channel"), timeout=TIMEOUT),
    *rows("DynamicSubclassModelRunner.bind", channel=(None, "grpc.Channel")),
    *rows("DynamicSubclassModelRunner.setup", channel=(None, "grpc.Channel"), timeout=TIMEOUT),
    *rows("DynamicSubclassModelRunner.call", method_name=(None, "non-empty string"), arguments=(5, "(args, kwargs)"),
          timeout=TIMEOUT),
    *rows("TrainInferModelRunner.bind", channel=(None, "grpc.Channel")),
    *rows("TrainInferModelRunner.setup", channel=(None, "grpc.Channel"), timeout=TIMEOUT),
    *rows("TrainInferModelRunner.infer", value=({1, 2}, "cannot encode"), timeout=TIMEOUT),
    *rows("TrainInferModelRunner.reinitialize", timeout=TIMEOUT),
    # the asyncio facade: checked by the runner underneath, raised through
    *rows("AsyncRunner.__init__", runner=("ws://h:1/c", "constructed runner"), round_switch_interval=(0, "positive")),
    *rows("AsyncRunner.init", timeout=TIMEOUT),
    *rows("AsyncRunner.wait_for_models", count=(None, "0 or more"), timeout=(-1, "0 or more")),
    *rows("AsyncRunner.call", method_name=(5, "non-empty string"), arguments=("x", "(args, kwargs)"),
          timeout=TIMEOUT, model_runs=MODEL_RUNS, args=({"a": 1}, "list or tuple"), kwargs=(5, "mapping")),
    *rows("AsyncRunner.predict", value=(object(), "cannot encode"), timeout=TIMEOUT, model_runs=MODEL_RUNS),
    *rows("AsyncRunner.reinitialize", timeout=TIMEOUT, model_runs=([3], "model_runs[0]")),
    Row("AsyncRunner.call", "arguments", Args([object()]), ("arguments: args", "cannot encode")),
    *rows("AsyncRunner.map", method_name=(None, "non-empty string")),
    *maps("AsyncRunner.map", "inputs"),
    *maps("AsyncRunner.map_predict", "values"),
    *rows("AsyncRunner.stats", include_left=(0, "True or False")),
    *rows("AsyncRunner.on_model_joined", listener=LISTENER, replay=(None, "True or False")),
    *rows("AsyncRunner.on_model_left", listener=LISTENER),
    *rows("AsyncRunner.on_round", listener=LISTENER),
    *rows("AsyncRunner.report_failure", model_runner=("m-1", "model runner"), failure_code=(None, "LOW_PERFORMANCE"),
          failure_reason=(b"x", "string or None")),
    # values on the wire, shards
    *rows("mrclient.encode_data", ValueError, data_type=("JSON", "VariantType"), value=({1, 2}, "cannot encode")),
    *rows("mrclient.decode_data", ValueError, data=("1", "bytes"), data_type=(None, "VariantType")),
    *rows("mrclient.shard_of", model_id=(5, "string"), count=(0, "1 or more")),
    Row("mrclient.shard_of", "count", "3", ("count", "1 or more")),
    Row("mrclient.shard_of", "count", True, ("count", "1 or more")),
    # credentials
    *rows("SecureCredentials.__init__", ca_bytes=("PEM", "PEM bytes"), cert_bytes=(None, "PEM bytes"),
          key_bytes=(bytearray(), "PEM bytes"), check_expiry=("no", "True or False")),
    *rows("SecureCredentials.from_files", ca_cert_path=(5, "path"), tls_cert_path=(None, "path"),
          tls_key_path=(b"x", "path"), check_expiry=(0, "True or False")),
    *rows("SecureCredentials.from_directory", path=(5, "path"), check_expiry=("yes", "True or False")),
    *rows("GatewayCredentials.__init__", TypeError, private_key=("-----BEGIN", "RSA private key")),
    *rows("GatewayCredentials.__init__", root_certificates=("PEM", "PEM bytes")),
    *rows("GatewayCredentials.from_pem", key_pem=("PEM", "PEM bytes"), root_certificates=(5, "PEM bytes")),
    *rows("GatewayCredentials.from_files", cert_or_key_path=(None, "path"), key_path=(5, "path"),
          root_certificates=("x", "PEM bytes")),
    *rows("GatewayCredentials.token", model_id=("", "model's id"), now=(-1, "seconds")),
    # statistics and views
    *rows("ModelStatsTable.to_records", by_method=("yes", "True or False")),
    *rows("ModelStatsTable.to_frame", by_method=(1, "True or False")),
    *rows("RunnerOverview.html", limit=(0, "1 or more"), note=(5, "string or None")),
    Row("RunnerOverview.html", "rows", [1, 2, 3], ("rows", "rows()")),
    *rows("RunnerOverview.rows", limit=(-1, "1 or more")),
    *rows("LiveView.__init__", runner=("runner", "concurrent runner"), publish=(None, "function"),
          every=(0, "positive"), rows=(0, "1 or more"), display_id=(5, "string or None")),
    *rows("LiveView.stop", timeout=(-1, "0 or more")),
    *rows("LiveView.join", timeout=("1", "0 or more")),
    *rows("LiveView.bundle", final=("yes", "True or False")),
    *rows("notebook.show", runner=(None, "concurrent runner"), every=(-1, "positive"), rows=(1.5, "1 or more")),
    *rows("plotting.latency_figure", source=(5, "runner"), deadline=(0, "positive"), models=(0, "1 or more")),
    *rows("plotting.status_figure", source=("runner", "runner"), rounds=(-1, "0 or more")),
    *rows("MrclientCollector.__init__", runners=(("runner",), "concurrent runners"),
          per_model=("yes", "True or False")),
    *rows("metrics.register_metrics", runners=((), "at least one runner"), registry=("default", "CollectorRegistry"),
          per_model=(1, "True or False")),
    # the testing kit
    *rows("LocalOrchestrator.__init__", KIT, crunch_id=("", "crunch's id"), host=("http://h", "not a URL"),
          port=(-1, "TCP port"), backend=("k8s", "plain"), ping_interval=(0, "positive"),
          ping_timeout=("20", "seconds"), stop_reported=("no", "True or False"),
          refuse_unknown_crunch=(None, "True or False"), report_cycle=(-1, "positive")),
    *rows("LocalOrchestrator.add_model", KIT, host=("h:1", "port separately"), port=("x", "TCP port"),
          name=(5, "string or None"), infos=([1], "dict or None"), model_id=("", "non-empty string")),
    *rows("LocalOrchestrator.stop_model", KIT, model_id=("m-404", "model of this orchestrator")),
    *rows("LocalOrchestrator.recover_model", KIT, model_id=(None, "model of this orchestrator"),
          host=(5, "host name"), port=(0, "TCP port")),
    *rows("LocalOrchestrator.move_model", KIT, model_id=(5, "model of this orchestrator"), host=("", "host name"),
          port=("p", "TCP port")),
    *rows("LocalOrchestrator.redeploy_model", KIT, model_id=("", "model of this orchestrator"),
          host=("a b", "host name"), port=(65536, "TCP port"), stop_old=("yes", "True or False")),
    *rows("LocalOrchestrator.remove_model", KIT, model_id=("m-404", "model of this orchestrator")),
    *rows("LocalOrchestrator.set_state", KIT, model_id=("m-404", "model of this orchestrator"), state=(1, "string")),
    *rows("LocalOrchestrator.set_infos", KIT, model_id=(1, "model of this orchestrator"), infos=(None, "dict")),
    *rows("LocalOrchestrator.model", KIT, model_id=("m-404", "model of this orchestrator")),
    *rows("LocalOrchestrator.send_raw", KIT, data=({"event": "init"}, "string or bytes"), text=("yes", "True or False")),
    *[row for name in ("wait_for_clients", "wait_for_connections", "wait_for_reports", "wait_for_ignored_reports")
      for row in rows(f"LocalOrchestrator.{name}", KIT, count=(-1, "0 or more"), timeout=(None, "0 or more"))],
    *rows("LocalModelNode.__init__", KIT, classes=(object, "list of the participant's classes"),
          code_directory=("/nonexistent", "directory"), infer=(5, "generator function"), host=("", "host name"),
          port=(70000, "TCP port"), server_credentials=("tls", "grpc.ServerCredentials"),
          secure=(True, "MutualTlsNodeSecurity"), max_workers=(1, "at least 2"), grace=(-1, "0 or more"),
          join_timeout=(0, "positive")),
    *rows("LocalModelNode.set_serving", KIT, serving=("no", "True or False")),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
def test_a_bad_argument_is_refused_naming_the_parameter_and_what_it_takes(env: Env, row: Row) -> None:
    if row.callable == "notebook.show":
        pytest.importorskip("IPython")  # without it, show() says it needs IPython before anything else
    get, good_arguments = CALLS[row.callable]
    target = get(env)
    good = dict(good_arguments(env) if callable(good_arguments) else good_arguments)
    positional = good.pop("*", ())
    kind = _parameters(target).get(row.parameter)
    assert kind is not None, f"{row.callable} has no parameter {row.parameter!r}"
    if kind is inspect.Parameter.VAR_POSITIONAL:
        positional, keywords = row.bad, good
    elif kind is inspect.Parameter.VAR_KEYWORD:
        keywords = {**good, **row.bad}
    else:
        keywords = {**good, row.parameter: row.bad}
    with pytest.raises(row.error) as raised:
        target(*positional, **keywords)
    message = str(raised.value)
    missing = [word for word in row.words if word not in message]
    assert not missing, f"{row.id} raised {type(raised.value).__name__}: {message!r}, without {missing}"


def _parameters(target: Any) -> dict[str, inspect._ParameterKind]:
    """The parameters of what a row calls: a function, a bound method, a class (its ``__init__``), a wrapper."""
    target = getattr(target, "__wrapped__", target)
    signature = inspect.signature(target.__init__ if isinstance(target, type) else target)
    return {name: parameter.kind for name, parameter in signature.parameters.items()}


# -- the table is complete --------------------------------------------------------------------------------------


def public_parameters() -> dict[str, list[str]]:
    """``"Class.method"`` (or ``"module.function"``) -> its parameters, for every public callable of mrclient."""
    found: dict[str, list[str]] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [
            name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module_name
        ]  # fmt: skip
        for name in names:
            value = getattr(module, name)
            if inspect.isclass(value):
                for klass in value.__mro__:
                    if not klass.__module__.startswith("mrclient"):
                        continue
                    for attribute, member in vars(klass).items():
                        if attribute.startswith("_") and attribute != "__init__":
                            continue
                        if isinstance(member, (staticmethod, classmethod)):
                            member = member.__func__
                        if inspect.isfunction(member):
                            found.setdefault(f"{klass.__name__}.{attribute}", _names(member))
            elif inspect.isfunction(value):
                found.setdefault(f"{module_name.rpartition('.')[2]}.{name}", _names(value))
    return {key: parameters for key, parameters in found.items() if parameters}


def _names(function: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name not in ("self", "cls", "_lock")]


def test_every_public_parameter_has_a_row() -> None:
    covered = {(row.callable, row.parameter) for row in ROWS}
    missing = [
        (callable_, parameter)
        for callable_, parameters in public_parameters().items()
        for parameter in parameters
        if (callable_, parameter) not in covered and callable_ not in EXEMPT and (callable_, parameter) not in EXEMPT
    ]
    assert missing == [], "public parameters without a row in ROWS (or a reason in EXEMPT)"
    surface = public_parameters()
    stale = [row.id for row in ROWS if row.parameter not in surface.get(row.callable, [])]
    assert stale == [], "rows of callables or parameters that are not public (renamed?)"
    stale_exempt = [key for key in EXEMPT if (key if isinstance(key, str) else key[0]) not in surface]
    assert stale_exempt == []


# -- the command line ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliRow:
    """``mrclient ARGV`` exits 2 with the usage line on stderr, and an error that names ``option``."""

    argv: tuple[str, ...]
    option: str
    marks: tuple[Any, ...] = ()


_CONNECT = ("--crunch-id", "c", "--port", "1", "--init-timeout", "0.5")

CLI_ROWS = [
    CliRow(("demo", "--models", "2"), "--models"),
    CliRow(("demo", "--rounds", "0"), "--rounds"),
    CliRow(("demo", "--timeout", "soon"), "--timeout"),
    CliRow(("call", "--host", "ws://h:8000/c", *_CONNECT, "--base-classname", "a.B", "m"), "--host"),
    CliRow(("call", "--port", "eighty", "--crunch-id", "c", "--base-classname", "a.B", "m"), "--port"),
    CliRow(("call", "--init-timeout", "-1", "--crunch-id", "c", "--base-classname", "a.B", "m"), "--init-timeout"),
    CliRow(("call", "--timeout", "0", *_CONNECT, "--base-classname", "a.B", "m"), "--timeout"),
    CliRow(("call", "--shard", "3/3", *_CONNECT, "--base-classname", "a.B", "m"), "--shard"),
    CliRow(("call", *_CONNECT, "m"), "--base-classname"),
    CliRow(("call", "--crunch-id", "", "--port", "1", "--base-classname", "a.B", "m"), "--crunch-id"),
    CliRow(("call", *_CONNECT, "--base-classname", "a b", "m"), "--base-classname"),
    CliRow(("call", *_CONNECT, "--base-classname", "a.B", "m", "[1,"), "ARGS"),
    CliRow(("call", *_CONNECT, "--base-classname", "a.B", "--kwargs", "{", "m"), "--kwargs"),
    CliRow(("call", *_CONNECT, "--base-classname", "a.B", "--credentials", "/nonexistent", "m"), "--credentials"),
    CliRow(("call", *_CONNECT, "--base-classname", "a.B", "--gateway-key", "/nonexistent", "m"), "--gateway-key"),
    CliRow(("serve", "--port", "-1"), "--port"),
    CliRow(("serve", "--crunch-id", ""), "--crunch-id"),
    CliRow(("serve", "--models", "2"), "--models"),
    CliRow(("serve", "--timeout", "0"), "--timeout"),
    CliRow(("watch", "--host", "ws://h:8000/c", *_CONNECT), "--host"),
    CliRow(("watch", "--crunch-id", "", "--port", "1"), "--crunch-id"),
    CliRow(("watch", "--port", "eighty", "--crunch-id", "c"), "--port"),
    CliRow(("watch", "--init-timeout", "-1", "--crunch-id", "c", "--port", "1"), "--init-timeout"),
    CliRow(("watch", "--timeout", "0", *_CONNECT), "--timeout"),
    CliRow(("watch", "--call", "m", "--base-classname", "a.B", "--kwargs", "{", *_CONNECT), "--kwargs"),
    CliRow(("watch", "--credentials", "/nonexistent", *_CONNECT), "--credentials"),
    CliRow(("watch", "--gateway-key", "/nonexistent", *_CONNECT), "--gateway-key"),
    CliRow(("watch", "--every", "0", *_CONNECT), "--every"),
    CliRow(("watch", "--refresh", "-1", *_CONNECT), "--refresh"),
    CliRow(("watch", "--shards", "0", *_CONNECT), "--shards"),
    CliRow(("watch", "--output", "html", *_CONNECT), "--output"),
    CliRow(("watch", "--call", "m", *_CONNECT), "--base-classname"),
    CliRow(("watch", "--args", "[1]", *_CONNECT), "--args"),
    CliRow(("watch", "--call", "m", "--base-classname", "a.B", "--args", "[1,", *_CONNECT), "--args"),
    CliRow(("-v", "-q", "demo"), "-q"),
    CliRow(("call", *_CONNECT, "--base-classname", "a.B", ""), "method"),
    CliRow(("watch", "--call", "", "--base-classname", "a.B", *_CONNECT), "--call"),
]

#: Options that take no value (flags): nothing to get wrong but their company, which rows above cover.
CLI_FLAGS = {"--help", "--version", "--verbose", "--quiet", "--secure", "--health", "--report-failure", "--json"}


@functools.cache
def cli_outcomes() -> dict[tuple[str, ...], tuple[int, str]]:
    """Every row's (exit status, stderr), from one child process that runs ``mrclient`` for each in turn."""
    done = subprocess.run(
        [sys.executable, str(TESTS / "_cli_rows_child.py")], input=json.dumps([row.argv for row in CLI_ROWS]),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(outcomes) == len(CLI_ROWS), done.stdout
    return {row.argv: (outcome["status"], outcome["stderr"]) for row, outcome in zip(CLI_ROWS, outcomes, strict=True)}


@pytest.mark.subprocess
@pytest.mark.parametrize("row", [pytest.param(row, marks=row.marks, id=" ".join(row.argv)) for row in CLI_ROWS])
def test_a_bad_command_line_value_exits_2_naming_the_option(row: CliRow) -> None:
    status, stderr = cli_outcomes()[row.argv]
    assert status == 2, (status, stderr)
    usage, _, error = stderr.partition("error:")  # the usage line lists every option: the error must name it
    assert "usage:" in usage and row.option in error, stderr


def test_every_command_line_option_has_a_row() -> None:
    """Each option (by its long name) and positional argument (by its metavar) of every command has a row of its command."""
    parser = build_parser()
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    options = set()
    for name, command in (("", parser), *commands.choices.items()):
        for action in command._actions:
            if not isinstance(action, argparse._SubParsersAction):
                longs = [option for option in action.option_strings if option.startswith("--")]
                options.add((name, longs[0] if longs else str(action.metavar or action.dest)))
    covered = {(row.argv[0] if row.argv[0] in commands.choices else "", row.option) for row in CLI_ROWS}
    missing = sorted((name, option) for name, option in options - covered if option not in CLI_FLAGS)
    assert missing == [], "command-line options without a row in CLI_ROWS (or in CLI_FLAGS)"
