"""Run the fan-out benchmark: every client against the same cluster, case by case.

::

    python -m benchmarks.run --preset quick

For each case (N endpoints x model latency) it starts a benchmark cluster
(``benchmarks.cluster``), then runs each client in its own process
(``benchmarks.clients``), one after another, so each one's CPU time, memory and
threads are its own. Results, ratios and goal checks go to
``<out>/results.jsonl``, the table to standard output and ``<out>/table.txt``,
the plot to ``<out>/overhead.png``, each process's log to ``<out>/logs/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import reference_venv, report
from .clients import CLIENTS, ClientSpec
from .clients.common import RESULT_MARKER, ClientConfig
from .cluster import BenchCluster, default_shards
from .measure import percentile
from .nodes import raise_fd_limit

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
#: A 1-minute load average above this before a run means the machine is not quiet.
BUSY_LOAD = 0.5


@dataclass(frozen=True)
class Preset:
    ns: tuple[int, ...]
    latencies_ms: tuple[float, ...]
    warmup: int
    rounds: int
    #: Each client runs this many times per case, in forward then reverse order,
    #: so no client always goes first; its figures merge its passes.
    passes: int


PRESETS = {
    # make bench: the whole matrix, under 20 minutes on 2 cores.
    "full": Preset(ns=(10, 100, 1000, 2000), latencies_ms=(0, 50), warmup=2, rounds=16, passes=2),
    # make bench-quick: about 1 minute.
    "quick": Preset(ns=(10, 100), latencies_ms=(0, 50), warmup=2, rounds=10, passes=2),
    # tests/test_bench_smoke.py: does it run, does every client get every answer.
    "smoke": Preset(ns=(3,), latencies_ms=(0,), warmup=1, rounds=2, passes=1),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--ns", type=int, nargs="+", help="endpoint counts (overrides the preset)")
    parser.add_argument("--latencies-ms", type=float, nargs="+", help="model latencies (overrides the preset)")
    parser.add_argument("--warmup", type=int, help="warm-up rounds (overrides the preset)")
    parser.add_argument("--rounds", type=int, help="measured rounds (overrides the preset)")
    parser.add_argument("--passes", type=int, help="runs of each client per case (overrides the preset)")
    parser.add_argument("--clients", nargs="+", choices=sorted(CLIENTS), default=list(CLIENTS))
    parser.add_argument(
        "--reference-python",
        help="interpreter of a venv holding model-runner-client==0.14.0 (default: .venv-bench-reference, made once)",
    )
    parser.add_argument("--shards", type=int, help="node shard processes (default: one per 250 endpoints, at most 4)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline, seconds")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="bound on init until all callable")
    parser.add_argument("--out", type=Path, help="output directory (default: benchmarks/results/<time>-<preset>)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    return parser.parse_args(argv)


def run_client(
    spec: ClientSpec,
    config: ClientConfig,
    python: str,
    out: Path,
    cluster: BenchCluster,
    pass_index: int = 0,
) -> dict[str, Any]:
    """Run one client process against the cluster; its result record (with ``error`` on failure)."""
    stem = f"{config.n}-{config.latency_ms:g}ms-{spec.name}-{pass_index + 1}"
    config_path = out / "configs" / f"{stem}.json"
    config.dump(str(config_path))
    # Bounded: the client's own bounds plus a margin; subprocess.run kills it past that.
    limit = config.ready_timeout + (config.warmup + config.rounds) * (config.timeout + 2) + 60
    nodes_cpu = cluster.nodes.cpu_seconds()
    with open(out / "logs" / f"{stem}.log", "wb") as log:
        try:
            finished = subprocess.run(
                [python, "-m", spec.module, "--config", str(config_path)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=log, timeout=limit, check=False,
            )  # fmt: skip
            stdout, error = finished.stdout.decode(errors="replace"), f"exit code {finished.returncode}"
        except subprocess.TimeoutExpired as expired:
            stdout, error = (expired.stdout or b"").decode(errors="replace"), f"killed after {limit:.0f}s"
    record: dict[str, Any] = {"kind": "result", "client": spec.name, "n": config.n, "latency_ms": config.latency_ms}
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            record = json.loads(line[len(RESULT_MARKER) :])
            break
    else:
        record["error"] = f"{error}, no result; see {log.name}"
    record["nodes_cpu_s"] = cluster.nodes.cpu_seconds() - nodes_cpu
    return record


def merge_passes(passes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One client's figures for a case from its passes: rounds pooled, peaks maxed, ready time median."""
    failed = [record for record in passes if "error" in record]
    if failed:
        return {**failed[0], "kind": "result", "passes": len(passes)}
    walls = [wall for record in passes for wall in record["walls_ms"]]
    p50 = percentile(walls, 0.5)

    def total(key: str) -> Any:
        return sum(record[key] for record in passes)

    def highest(key: str) -> Any:
        return max(record[key] for record in passes)

    return {
        **passes[0],
        "kind": "result",
        "passes": len(passes),
        "rounds": total("rounds"),
        "wall_p50_ms": p50,
        "wall_p90_ms": percentile(walls, 0.9),
        "wall_max_ms": max(walls),
        "overhead_p50_ms": p50 - passes[0]["latency_ms"],
        "cpu_s": total("cpu_s"),
        "cpu_by_thread_s": _sum_by_key(record.get("cpu_by_thread_s", {}) for record in passes),
        "cpu_per_call_us": total("cpu_s") / total("expected") * 1e6,
        "peak_threads": highest("peak_threads"),
        "threads_ready": highest("threads_ready"),
        "threads_after_close": highest("threads_after_close"),
        "python_threads_after_close": highest("python_threads_after_close"),
        "peak_rss_mb": highest("peak_rss_mb"),
        "successes": total("successes"),
        "expected": total("expected"),
        "warmup_successes": total("warmup_successes"),
        "warmup_expected": total("warmup_expected"),
        "ready_s": statistics.median(record["ready_s"] for record in passes),
        "nodes_cpu_s": total("nodes_cpu_s"),
        "walls_ms": walls,
    }


