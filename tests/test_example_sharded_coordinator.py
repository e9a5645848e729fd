"""examples/sharded_coordinator.py runs from a clone: K shard processes, one database, every answer exactly once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from mrclient import shard_of
from mrclient.testing.examples import EwmaTracker

#: The example bounds its shard processes at 120 s; this bounds the whole of it.
RUN_TIMEOUT = 180.0


@pytest.mark.subprocess
def test_the_shards_write_every_models_answer_to_every_round_exactly_once(tmp_path: Path) -> None:
    from examples.sharded_coordinator import price

    database, shards, models, rounds = tmp_path / "predictions.db", 3, 12, 4
    done = subprocess.run(
        [sys.executable, "-m", "examples.sharded_coordinator", "--shards", str(shards), "--models", str(models),
         "--rounds", str(rounds), "--database", str(database)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "nothing logged: no model failed, no shard had trouble"
    assert f"every model's answer to every round exactly once, {models} models x {rounds} rounds" in done.stdout
    assert sorted(line.split(":")[0] for line in done.stdout.splitlines() if line.startswith("shard ")) == [
        f"shard {index}/{shards}" for index in range(shards)
    ]

    # Read back here, independently of the example's own check.
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = connection.execute("SELECT round, model_id, shard, status, location FROM predictions").fetchall()
    connection.close()
    assert len(rows) == models * rounds
    assert len({(round_number, model_id) for round_number, model_id, *_ in rows}) == models * rounds
    model_ids = {model_id for _, model_id, *_ in rows}
    assert len(model_ids) == models
    assert {shard for _, model_id, shard, *_ in rows if shard != shard_of(model_id, shards)} == set()
    assert {status for *_, status, _ in rows} == {"SUCCESS"}
    # Each model got every round's tick once and in order: its prediction is the moving mean of the prices so far.
    tracker = EwmaTracker()
    expected = {}
    for round_number in range(rounds):
        tracker.tick({"dove_location": price(round_number)})
        expected[round_number] = tracker.predict()["location"]
    assert all(location == expected[round_number] for round_number, _, _, _, location in rows), rows
