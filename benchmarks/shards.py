"""The shards case: one crunch of N models split between K coordinator processes, side by side with the reference.

::

    python -m benchmarks.shards                  # make bench-shards: N=2000, K = 1, 2, 4 ... up to the cores
    python -m benchmarks.shards --ns 2000 --shards 1 2 --latencies-ms 0 50 --rounds 16

For each case (N models, one model latency) it starts one benchmark cluster
(``benchmarks.cluster``: model nodes in processes of their own, a
``LocalOrchestrator`` announcing them), then, for each K, K shard processes
(``multiprocessing``, spawn), each a ``DynamicSubclassModelConcurrentRunner``
with ``shard=(index, K)``: every process follows the whole crunch and calls its
own models. The shards start each round together (a barrier), so a round's
wall time across the shards runs from the first shard's start to the last
one's end; CPU per call is the shard processes' CPU time over the measured
rounds, divided by the calls. Then the async reference client (one process: it
has no shards) runs on the same cluster, as in ``benchmarks.run``.

The default K runs 1, 2, 4, ... up to ``os.cpu_count()`` (and that count
itself), so the same command measures a bigger machine unchanged. The node
processes share the machine with the shards: on a machine of a few cores the
wall times say more about the machine than about the shards, and the
projection (from CPU per call: one core drives ``1e6 / cpu_per_call_us``
calls per second, nodes elsewhere, as in production) is printed with them.
Results go to ``<out>/results.jsonl`` and the table to standard output and
``<out>/table.txt``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import queue
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult, shard_of

from . import reference_venv
from .clients import CLIENTS
from .clients.common import SETTLE_S, ClientConfig, make_payload
from .cluster import BenchCluster, default_shards
from .measure import percentile
from .nodes import raise_fd_limit
from .run import BUSY_LOAD, RESULTS, run_client

#: The cores the projection is written for (docs/scaling.rst).
PROJECTED_CORES = (4, 8, 16)
BASE_CLASSNAME = "benchmarks.BenchModel"
METHOD = "tick"
_SUCCESS = ModelPredictResult.Status.SUCCESS


def default_shard_counts(cores: int | None = None) -> list[int]:
    """1, 2, 4, ... up to the machine's cores, and the core count itself."""
    cores = max(1, cores or os.cpu_count() or 1)
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == cores else [*counts, cores]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", type=int, nargs="+", default=[2000], help="models in the crunch")
    parser.add_argument("--latencies-ms", type=float, nargs="+", default=[0.0], help="model latencies")
    parser.add_argument("--shards", type=int, nargs="+", help="shard process counts K (default: 1, 2, 4 ... cores)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds")
    parser.add_argument("--rounds", type=int, default=16, help="measured rounds")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline, seconds")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="bound on each shard's init")
    parser.add_argument("--node-processes", type=int, help="model node processes (default: one per 250, at most 4)")
    parser.add_argument("--no-reference", action="store_true", help="skip the async reference client")
    parser.add_argument("--reference-python", help="interpreter of a venv holding the reference client")
    parser.add_argument("--out", type=Path, help="output directory (default: benchmarks/results/<time>-shards)")
    return parser.parse_args(argv)


# -- one shard process ---------------------------------------------------------------------------


def shard_process(
    index: int, count: int, config: dict[str, Any], expected: int, barrier: Any, results: Any
) -> None:
    """Run in a process of its own: one shard's runner, its warm-up and measured rounds; its record to ``results``."""
    try:
        record = _measure_shard(index, count, config, expected, barrier)
    except BaseException as error:  # the parent waits for a record from every shard
        barrier.abort()  # the others stop waiting for this one
        record = {"index": index, "error": f"{type(error).__name__}: {error}"}
    results.put(record)


def _measure_shard(index: int, count: int, config: dict[str, Any], expected: int, barrier: Any) -> dict[str, Any]:
    bound = config["ready_timeout"] + config["timeout"] + 30.0  # the longest one shard may wait for the others
    started = time.perf_counter()
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=config["timeout"], crunch_id=config["crunch_id"], host=config["host"], port=config["port"],
        base_classname=BASE_CLASSNAME, report_failure=False, shard=(index, count),
    )  # fmt: skip
    try:
        runner.init(timeout=config["ready_timeout"])
        if not runner.wait_for_models(expected, config["ready_timeout"]):
            raise TimeoutError(f"{len(runner.models)} of {expected} models ready after {config['ready_timeout']}s")
        ready_s = time.perf_counter() - started
        for number in range(config["warmup"]):
            barrier.wait(bound)
            runner.call(METHOD, args=[make_payload(-1 - number)])
        time.sleep(SETTLE_S)  # start-up threads end (gRPC's connectivity watchers), as in benchmarks.clients
        barrier.wait(bound)
        spans: list[tuple[float, float]] = []
        successes = 0
        cpu_started = time.process_time()
        for number in range(config["rounds"]):
            payload = make_payload(number)
            barrier.wait(bound)
            round_started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
            answers = runner.call(METHOD, args=[payload])
            spans.append((round_started, time.monotonic()))
            successes += sum(1 for result in answers.values() if result.status is _SUCCESS and result.result == payload)
        cpu_s = time.process_time() - cpu_started
    finally:
        runner.close()
    return {"index": index, "models": expected, "ready_s": ready_s, "spans": spans, "cpu_s": cpu_s,
            "successes": successes, "expected": expected * config["rounds"]}  # fmt: skip


