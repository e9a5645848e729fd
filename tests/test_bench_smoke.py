"""Smoke test of the fan-out benchmark (benchmarks/, ``make bench``).

It runs the whole benchmark once with a tiny N, every client included (the
async reference client in its own venv, made on first use), and checks that it
runs and that every client gets every answer. It never checks a timing: those
belong to ``make bench`` on a quiet machine, not to a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.clients import CLIENTS

REPO = Path(__file__).resolve().parent.parent


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(1200)  # the reference client's venv is built on the first run (pip, ~15 s warm)
@pytest.mark.subprocess
def test_every_client_gets_every_answer(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--preset", "smoke", "--out", str(tmp_path), "--no-plot"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"

    records = _records(tmp_path / "results.jsonl")
    results = {record["client"]: record for record in records if record["kind"] == "result"}
    assert set(results) == set(CLIENTS)
    for name, result in results.items():
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert result["expected"] > 0
        assert result["successes"] == result["expected"], name
        assert result["warmup_successes"] == result["warmup_expected"], name
    assert [record["goal"] for record in records if record["kind"] == "goal"] == [
        goal["goal"] for goal in report.goals(records)
    ]
    assert "Goals:" in done.stdout


def _result(client: str, n: int, overhead: float, cpu: float, **extra: Any) -> dict[str, Any]:
    record = {
        "kind": "result", "client": client, "n": n, "latency_ms": 0.0,
        "wall_p50_ms": overhead, "wall_p90_ms": overhead, "wall_max_ms": overhead,
        "overhead_p50_ms": overhead, "cpu_per_call_us": cpu, "peak_threads": n + 5,
        "threads_after_close": 4, "python_threads_after_close": 0, "peak_rss_mb": 50.0,
        "successes": 10 * n, "expected": 10 * n, "ready_s": 1.0,
    }  # fmt: skip
    record.update(extra)
    return record


def test_report_ratios_and_goals_from_known_figures() -> None:
    records = [
        _result("mrclient", 100, overhead=10.0, cpu=100.0),
        _result("reference", 100, overhead=40.0, cpu=80.0, peak_rss_mb=20.0),
        _result("raw-futures", 100, overhead=8.0, cpu=300.0),
        _result("raw-threads", 100, overhead=12.0, cpu=50.0),
        _result("raw-aio", 100, overhead=5.0, cpu=40.0),
    ]
    [ratio] = report.ratios(records)
    assert ratio["cpu_vs_floor_b"] == pytest.approx(2.0)
    assert ratio["overhead_vs_floor_b"] == pytest.approx(10.0 / 12.0)
    assert ratio["cpu_vs_reference"] == pytest.approx(1.25)
    assert ratio["overhead_vs_reference"] == pytest.approx(0.25)
    assert ratio["reference_cpu_vs_floor_aio"] == pytest.approx(2.0)

    goals = report.goals([*records, ratio])
    verdicts = {goal["goal"]: goal["met"] for goal in goals}
    assert verdicts["100 % successes for mrclient in every case"] is True
    assert verdicts["CPU per call <= 0.95 x floor B"] is False
    assert verdicts["round overhead p50 <= 0.95 x floor B"] is True
    assert verdicts["CPU per call <= 1.3 x reference at N=100, <= 1.5 x at N >= 1000"] is True  # 1.25 at N=100
    assert verdicts["round overhead p50 <= 1.2 x reference"] is True
    assert verdicts["time until 2000 models are callable <= 0.8 x reference"] is None  # no N=2000 here
    assert verdicts["peak RSS <= reference"] is False  # 50 MiB against 20 MiB
    text = report.render([*records, ratio, *goals])
    assert "[NOT MET] peak RSS <= reference" in text
    assert "[not measured] time until 2000 models" in text
    headline = text.split("Client CPU per call, us (lower is better):\n", 1)[1].splitlines()
    assert headline[1].split() == ["100", "0", "100", "80", "300", "50", "40"]


@pytest.mark.timeout(1200)  # the reference client's venv is built on the first run
@pytest.mark.subprocess
def test_the_map_case_runs_and_every_client_gets_every_answer(tmp_path: Path) -> None:
    """``make bench-map``, tiny: a map, a loop of call() and the reference's loop, each answered in full."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.map_case", "--models", "3", "--inputs", "6", "--warmup", "1",
         "--passes", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=1100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    records = _records(tmp_path / "results.jsonl")
    results = {record["client"]: record for record in records if record["kind"] == "result"}
    assert set(results) == {"mrclient-map", "mrclient-loop", "reference-loop"}
    for name, result in results.items():
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert result["successes"] == result["expected"] == 3 * 6, name
        assert result["mode"] == ("map" if name == "mrclient-map" else "loop")
    [ratios] = [record for record in records if record["kind"] == "ratios"]
    assert ratios["loop_over_map"] is not None and "loop of call() / map" in done.stdout


def test_the_map_cases_latencies_are_drawn_alike_everywhere_and_its_ideals_follow() -> None:
    from benchmarks.map_case import ideal_walls
    from benchmarks.nodes import drawn_latency

    draws = [drawn_latency(24, 5000, index, 0.005, 0.05) for index in range(50)]
    assert draws == [drawn_latency(24, 5000, index, 0.005, 0.05) for index in range(50)]  # a pure function
    assert len(set(draws)) == 50 and all(0.005 <= draw <= 0.05 for draw in draws)
    loop, mapped = ideal_walls([5000, 5001, 5002], 40, 5, 50)
    per_model = [sum(drawn_latency(24, port, i, 0.005, 0.05) for i in range(40)) for port in (5000, 5001, 5002)]
    assert mapped == pytest.approx(max(per_model)) and loop > mapped
