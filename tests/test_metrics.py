"""The Prometheus collector (``mrclient.metrics``), its output parsed by ``prometheus_client.parser``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mrclient import DynamicSubclassModelConcurrentRunner, InvalidCoordinatorUsageError
from mrclient.metrics import MrclientCollector, register_metrics
from mrclient.stats import LATENCY_BUCKETS
from mrclient.testing import LocalModelNode, LocalOrchestrator

WAIT = 10.0
CRUNCH = "metrics-crunch"


class MetricsBase:
    def work(self) -> str:
        return "done"


class Works(MetricsBase):
    pass


class Fails(MetricsBase):
    def work(self) -> str:
        raise RuntimeError("boom")


@pytest.fixture
def runner(local_node: Callable[..., LocalModelNode]) -> Iterator[DynamicSubclassModelConcurrentRunner]:
    with LocalOrchestrator(crunch_id=CRUNCH) as orchestrator:
        for cls in (Works, Fails):
            orchestrator.add_model(host="127.0.0.1", port=local_node(classes=[MetricsBase, cls]).port, name=cls.__name__)
        with DynamicSubclassModelConcurrentRunner(
            timeout=5.0, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port, base_classname="MetricsBase",
            retry_backoff_factor=0.01, max_consecutive_failures=0,
        ) as runner:  # fmt: skip
            assert runner.wait_for_models(2, WAIT)
            yield runner


def scrape(registry: CollectorRegistry) -> list[Sample]:
    text = generate_latest(registry).decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_the_collector_exports_rounds_calls_latency_table_connection_and_reports(
    runner: DynamicSubclassModelConcurrentRunner,
) -> None:
    for _ in range(3):
        runner.call("work")
    failing = next(model for model in runner.models if model.model_name == "Fails")
    runner.report_failure(failing, "LOW_PERFORMANCE", "fails every call")

    registry = CollectorRegistry()
    collector = register_metrics(runner, registry=registry)
    assert isinstance(collector, MrclientCollector)
    samples = scrape(registry)

    crunch = {"crunch": CRUNCH}
    assert value(samples, "mrclient_rounds_total", method="work", **crunch) == 3
    assert value(samples, "mrclient_round_duration_seconds_count", method="work", **crunch) == 3
    assert value(samples, "mrclient_round_duration_seconds_sum", method="work", **crunch) > 0
    assert value(samples, "mrclient_calls_total", status="SUCCESS", **crunch) == 3
    assert value(samples, "mrclient_calls_total", status="FAILED", **crunch) == 3
    assert value(samples, "mrclient_calls_total", status="TIMEOUT", **crunch) == 0
    assert value(samples, "mrclient_rest_skips_total", **crunch) == 0

    buckets = [s for s in samples if s.name == "mrclient_call_duration_seconds_bucket"]
    assert [float(s.labels["le"]) for s in buckets] == [*LATENCY_BUCKETS, float("inf")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == 6
    assert value(samples, "mrclient_call_duration_seconds_count", **crunch) == 6

    assert value(samples, "mrclient_models_ready", **crunch) == 1  # the reported model left
    assert value(samples, "mrclient_orchestrator_connected", **crunch) == 1
    assert value(samples, "mrclient_orchestrator_reconnects_total", **crunch) == 0
    assert value(samples, "mrclient_reports_total", code="LOW_PERFORMANCE", **crunch) == 1
    assert value(samples, "mrclient_reports_pending", state="unsent", **crunch) <= 1
    assert all("model" not in sample.labels for sample in samples), "no model label unless asked"
    assert all(sample.labels.get("crunch") == CRUNCH for sample in samples)

    runner.call("work")  # read at each scrape: nothing to update by hand
    assert value(scrape(registry), "mrclient_rounds_total", method="work", **crunch) == 4


def test_per_model_series_only_when_asked(runner: DynamicSubclassModelConcurrentRunner) -> None:
    runner.call("work")
    registry = CollectorRegistry()
    register_metrics(runner, registry=registry, per_model=True)
    samples = scrape(registry)
    by_name = {model.model_name: model.model_id for model in runner.models}

    assert value(samples, "mrclient_model_calls_total", model=by_name["Works"], status="SUCCESS") == 1
    assert value(samples, "mrclient_model_calls_total", model=by_name["Fails"], status="FAILED") == 1
    for model_id in by_name.values():
        quantiles = {s.labels["quantile"]: s.value for s in samples
                     if s.name == "mrclient_model_latency_seconds" and s.labels["model"] == model_id}
        assert set(quantiles) == {"0.5", "0.9", "0.99"} and all(0 < v < 5 for v in quantiles.values())


def test_one_collector_for_several_runners_and_no_duplicate_registration(
    runner: DynamicSubclassModelConcurrentRunner,
) -> None:
    registry = CollectorRegistry()
    register_metrics(runner, registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        register_metrics(runner, registry=registry)
    with pytest.raises(InvalidCoordinatorUsageError, match="at least one runner"):
        MrclientCollector()


@pytest.mark.parametrize("blocked", ["prometheus_client", "rich"])
@pytest.mark.subprocess
def test_the_plain_install_imports_neither_extra(blocked: str, tmp_path: Any) -> None:
    script = (
        "import sys\n"
        "import mrclient, mrclient.cli\n"
        "mrclient.cli.build_parser().parse_args(['watch', '--crunch-id', 'c', '--base-classname', 'a.B'])\n"
        f"assert {blocked!r} not in sys.modules, 'imported'\n"
        f"sys.modules[{blocked!r}] = None\n"
        "if " + repr(blocked) + " == 'prometheus_client':\n"
        "    try:\n"
        "        import mrclient.metrics\n"
        "    except ImportError as error:\n"
        "        print(error)\n"
        "else:\n"
        "    from mrclient.watch.watcher import pick_output\n"
        "    print(pick_output('auto', tty=True))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = "pip install '.[metrics]' in a clone of mrclient" if blocked == "prometheus_client" else "table"
    assert expected in done.stdout
