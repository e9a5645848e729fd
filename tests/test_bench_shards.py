"""Smoke test of the shards benchmark (benchmarks/shards.py, ``make bench-shards``).

A tiny N, K = 1 and 2 shard processes and the async reference on the same
cluster: it runs, every shard gets every answer of its own models, and the
record and table say what docs/scaling.rst quotes. No timing is checked:
those belong to ``make bench-shards`` on a quiet machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.shards import default_shard_counts

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.subprocess
@pytest.mark.timeout(1200)  # the reference client's venv is built on the first run (pip, ~15 s warm)
def test_k_shard_processes_and_the_reference_get_every_answer(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.shards", "--ns", "8", "--shards", "1", "2", "--warmup", "1", "--rounds", "2",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=1100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    results = [record for record in records if record["kind"] == "result"]
    assert [(record["client"], record["shards"]) for record in results] == [
        ("mrclient-shards", 1), ("mrclient-shards", 2), ("reference", 1)
    ]
    for record in results:
        assert "error" not in record, record["error"]
        assert record["successes"] == record["expected"] == 8 * 2, record
        assert record["cpu_per_call_us"] > 0 and record["wall_p50_ms"] > 0
    two = results[1]
    assert sum(two["models_per_shard"]) == 8 and len(two["cpu_by_shard_s"]) == 2
    assert [record["cores"] for record in records if record["kind"] == "projection"] == [4, 8, 16]
    assert "projection from" in done.stdout and "round wall p50" in done.stdout


def test_the_default_shard_counts_go_up_to_the_cores() -> None:
    assert default_shard_counts(1) == [1]
    assert default_shard_counts(2) == [1, 2]
    assert default_shard_counts(6) == [1, 2, 4, 6]
    assert default_shard_counts(16) == [1, 2, 4, 8, 16]
