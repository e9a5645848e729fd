"""The in-process A/B harness (benchmarks/ab.py): its schedule, its arithmetic, and one tiny run.

It never checks a timing: the figures belong to a run on a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.ab import median_interval, parse_args, summarize
from benchmarks.ab_client import schedule
from benchmarks.baseline import BASE_ENV
from benchmarks.knobs import parse_setting

REPO = Path(__file__).resolve().parent.parent


def test_variants_alternate_in_blocks_that_reverse() -> None:
    assert schedule(2, 3) == [0, 1, 1, 0, 0, 1]
    assert schedule(3, 2) == [0, 1, 2, 2, 1, 0]


def test_settings_are_checked_against_the_knobs() -> None:
    knob, values = parse_setting("stats=off,on")
    assert (knob.name, values) == ("stats", ["off", "on"])
    for bad in ("stats", "nope=on", "stats=maybe", "stats=on,on", "stats="):
        with pytest.raises(ValueError):
            parse_setting(bad)
    args = parse_args(["--variant", "stats=on,off", "--models", "5"])
    assert args.variants == [{"stats": "on"}, {"stats": "off"}] and args.labels == ["stats=on", "stats=off"]
    with pytest.raises(SystemExit):
        parse_args(["--variant", "stats=on"])  # nothing to compare


def test_each_variant_is_compared_with_the_first_block_by_block() -> None:
    # Drift doubles the CPU of the last two blocks; the variant costs 10 % more in every block.
    rounds = [
        {"variant": variant, "block": block, "cpu_s": (2.0 if block >= 2 else 1.0) * (1.1 if variant else 1.0),
         "caller_cpu_s": 0.1 + (0.00001 if variant else 0.0), "wall_s": 0.5, "ok": 10}
        for block in range(4) for variant in (0, 1)
    ]  # fmt: skip
    summary = summarize(rounds, ["stats=off", "stats=on"], calls_per_round=10)
    (comparison,) = summary["comparisons"]
    assert comparison["cpu_ratio_mean"] == pytest.approx(1.1) and comparison["cpu_ratio_median"] == pytest.approx(1.1)
    assert comparison["cpu_ratio_ci95"] == pytest.approx([1.1, 1.1])
    assert comparison["blocks"] == 4 and comparison["wall_ratio_median"] == pytest.approx(1.0)
    assert comparison["caller_cpu_delta_us"] == pytest.approx(1.0)  # 10 us more per round of 10 calls
    assert comparison["caller_cpu_delta_share"] == pytest.approx(1.0 / 150_000)
    off, on = summary["variants"]
    assert off["cpu_per_call_us"] == pytest.approx(1.5 / 10 * 1e6) and on["ok"] == on["expected"] == 40


def test_the_median_interval_is_two_order_statistics() -> None:
    values = [float(v) for v in range(100)]
    low, high = median_interval(values)
    assert (low, high) == (40.0, 59.0)  # k = floor((100 - 1.96 * 10) / 2) = 40
    assert median_interval([3.0]) == [3.0, 3.0]


@pytest.mark.timeout(300)
@pytest.mark.subprocess
def test_a_tiny_ab_run_gets_every_answer(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ab", "--variant", "stats=off,on", "--models", "3", "--rounds", "4",
         "--warmup", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert [v["label"] for v in results["variants"]] == ["stats=off", "stats=on"]
    assert all(v["rounds"] == 4 and v["ok"] == v["expected"] == 12 for v in results["variants"])
    assert results["runners"] == 1  # stats is switched on one runner between its rounds
    assert [r["variant"] for r in results["rounds"]] == schedule(2, 4)
    assert "stats=on vs stats=off: CPU per call" in done.stdout


@pytest.mark.subprocess
def test_floor_b_runs_on_the_runners_own_channels_in_the_same_process(tmp_path: Path) -> None:
    shapes = ["shape=mrclient", "shape=floor-b", "shape=floor-b-switch", "shape=rounds-only"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ab", "--variant", "shape=" + ",".join(s.split("=")[1] for s in shapes),
         "--models", "3", "--rounds", "2", "--warmup", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert [v["label"] for v in results["variants"]] == shapes
    assert all(v["ok"] == v["expected"] == 6 for v in results["variants"])  # every round shape checks the echo
    assert results["runners"] == 1  # the shapes share one runner and its channels


@pytest.mark.subprocess
def test_the_bookkeeping_of_both_versions_is_timed_side_by_side() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bookkeeping", "--base", "HEAD", "--models", "5", "--rounds", "4",
         "--warmup", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("bookkeeping of a round at N=5, 4 rounds each; base is ")
    assert [line.split()[0] for line in lines[1:3]] == ["base", "current"] and "per call" in lines[3]


@pytest.mark.subprocess
def test_the_base_commits_mrclient_runs_beside_this_one_in_the_same_process(tmp_path: Path) -> None:
    """code=base: the mrclient of a git revision (here HEAD), imported as ``mrclient_base`` beside ``mrclient``."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ab", "--variant", "code=base,current", "--models", "3", "--rounds", "2",
         "--warmup", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False, env={**os.environ, BASE_ENV: "HEAD"},
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert [v["label"] for v in results["variants"]] == ["code=base", "code=current"]
    assert all(v["ok"] == v["expected"] == 6 for v in results["variants"])
    assert results["runners"] == 2, "a runner each, from each package"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    assert results["base_commit"] == head.stdout.strip()
    assert (tmp_path / "base" / "mrclient_base" / "__init__.py").is_file()
    assert f"code=base is commit {head.stdout.strip()[:12]}" in done.stdout
