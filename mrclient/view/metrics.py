"""Prometheus metrics of concurrent runners, read when scraped (the ``metrics`` extra).

::

    from mrclient.metrics import register_metrics
    register_metrics(runner)            # into prometheus_client's default REGISTRY
    prometheus_client.start_http_server(9100)

``MrclientCollector`` is a custom collector: it keeps nothing and costs
nothing between scrapes. Each scrape reads the runners' snapshots (totals,
connection state, the table's size and, with ``per_model=True``, every model's
statistics) and turns them into metric families. Every series carries a
``crunch`` label; a ``model`` label (the model id) only with ``per_model=True``,
since a crunch of hundreds of models multiplies the series by as many.

Only this module imports ``prometheus_client``; ``import mrclient`` never does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .._support.extras import install_hint

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import Collector
except ImportError as error:  # pragma: no cover - exercised by a test in a subprocess
    raise ImportError(
        f"mrclient.metrics needs prometheus-client ({error}): {install_hint('metrics')}"
    ) from error

from .._support.validation import check_flag, check_instance
from ..concurrent import ModelConcurrentRunner
from ..errors import InvalidCoordinatorUsageError
from ..stats import LATENCY_BUCKETS

__all__ = ["MrclientCollector", "register_metrics"]

#: The quantiles of each model's latency exported with ``per_model=True``.
_QUANTILES = (("0.5", "latency_p50_ms"), ("0.9", "latency_p90_ms"), ("0.99", "latency_p99_ms"))
_STATUSES = ("SUCCESS", "FAILED", "TIMEOUT")


class MrclientCollector(Collector):
    """The metrics of one or more concurrent runners, collected at each scrape.

    Give every runner of the process to one collector: a registry refuses two
    collectors that export the same metric names.
    """

    def __init__(self, *runners: ModelConcurrentRunner, per_model: bool = False) -> None:
        """Collect ``runners``' metrics; ``per_model`` adds a series per model (``model`` label)."""
        if not runners:
            raise InvalidCoordinatorUsageError("runners: give at least one runner, e.g. register_metrics(runner)")
        for runner in runners:
            check_instance("runners", runner, ModelConcurrentRunner, "concurrent runners of mrclient")
        self.runners: Sequence[ModelConcurrentRunner] = runners
        self.per_model = check_flag("per_model", per_model)

    def describe(self) -> list[Metric]:
        """The metric names, without reading the runners (what a registry checks at ``register``)."""
        return list(_Families(self.per_model).all())

    def collect(self) -> Iterator[Metric]:
        """Every metric family, read from the runners now."""
        families = _Families(self.per_model)
        for runner in self.runners:
            families.add(runner)
        yield from families.all()


def register_metrics(
    *runners: ModelConcurrentRunner, registry: CollectorRegistry | None = None, per_model: bool = False
) -> MrclientCollector:
    """Register a collector of ``runners``' metrics (default: prometheus_client's ``REGISTRY``); return it."""
    collector = MrclientCollector(*runners, per_model=per_model)
    check_instance("registry", registry, CollectorRegistry, "a prometheus_client CollectorRegistry or None",
                   optional=True)
    (REGISTRY if registry is None else registry).register(collector)
    return collector


class _Families:
    """The metric families of one scrape, filled runner by runner."""

    def __init__(self, per_model: bool) -> None:
        crunch, method, status = ["crunch"], ["crunch", "method"], ["crunch", "status"]
        self.rounds = CounterMetricFamily("mrclient_rounds", "Rounds called, by method.", labels=method)
        self.round_seconds = SummaryMetricFamily(
            "mrclient_round_duration_seconds", "Wall time of rounds, by method.", labels=method
        )
        self.calls = CounterMetricFamily("mrclient_calls", "Results of the model calls in rounds.", labels=status)
        self.rest_skips = CounterMetricFamily(
            "mrclient_rest_skips", "Calls answered TIMEOUT without contacting the model (resting).", labels=crunch
        )
        self.latency = HistogramMetricFamily(
            "mrclient_call_duration_seconds", "Latency of the model calls made in rounds.", labels=crunch
        )
        self.models_ready = GaugeMetricFamily("mrclient_models_ready", "Models ready to be called.", labels=crunch)
        self.connected = GaugeMetricFamily(
            "mrclient_orchestrator_connected", "1 while the orchestrator connection is up.", labels=crunch
        )
        self.reconnects = CounterMetricFamily(
            "mrclient_orchestrator_reconnects", "Times the orchestrator connection was made again.", labels=crunch
        )
        self.reports = CounterMetricFamily(
            "mrclient_reports", "Failure reports sent to the orchestrator, by code.", labels=["crunch", "code"]
        )
        self.reports_pending = GaugeMetricFamily(
            "mrclient_reports_pending", "Reports not yet sent or not yet confirmed by the orchestrator.",
            labels=["crunch", "state"],
        )  # fmt: skip
        self.per_model = per_model
        self.model_calls = CounterMetricFamily(
            "mrclient_model_calls", "Results of one model's calls, by status.", labels=["crunch", "model", "status"]
        )
        self.model_latency = GaugeMetricFamily(
            "mrclient_model_latency_seconds", "Quantiles of one model's recent call latencies.",
            labels=["crunch", "model", "quantile"],
        )  # fmt: skip

    def add(self, runner: ModelConcurrentRunner) -> None:
        crunch = runner.model_cluster.crunch_id
        totals = runner.totals()
        for method, count in totals.rounds.items():
            self.rounds.add_metric([crunch, method], count)
            self.round_seconds.add_metric([crunch, method], count, totals.round_seconds[method])
        for status in _STATUSES:
            self.calls.add_metric([crunch, status], totals.calls.get(status, 0))
        self.rest_skips.add_metric([crunch], totals.rest_skips)
        cumulative, buckets = 0, []
        for bound, count in zip((*map(repr, LATENCY_BUCKETS), "+Inf"), totals.latency_buckets, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        self.latency.add_metric([crunch], buckets, totals.latency_sum_s)
        self.models_ready.add_metric([crunch], len(runner.models))
        state = runner.connection_state
        self.connected.add_metric([crunch], 1.0 if state.connected else 0.0)
        self.reconnects.add_metric([crunch], state.reconnects)
        for code, count in sorted(state.reports_sent.items()):
            self.reports.add_metric([crunch, code], count)
        self.reports_pending.add_metric([crunch, "unsent"], state.reports_pending)
        self.reports_pending.add_metric([crunch, "unconfirmed"], state.reports_unconfirmed)
        if self.per_model:
            self._add_models(crunch, runner)

    def _add_models(self, crunch: str, runner: ModelConcurrentRunner) -> None:
        for stats in runner.stats().values():
            counts = (stats.successes, stats.failures, stats.timeouts)
            for status, count in zip(_STATUSES, counts, strict=True):
                self.model_calls.add_metric([crunch, stats.model_id, status], count)
            for quantile, name in _QUANTILES:
                value = getattr(stats, name)
                if value is not None:
                    self.model_latency.add_metric([crunch, stats.model_id, quantile], value / 1000)

    def all(self) -> Iterator[Metric]:
        yield from (
            self.rounds, self.round_seconds, self.calls, self.rest_skips, self.latency, self.models_ready,
            self.connected, self.reconnects, self.reports, self.reports_pending,
        )  # fmt: skip
        if self.per_model:
            yield from (self.model_calls, self.model_latency)
