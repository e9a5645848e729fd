"""The ``map`` case of the benchmark: a tournament's inputs, with a barrier per input and without.

::

    python -m benchmarks.map_case                 # make bench-map: N = 100 models, 200 inputs, 5-50 ms

N models whose latency is drawn afresh for each input, uniformly between
``--latency-ms`` and ``--latency-max-ms`` (``benchmarks.nodes``: the same
draws for every client of the run), answer ``--inputs`` inputs three ways,
each client in its own process, one after another against the same cluster,
for ``--passes`` passes (forward, then reverse order):

* ``mrclient-map``: one ``runner.map`` over the inputs;
* ``mrclient-loop``: a loop of ``runner.call()``, one round per input;
* ``reference-loop``: the async reference client's loop of ``call()``.

A loop waits at every input for the slowest model, so its ideal wall time is
the sum over the inputs of the slowest latency; a map lets each model run
through its inputs alone, so its ideal is the slowest model's own total. Both
ideals are computed from the draws and printed beside the measured times, with
the ratios (the goal: map at least 1.5x faster than the loop of ``call()``).
Records go to ``<out>/results.jsonl``, the table to standard output and
``<out>/table.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import reference_venv
from .clients.common import RESULT_MARKER, ClientConfig
from .cluster import BenchCluster
from .nodes import drawn_latency, raise_fd_limit

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SEED = 24
#: client name -> (module, mode, runs in the reference's venv)
CLIENTS = {
    "mrclient-map": ("benchmarks.clients.mrclient_sync", "map", False),
    "mrclient-loop": ("benchmarks.clients.mrclient_sync", "loop", False),
    "reference-loop": ("benchmarks.clients.reference_async", "loop", True),
}
#: The goal of issue 24: the map's wall time at least this many times shorter than the loop of call()'s.
GOAL = 1.5


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=5.0, help="the shortest latency drawn")
    parser.add_argument("--latency-max-ms", type=float, default=50.0, help="the longest latency drawn")
    parser.add_argument("--warmup", type=int, default=5, help="inputs before the measured ones")
    parser.add_argument("--passes", type=int, default=2, help="runs of each client")
    parser.add_argument("--clients", nargs="+", choices=sorted(CLIENTS), default=list(CLIENTS))
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline, seconds")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--reference-python", help="interpreter of a venv holding the reference client")
    parser.add_argument("--out", type=Path, help="output directory (default: benchmarks/results/<time>-map)")
    return parser.parse_args(argv)


def ideal_walls(ports: Sequence[int], inputs: int, low_ms: float, high_ms: float) -> tuple[float, float]:
    """(loop, map) ideal wall times in seconds: the sum of each input's slowest, the slowest model's own sum."""
    draws = [[drawn_latency(SEED, port, i, low_ms / 1000, high_ms / 1000) for i in range(inputs)] for port in ports]
    loop = sum(max(model[i] for model in draws) for i in range(inputs))
    return loop, max(sum(model) for model in draws)


def run_one(
    name: str, config: ClientConfig, python: str, out: Path, pass_index: int, cluster: BenchCluster
) -> dict[str, Any]:
    """Run one client process; its result record, with the node processes' CPU meanwhile (``nodes_cpu_s``)."""
    module = CLIENTS[name][0]
    nodes_cpu = cluster.nodes.cpu_seconds()
    stem = f"map-{name}-{pass_index + 1}"
    config_path = out / "configs" / f"{stem}.json"
    config.dump(str(config_path))
    limit = config.ready_timeout + (config.warmup + config.rounds) * (config.timeout + 2) + 60
    with open(out / "logs" / f"{stem}.log", "wb") as log:
        try:
            finished = subprocess.run(
                [python, "-m", module, "--config", str(config_path)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=log, timeout=limit, check=False,
            )  # fmt: skip
            stdout, error = finished.stdout.decode(errors="replace"), f"exit code {finished.returncode}"
        except subprocess.TimeoutExpired as expired:
            stdout, error = (expired.stdout or b"").decode(errors="replace"), f"killed after {limit:.0f}s"
    nodes_cpu_s = cluster.nodes.cpu_seconds() - nodes_cpu
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            record = json.loads(line[len(RESULT_MARKER) :])
            return {**record, "client": name, "pass": pass_index + 1, "nodes_cpu_s": nodes_cpu_s}
    return {"kind": "result", "client": name, "pass": pass_index + 1, "error": f"{error}, no result; see {log.name}"}


def summarize(passes: dict[str, list[dict[str, Any]]], ideal: tuple[float, float]) -> list[dict[str, Any]]:
    """One record per client (median wall over its passes) and the ratios."""
    rows: list[dict[str, Any]] = []
    for name, records in passes.items():
        good = [record for record in records if "error" not in record]
        if not good:
            rows.append({"kind": "summary", "client": name, "error": records[0].get("error")})
            continue
        rows.append({
            "kind": "summary", "client": name, "passes": len(good),
            "wall_s": statistics.median(record["wall_s"] for record in good),
            "walls_s": [record["wall_s"] for record in good],
            "cpu_per_call_us": statistics.median(record["cpu_per_call_us"] for record in good),
            "nodes_cpu_s": statistics.median(record["nodes_cpu_s"] for record in good),
            "successes": sum(record["successes"] for record in good),
            "expected": sum(record["expected"] for record in good),
        })  # fmt: skip
    walls = {row["client"]: row.get("wall_s") for row in rows}
    mapped, loop, reference = walls.get("mrclient-map"), walls.get("mrclient-loop"), walls.get("reference-loop")
    rows.append({
        "kind": "ratios",
        "ideal_loop_s": ideal[0], "ideal_map_s": ideal[1], "ideal_ratio": ideal[0] / ideal[1],
        "loop_over_map": loop / mapped if loop and mapped else None,
        "reference_loop_over_map": reference / mapped if reference and mapped else None,
        "goal": GOAL,
        "met": bool(loop and mapped and loop / mapped >= GOAL),
    })  # fmt: skip
    return rows


def render(rows: Sequence[dict[str, Any]], environment: dict[str, Any]) -> str:
    lines = [
        f"map case: N={environment['models']} models, {environment['inputs']} inputs, latency drawn per input "
        f"{environment['latency_ms']:g}-{environment['latency_max_ms']:g} ms; {environment['cpus']} CPUs, "
        f"load {environment['loadavg_at_start']:.1f} at start",
        f"{'client':<16} {'wall s (median)':>16} {'passes':>24} {'CPU/call us':>12} {'nodes CPU s':>12} "
        f"{'answers':>14}",
    ]
    ratios: dict[str, Any] = {}
    for row in rows:
        if row["kind"] == "ratios":
            ratios = row
        elif "error" in row:
            lines.append(f"{row['client']:<16} failed: {row['error']}")
        else:
            walls = ", ".join(f"{wall:.2f}" for wall in row["walls_s"])
            lines.append(f"{row['client']:<16} {row['wall_s']:>16.2f} {walls:>24} {row['cpu_per_call_us']:>12.0f} "
                         f"{row['nodes_cpu_s']:>12.1f} {row['successes']:>6}/{row['expected']:<7}")
    if ratios:
        lines.append(f"ideal (from the draws): loop {ratios['ideal_loop_s']:.2f} s, map {ratios['ideal_map_s']:.2f} s, "
                     f"x{ratios['ideal_ratio']:.2f}")

        def ratio(value: float | None) -> str:
            return "not measured" if value is None else f"x{value:.2f}"

        lines.append(f"loop of call() / map: {ratio(ratios['loop_over_map'])} "
                     f"(goal x{ratios['goal']:g}: {'met' if ratios['met'] else 'NOT met'}); "
                     f"reference's loop / map: {ratio(ratios['reference_loop_over_map'])}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reference_python = args.reference_python
    if any(CLIENTS[name][2] for name in args.clients) and reference_python is None:
        reference_python = str(reference_venv.ensure())
    out: Path = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-map"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "configs").mkdir(exist_ok=True)
    raise_fd_limit()
    environment = {
        "kind": "run", "case": "map", "models": args.models, "inputs": args.inputs, "latency_ms": args.latency_ms,
        "latency_max_ms": args.latency_max_ms, "warmup": args.warmup, "passes": args.passes, "seed": SEED,
        "timeout_s": args.timeout, "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0],
        "python": sys.version.split()[0],
    }  # fmt: skip
    started = time.monotonic()
    passes: dict[str, list[dict[str, Any]]] = {name: [] for name in args.clients}
    with BenchCluster(
        args.models, args.latency_ms, log_dir=out / "logs", latency_max_ms=args.latency_max_ms, seed=SEED
    ) as cluster:
        ideal = ideal_walls(cluster.nodes.ports, args.inputs, args.latency_ms, args.latency_max_ms)
        for pass_index in range(args.passes):
            order = args.clients if pass_index % 2 == 0 else list(reversed(args.clients))
            for name in order:
                _, mode, in_reference_venv = CLIENTS[name]
                config = ClientConfig(
                    client=name, n=args.models, latency_ms=args.latency_ms, warmup=args.warmup, rounds=args.inputs,
                    timeout=args.timeout, ready_timeout=args.ready_timeout, crunch_id=cluster.crunch_id,
                    orchestrator_host=cluster.host, orchestrator_port=cluster.orchestrator_port,
                    endpoints=cluster.endpoints, mode=mode,
                )  # fmt: skip
                python = reference_python if in_reference_venv and reference_python else sys.executable
                record = run_one(name, config, python, out, pass_index, cluster)
                passes[name].append(record)
                shown = record.get("error") or f"{record['wall_s']:.2f} s, {record['successes']}/{record['expected']}"
                print(f"   {pass_index + 1}/{args.passes} {name}: {shown}", flush=True)
    environment["loadavg_at_end"] = os.getloadavg()[0]
    rows = summarize(passes, ideal)
    with open(out / "results.jsonl", "w", encoding="utf-8") as file:
        for record in [environment, *(r for records in passes.values() for r in records), *rows]:
            file.write(json.dumps(record) + "\n")
    text = render(rows, environment)
    (out / "table.txt").write_text(text + "\n")
    print()
    print(text)
    print(f"results: {out / 'results.jsonl'} ({time.monotonic() - started:.0f} s)")
    failed = [record for records in passes.values() for record in records if "error" in record]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