# -- K shards at once ----------------------------------------------------------------------------


def run_shards(
    cluster: BenchCluster, count: int, args: argparse.Namespace, n: int, latency_ms: float
) -> dict[str, Any]:
    """K shard processes against ``cluster``; their merged record."""
    assert cluster.orchestrator is not None
    model_ids = list(cluster.orchestrator.running_models)
    owned = [sum(1 for model_id in model_ids if shard_of(model_id, count) == index) for index in range(count)]
    config = {
        "crunch_id": cluster.crunch_id, "host": cluster.host, "port": cluster.orchestrator_port,
        "timeout": args.timeout, "ready_timeout": args.ready_timeout, "warmup": args.warmup, "rounds": args.rounds,
    }  # fmt: skip
    context = multiprocessing.get_context("spawn")  # not fork: this process runs the orchestrator's threads
    barrier, results = context.Barrier(count), context.Queue()
    processes = [
        context.Process(target=shard_process, args=(index, count, config, owned[index], barrier, results),
                        name=f"bench-shard-{index}")
        for index in range(count)
    ]  # fmt: skip
    limit = args.ready_timeout + (args.warmup + args.rounds) * (args.timeout + 2) + 60
    nodes_cpu = cluster.nodes.cpu_seconds()
    records: list[dict[str, Any]] = []
    for process in processes:
        process.start()
    try:
        deadline = time.monotonic() + limit
        while len(records) < count and time.monotonic() < deadline:
            try:
                records.append(results.get(timeout=max(0.1, min(5.0, deadline - time.monotonic()))))
            except queue.Empty:  # a shard still working; one that died gives nothing
                if not any(process.is_alive() for process in processes):
                    break
    finally:
        for process in processes:
            process.join(10.0)
            if process.is_alive():
                process.terminate()
                process.join(10.0)
    record: dict[str, Any] = {
        "kind": "result", "client": "mrclient-shards", "shards": count, "n": n, "latency_ms": latency_ms,
        "rounds": args.rounds, "models_per_shard": owned, "nodes_cpu_s": cluster.nodes.cpu_seconds() - nodes_cpu,
    }  # fmt: skip
    errors = [f"shard {each['index']}: {each['error']}" for each in records if "error" in each]
    if errors or len(records) < count:
        record["error"] = "; ".join(errors) or f"{count - len(records)} shards gave no result in {limit:.0f}s"
        return record
    walls = [
        max(each["spans"][number][1] for each in records) - min(each["spans"][number][0] for each in records)
        for number in range(args.rounds)
    ]
    cpu_s = sum(each["cpu_s"] for each in records)
    calls = sum(each["expected"] for each in records)
    p50 = percentile(walls, 0.5)
    record.update({
        "wall_p50_ms": p50 * 1000, "wall_p90_ms": percentile(walls, 0.9) * 1000, "wall_max_ms": max(walls) * 1000,
        "cpu_s": cpu_s, "cpu_per_call_us": cpu_s / calls * 1e6, "calls_per_s": n / p50 if p50 > 0 else None,
        "cpu_by_shard_s": [round(each["cpu_s"], 4) for each in sorted(records, key=lambda each: each["index"])],
        "successes": sum(each["successes"] for each in records), "expected": calls,
        "ready_s": max(each["ready_s"] for each in records), "walls_ms": [wall * 1000 for wall in walls],
    })  # fmt: skip
    return record


def run_reference(
    cluster: BenchCluster, args: argparse.Namespace, python: str, out: Path, n: int, latency_ms: float
) -> dict[str, Any]:
    """The async reference client, one process, on the same cluster (``benchmarks.run``'s way)."""
    config = ClientConfig(
        client="reference", n=n, latency_ms=latency_ms, warmup=args.warmup, rounds=args.rounds, timeout=args.timeout,
        ready_timeout=args.ready_timeout, crunch_id=cluster.crunch_id, orchestrator_host=cluster.host,
        orchestrator_port=cluster.orchestrator_port, endpoints=cluster.endpoints,
    )  # fmt: skip
    record = run_client(CLIENTS["reference"], config, python, out, cluster)
    if "error" not in record:
        record["calls_per_s"] = n / (record["wall_p50_ms"] / 1000) if record["wall_p50_ms"] > 0 else None
    return {**record, "shards": 1}


# -- the report ----------------------------------------------------------------------------------


