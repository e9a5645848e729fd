"""K coordinator processes split one crunch by shard, and write their results to one SQLite database.

::

    .venv/bin/python -m examples.sharded_coordinator          # 3 shards, 24 models, 5 rounds
    .venv/bin/python -m examples.sharded_coordinator --shards 2 --models 40 --rounds 10 --database predictions.db

The parent process starts a local crunch (a ``LocalOrchestrator`` and one
``LocalModelNode`` per model, from ``mrclient.testing``), creates the database
(WAL mode: readers never block the writer, and each shard's writes wait for
the others' with a busy timeout), and starts K shard processes with
``multiprocessing``. Each shard process is a whole coordinator: its own
runner with ``shard=(index, K)``, its own rounds, its own database
connection. The shards share nothing but the rule (``mrclient.shard_of``) and
the database; no process coordinates them, and any of them may restart alone.

The table's primary key is ``(round, model_id)``: a model answered by two
shards would be refused by the database. At the end the parent reads the
database back and checks that it holds every model's answer to every round
exactly once, each written by the shard ``shard_of`` names. In production the
parent is not there: each replica runs ``run_shard`` against the real
orchestrator (see docs/scaling.rst). Run by ``make test``
(tests/test_example_sharded_coordinator.py).
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult, shard_of
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

CRUNCH_ID = "sharded-example"
#: Bound of each shard process, seconds: its init, its rounds and its writes.
SHARD_TIMEOUT = 120.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    round INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    status TEXT NOT NULL,
    location REAL,
    PRIMARY KEY (round, model_id)
)
"""


def price(round_number: int) -> float:
    """The observation of a round: the same in every shard, as a real feed would be."""
    return round(100 + 10 * math.sin(round_number / 3), 3)


def connect(database: Path) -> sqlite3.Connection:
    """A connection that waits (up to 30 s) while another shard writes, instead of failing."""
    return sqlite3.connect(database, timeout=30.0)


def create_database(database: Path) -> None:
    """The table, in WAL mode (a setting of the file: every later connection gets it)."""
    with connect(database) as connection:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"{database} cannot use WAL mode (journal mode {mode})")
        connection.execute(SCHEMA)
    connection.close()


def run_shard(index: int, count: int, host: str, port: int, database: Path, rounds: int) -> None:
    """One shard's coordinator: tick and predict on its own models each round, one transaction per round."""
    logging.basicConfig(level=logging.WARNING, format=f"shard {index}/{count} %(levelname)s %(name)s: %(message)s")
    connection = connect(database)
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=5.0, crunch_id=CRUNCH_ID, host=host, port=port, base_classname=BASE_CLASSNAME,
        shard=(index, count),
    )  # fmt: skip
    try:
        with runner:  # init(), and close() at the end
            written = 0
            for round_number in range(rounds):
                runner.call("tick", args=[{"dove_location": price(round_number)}])
                results = runner.call("predict")
                rows = [
                    (round_number, model.model_id, index, result.status.value,
                     result.result["location"] if result.status is ModelPredictResult.Status.SUCCESS else None)
                    for model, result in results.items()
                ]  # fmt: skip
                with connection:  # one transaction per round: all of this shard's answers, or none
                    connection.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?)", rows)
                written += len(rows)
            print(f"shard {index}/{count}: {len(runner.models)} models, {rounds} rounds, {written} rows", flush=True)
    finally:
        connection.close()


def check_database(database: Path, models: Sequence[str], shards: int, rounds: int) -> list[str]:
    """What is wrong with the database: each model once per round, by its shard, successful; [] when all is."""
    with connect(database) as connection:
        rows = connection.execute("SELECT round, model_id, shard, status FROM predictions").fetchall()
    connection.close()
    problems = []
    seen = {(round_number, model_id) for round_number, model_id, _, _ in rows}
    expected = {(round_number, model_id) for round_number in range(rounds) for model_id in models}
    if len(rows) != len(seen):
        problems.append(f"{len(rows) - len(seen)} answers written twice")
    if seen != expected:
        problems.append(f"{len(expected - seen)} answers missing, {len(seen - expected)} unexpected")
    problems += [f"model {model_id} written by shard {shard}, not {shard_of(model_id, shards)}"
                 for _, model_id, shard, _ in rows if shard != shard_of(model_id, shards)]
    problems += [f"model {model_id} round {round_number}: {status}"
                 for round_number, model_id, _, status in rows if status != "SUCCESS"]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=3, help="shard processes (K)")
    parser.add_argument("--models", type=int, default=24, help="models in the local crunch, one node each")
    parser.add_argument("--rounds", type=int, default=5, help="rounds each shard runs")
    parser.add_argument("--database", type=Path, help="the SQLite file (default: a new one in a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        database = args.database or Path(scratch) / "predictions.db"
        return run(database, args.shards, args.models, args.rounds)


def run(database: Path, shards: int, models: int, rounds: int) -> int:
    """The whole example: the crunch, the database, the shard processes, the check."""
    create_database(database)
    nodes = [LocalModelNode(classes=[TrackerBase, EwmaTracker]) for _ in range(models)]
    # spawn, not fork: a forked child would inherit this process's gRPC and orchestrator threads half-copied.
    context = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    with LocalOrchestrator(crunch_id=CRUNCH_ID) as orchestrator:
        try:
            model_ids = [orchestrator.add_model(host="127.0.0.1", port=node.start().port) for node in nodes]
            started = time.monotonic()
            processes = [
                context.Process(target=run_shard, name=f"shard-{index}",
                                args=(index, shards, "127.0.0.1", orchestrator.port, database, rounds))
                for index in range(shards)
            ]  # fmt: skip
            for process in processes:
                process.start()
            for process in processes:
                process.join(max(0.0, started + SHARD_TIMEOUT - time.monotonic()))
        finally:
            for process in processes:
                if process.is_alive():  # past its bound, or this process was interrupted
                    process.terminate()
                    process.join(10.0)
            for node in nodes:
                node.stop()
    failed = [f"{process.name} exited with {process.exitcode}" for process in processes if process.exitcode != 0]
    problems = failed + check_database(database, model_ids, shards, rounds)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{database.name}: every model's answer to every round exactly once, {models} models x {rounds} rounds "
          f"= {models * rounds} rows, written by {shards} shard processes in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