def _sum_by_key(mappings: Iterable[dict[str, float]]) -> dict[str, float]:
    summed: dict[str, float] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            summed[key] = summed.get(key, 0.0) + value
    return {key: round(value, 4) for key, value in sorted(summed.items(), key=lambda item: -item[1])}


def run_environment(args: argparse.Namespace, preset: Preset) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "kind": "run",
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "preset": args.preset,
        "ns": list(preset.ns),
        "latencies_ms": list(preset.latencies_ms),
        "warmup": preset.warmup,
        "rounds": preset.rounds,
        "passes": preset.passes,
        "clients": args.clients,
        "timeout_s": args.timeout,
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = PRESETS[args.preset]
    preset = Preset(
        ns=tuple(args.ns or base.ns),
        latencies_ms=tuple(args.latencies_ms if args.latencies_ms is not None else base.latencies_ms),
        warmup=base.warmup if args.warmup is None else args.warmup,
        rounds=args.rounds or base.rounds,
        passes=args.passes or base.passes,
    )
    reference_python = args.reference_python
    if "reference" in args.clients and reference_python is None:
        reference_python = str(reference_venv.ensure())
    out: Path = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.preset}"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "configs").mkdir(exist_ok=True)

    # Each client inherits this: at N=2000 every one of them needs more than the common soft limit of 1024
    # open files, and only mrclient raises its own (tests/test_fd_limit.py shows it doing so).
    raise_fd_limit()
    records: list[dict[str, Any]] = [run_environment(args, preset)]
    if os.getloadavg()[0] > BUSY_LOAD:
        print(
            f"warning: load average {os.getloadavg()[0]:.1f} before the benchmark: other work on this machine "
            "will show in the timings",
            file=sys.stderr,
        )
    started = time.monotonic()
    for n in preset.ns:
        for latency_ms in preset.latencies_ms:
            shards = args.shards or default_shards(n)
            print(f"-- N={n} latency={latency_ms:g} ms ({shards} node shards)", flush=True)
            with BenchCluster(n, latency_ms, shards=shards, log_dir=out / "logs") as cluster:
                passes: dict[str, list[dict[str, Any]]] = {name: [] for name in args.clients}
                for pass_index in range(preset.passes):
                    order = args.clients if pass_index % 2 == 0 else list(reversed(args.clients))
                    for name in order:
                        spec = CLIENTS[name]
                        config = ClientConfig(
                            client=name, n=n, latency_ms=latency_ms, warmup=preset.warmup, rounds=preset.rounds,
                            timeout=args.timeout, ready_timeout=args.ready_timeout, crunch_id=cluster.crunch_id,
                            orchestrator_host=cluster.host, orchestrator_port=cluster.orchestrator_port,
                            endpoints=cluster.endpoints,
                        )  # fmt: skip
                        python = reference_python if spec.reference_venv else sys.executable
                        record = run_client(spec, config, python, out, cluster, pass_index)
                        passes[name].append(record)
                        print(f"   {pass_index + 1}/{preset.passes} " + report.progress_line(record), flush=True)
            for name in args.clients:
                records.extend({**record, "kind": "pass"} for record in passes[name])
                records.append(merge_passes(passes[name]))

    records[0]["loadavg_at_end"] = os.getloadavg()[0]
    records += report.ratios(records)
    records += report.goals(records)
    with open(out / "results.jsonl", "w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record) + "\n")
    text = report.render(records)
    (out / "table.txt").write_text(text + "\n")
    print()
    print(text)
    if not args.no_plot:
        plotted = report.plot(records, out / "overhead.png")
        print(f"\nplot: {out / 'overhead.png'}" if plotted else "\nplot skipped: matplotlib is not installed")
    _point_latest(out)
    print(f"results: {out / 'results.jsonl'} ({time.monotonic() - started:.0f} s)")
    failed = [record for record in records if record.get("kind") == "result" and record.get("error")]
    return 1 if failed else 0


def _point_latest(out: Path) -> None:
    """benchmarks/results/latest -> the newest run (when the run wrote under benchmarks/results)."""
    if out.resolve().parent != RESULTS.resolve():
        return
    latest = RESULTS / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)


if __name__ == "__main__":
    sys.exit(main())