def _number(value: Any, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def render(records: Sequence[dict[str, Any]]) -> str:
    """The table of the run and the projection, as text (also valid RST tables, for the docs)."""
    rows = [("N", "latency", "client", "K", "round wall p50", "p90", "CPU/call", "calls/s", "answers")]
    for record in records:
        if record.get("kind") != "result":
            continue
        client = "mrclient" if record["client"] == "mrclient-shards" else record["client"]
        if "error" in record:
            rows.append((str(record["n"]), f"{record['latency_ms']:g} ms", client, str(record["shards"]),
                         "error: " + record["error"][:60], "", "", "", ""))  # fmt: skip
            continue
        rows.append((
            str(record["n"]), f"{record['latency_ms']:g} ms", client, str(record["shards"]),
            f"{_number(record['wall_p50_ms'])} ms", f"{_number(record['wall_p90_ms'])} ms",
            f"{_number(record['cpu_per_call_us'])} µs", _number(record.get("calls_per_s")),
            f"{record['successes']}/{record['expected']}",
        ))  # fmt: skip
    lines = _rst_table(rows)
    projection = [record for record in records if record.get("kind") == "projection"]
    if projection:
        lines += ["", _rst_table_title(projection[0])]
        lines += _rst_table([("cores (one shard each)", "calls per second (models on a 1 s tick)")] + [
            (str(each["cores"]), _number(each["calls_per_s"])) for each in projection
        ])
    return "\n".join(lines)


def _rst_table_title(record: dict[str, Any]) -> str:
    return (f"projection from {record['cpu_per_call_us']:.0f} µs of client CPU per call (N={record['n']}, "
            f"{record['latency_ms']:g} ms, K={record['from_shards']}), model nodes on other machines:")


def _rst_table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * width for width in widths)
    body = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return [rule, body[0], rule, *body[1:], rule]


def projections(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls per second on 4, 8, 16 cores from the measured CPU per call of the largest N, at K = 1."""
    measured = [record for record in records if record.get("client") == "mrclient-shards" and "error" not in record]
    if not measured:
        return []
    base = max(measured, key=lambda record: (record["n"], -record["latency_ms"], -record["shards"]))
    per_core = 1e6 / base["cpu_per_call_us"]
    return [{"kind": "projection", "cores": cores, "calls_per_s": cores * per_core, "n": base["n"],
             "latency_ms": base["latency_ms"], "from_shards": base["shards"],
             "cpu_per_call_us": base["cpu_per_call_us"]} for cores in PROJECTED_CORES]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = args.shards or default_shard_counts()
    out: Path = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-shards"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "configs").mkdir(exist_ok=True)
    reference_python = None
    if not args.no_reference:
        reference_python = args.reference_python or str(reference_venv.ensure())
    raise_fd_limit()  # N=2000 needs more open files than the common soft limit, in every process
    records: list[dict[str, Any]] = [{
        "kind": "run", "case": "shards", "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "ns": args.ns, "latencies_ms": args.latencies_ms, "shards": counts, "warmup": args.warmup,
        "rounds": args.rounds, "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0],
        "python": platform.python_version(), "platform": platform.platform(), "command": " ".join(sys.argv),
    }]  # fmt: skip
    if os.getloadavg()[0] > BUSY_LOAD:
        print(f"warning: load average {os.getloadavg()[0]:.1f} before the benchmark: other work on this machine "
              "will show in the timings", file=sys.stderr)
    started = time.monotonic()
    for n in args.ns:
        for latency_ms in args.latencies_ms:
            node_processes = args.node_processes or default_shards(n)
            print(f"-- N={n} latency={latency_ms:g} ms ({node_processes} node processes)", flush=True)
            with BenchCluster(n, latency_ms, shards=node_processes, log_dir=out / "logs") as cluster:
                for count in counts:
                    record = run_shards(cluster, count, args, n, latency_ms)
                    records.append(record)
                    print("   " + _progress(record), flush=True)
                if reference_python is not None:
                    record = run_reference(cluster, args, reference_python, out, n, latency_ms)
                    records.append(record)
                    print("   " + _progress(record), flush=True)
    records[0]["loadavg_at_end"] = os.getloadavg()[0]
    records += projections(records)
    with open(out / "results.jsonl", "w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record) + "\n")
    text = render(records)
    (out / "table.txt").write_text(text + "\n", encoding="utf-8")
    print()
    print(text)
    print(f"results: {out / 'results.jsonl'} ({time.monotonic() - started:.0f} s)")
    return 1 if any("error" in record for record in records if record.get("kind") == "result") else 0


def _progress(record: dict[str, Any]) -> str:
    name = f"{record['client']} K={record['shards']}"
    if "error" in record:
        return f"{name}: error: {record['error']}"
    return (f"{name}: round wall p50 {record['wall_p50_ms']:.0f} ms, {record['cpu_per_call_us']:.0f} µs CPU/call, "
            f"{record['successes']}/{record['expected']} answers")


if __name__ == "__main__":
    sys.exit(main())
