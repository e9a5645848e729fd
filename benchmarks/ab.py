"""In-process A/B: variants of one setting alternated round by round in one client process.

::

    python -m benchmarks.ab --variant stats=off,on --models 1000 --rounds 40
    make bench-ab                                   # the same, in the benchmark's venv

Comparing two benchmark runs of a few percent apart measures the machine as
much as the change: other work, frequency scaling, a neighbour on the same
cores. Here one client process (``benchmarks.ab_client``) holds every
variant and alternates them round by round in blocks (A B, B A, A B, ...), so
drift hits them alike and cancels; each variant is compared with the first
one block by block (the ratio of their CPU per call within a block), and the
mean of those ratios is given with a 95 % interval. The knobs are in
``benchmarks.knobs``; ``--set NAME=VALUE`` fixes another knob for every variant.

Results go to ``<out>/results.json`` and the table to standard output.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import baseline
from .clients.common import RESULT_MARKER
from .cluster import BenchCluster
from .knobs import KNOBS, parse_setting
from .measure import percentile

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
#: Two-sided 95 % quantile of the normal distribution (the blocks are many enough).
Z95 = 1.96


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    knobs = "; ".join(f"{knob.name}: {', '.join(knob.values)} ({knob.help})" for knob in KNOBS.values())
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=f"knobs: {knobs}"
    )
    parser.add_argument("--variant", required=True, metavar="NAME=V1,V2", help="the knob to vary and its values")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a knob fixed for all")
    parser.add_argument("--models", type=int, default=1000, help="model endpoints (N)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="each model's latency")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up blocks")
    parser.add_argument("--rounds", type=int, default=40, help="measured rounds per variant")
    parser.add_argument("--method", default="tick")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline, seconds")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, help="output directory (default: benchmarks/results/<time>-ab)")
    args = parser.parse_args(argv)
    try:
        knob, values = parse_setting(args.variant)
        fixed = dict((k.name, v[0]) for k, v in map(parse_setting, args.set))
    except ValueError as error:
        parser.error(str(error))
    if knob.name in fixed:
        parser.error(f"{knob.name} is both varied and fixed")
    if len(values) < 2:
        parser.error("--variant needs at least two values")
    args.variants = [{**fixed, knob.name: value} for value in values]
    args.labels = [f"{knob.name}={value}" for value in values]
    return args


def median_interval(values: Sequence[float]) -> list[float]:
    """A distribution-free 95 % interval of the median: two order statistics (normal approximation).

    Robust to the outliers a busy machine gives a few rounds, where the mean's interval is not.
    """
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, math.floor((n - Z95 * math.sqrt(n)) / 2))  # 0-based index of the lower bound
    return [ordered[k], ordered[n - 1 - k]] if n else [math.nan, math.nan]


def _per_call(rounds: Sequence[dict[str, Any]], key: str, calls_per_round: int) -> float:
    """The mean of ``key`` per call over ``rounds`` (NaN when the rounds did not record it)."""
    if not rounds or any(key not in r for r in rounds):
        return math.nan
    return float(sum(r[key] for r in rounds)) / (len(rounds) * calls_per_round)


def summarize(rounds: Sequence[dict[str, Any]], labels: Sequence[str], calls_per_round: int) -> dict[str, Any]:
    """Per variant: CPU per call and wall time; per variant after the first: its block-by-block ratio."""
    variants = []
    for index, label in enumerate(labels):
        mine = [r for r in rounds if r["variant"] == index]
        cpu = [r["cpu_s"] / calls_per_round * 1e6 for r in mine]
        variants.append({
            "label": label,
            "rounds": len(mine),
            "cpu_per_call_us": sum(r["cpu_s"] for r in mine) / (len(mine) * calls_per_round) * 1e6,
            "caller_cpu_per_call_us": sum(r["caller_cpu_s"] for r in mine) / (len(mine) * calls_per_round) * 1e6,
            "cpu_per_call_median_us": statistics.median(cpu),
            "wall_p50_ms": percentile([r["wall_s"] * 1000 for r in mine], 0.5),
            "voluntary_switches_per_call": _per_call(mine, "voluntary_switches", calls_per_round),
            "involuntary_switches_per_call": _per_call(mine, "involuntary_switches", calls_per_round),
            "ok": sum(r["ok"] for r in mine),
            "expected": len(mine) * calls_per_round,
        })  # fmt: skip
    comparisons = []
    by_block: dict[int, dict[int, dict[str, Any]]] = {}
    for r in rounds:
        by_block.setdefault(r["block"], {})[r["variant"]] = r
    for index in range(1, len(labels)):
        pairs = [(b[index], b[0]) for b in by_block.values() if index in b and 0 in b and b[0]["cpu_s"] > 0]
        ratios = [mine["cpu_s"] / base["cpu_s"] for mine, base in pairs]
        walls = [mine["wall_s"] / base["wall_s"] for mine, base in pairs if base["wall_s"] > 0]
        mean = statistics.fmean(ratios)
        half = Z95 * statistics.stdev(ratios) / math.sqrt(len(ratios)) if len(ratios) > 1 else math.nan
        # The calling thread's CPU: where work added to a round's own pass lands, far less noisy
        # than the whole process's; its difference is given as a share of the baseline's CPU per call.
        caller = [(mine["caller_cpu_s"] - base["caller_cpu_s"]) / calls_per_round * 1e6 for mine, base in pairs]
        caller_mean = statistics.fmean(caller)
        caller_half = Z95 * statistics.stdev(caller) / math.sqrt(len(caller)) if len(caller) > 1 else math.nan
        base_us = variants[0]["cpu_per_call_us"]
        comparisons.append({
            "variant": labels[index],
            "baseline": labels[0],
            "blocks": len(ratios),
            "cpu_ratio_mean": mean,
            "cpu_ratio_ci95": [mean - half, mean + half],
            "cpu_ratio_median": statistics.median(ratios),
            "cpu_ratio_median_ci95": median_interval(ratios),
            "cpu_ratio_of_totals": variants[index]["cpu_per_call_us"] / variants[0]["cpu_per_call_us"],
            "wall_ratio_median": statistics.median(walls) if walls else math.nan,
            "caller_cpu_delta_us": caller_mean,
            "caller_cpu_delta_ci95_us": [caller_mean - caller_half, caller_mean + caller_half],
            "caller_cpu_delta_share": caller_mean / base_us,
            "caller_cpu_delta_share_ci95": [(caller_mean - bound) / base_us for bound in (caller_half, -caller_half)],
        })  # fmt: skip
    return {"variants": variants, "comparisons": comparisons}


def render(summary: dict[str, Any], header: str) -> str:
    lines = [
        header,
        "",
        f"{'variant':<22}{'CPU/call us':>13}{'median':>10}{'caller us':>11}{'wall p50 ms':>13}"
        f"{'vcsw/call':>11}{'ivcsw/call':>12}{'ok/expected':>16}",
    ]
    for v in summary["variants"]:
        lines.append(
            f"{v['label']:<22}{v['cpu_per_call_us']:>13.1f}{v['cpu_per_call_median_us']:>10.1f}"
            f"{v['caller_cpu_per_call_us']:>11.2f}{v['wall_p50_ms']:>13.1f}"
            f"{v.get('voluntary_switches_per_call', math.nan):>11.2f}"
            f"{v.get('involuntary_switches_per_call', math.nan):>12.2f}{v['ok']:>9}/{v['expected']}"
        )
    lines.append("")
    for c in summary["comparisons"]:
        low, high = (100 * (bound - 1) for bound in c["cpu_ratio_ci95"])
        lines.append(
            f"{c['variant']} vs {c['baseline']}: CPU per call {100 * (c['cpu_ratio_mean'] - 1):+.2f} % "
            f"(mean of {c['blocks']} blocks, 95 % interval {low:+.2f} % to {high:+.2f} %); "
            f"wall {100 * (c['wall_ratio_median'] - 1):+.2f} % (median block)"
        )
        low, high = (100 * (bound - 1) for bound in c["cpu_ratio_median_ci95"])
        lines.append(
            f"  median block {100 * (c['cpu_ratio_median'] - 1):+.2f} % (95 % interval {low:+.2f} % to {high:+.2f} %); "
            f"ratio of the totals {100 * (c['cpu_ratio_of_totals'] - 1):+.2f} %"
        )
        low, high = c["caller_cpu_delta_ci95_us"]
        share_low, share_high = (100 * bound for bound in c["caller_cpu_delta_share_ci95"])
        lines.append(
            f"  the calling thread: {c['caller_cpu_delta_us']:+.2f} us per call (95 % interval {low:+.2f} to "
            f"{high:+.2f}), {100 * c['caller_cpu_delta_share']:+.2f} % of {c['baseline']}'s CPU per call "
            f"({share_low:+.2f} % to {share_high:+.2f} %)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-ab"
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    with BenchCluster(args.models, args.latency_ms, log_dir=out) as cluster:
        config = {
            "variants": args.variants, "models": args.models, "method": args.method, "timeout": args.timeout,
            "ready_timeout": args.ready_timeout, "warmup": args.warmup, "rounds": args.rounds,
            "crunch_id": cluster.crunch_id, "host": cluster.host, "port": cluster.orchestrator_port,
        }  # fmt: skip
        if any(variant.get("code") == "base" for variant in args.variants):
            config.update(baseline.extract(out / "base"))  # the base commit's mrclient, as mrclient_base
        (out / "config.json").write_text(json.dumps(config))
        limit = args.ready_timeout + (args.warmup + args.rounds) * len(args.variants) * (args.timeout + 2) + 60
        with open(out / "client.log", "wb") as log:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.ab_client", "--config", str(out / "config.json")],
                cwd=REPO, stdout=subprocess.PIPE, stderr=log, timeout=limit, check=False,
            )  # fmt: skip
    lines = [line for line in done.stdout.decode(errors="replace").splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        print(f"the A/B client failed (exit code {done.returncode}); see {out / 'client.log'}", file=sys.stderr)
        return 1
    measured = json.loads(lines[0][len(RESULT_MARKER) :])
    summary = summarize(measured["rounds"], args.labels, args.models)
    environment = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"), "models": args.models,
        "latency_ms": args.latency_ms, "rounds_per_variant": args.rounds, "warmup_blocks": args.warmup,
        "fixed": args.set, "runners": measured["runners"], "cpus": os.cpu_count(), "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0], "python": platform.python_version(), "seconds": time.monotonic() - started,
        "base_commit": config.get("base_commit"),
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps({**environment, **summary, "rounds": measured["rounds"]}, indent=1))
    header = (  # the load average after would count the run's own threads: only the one before says much
        f"A/B at N={args.models}, model latency {args.latency_ms:g} ms: {args.rounds} rounds per variant, alternated "
        f"in one process; load average {load_before:.2f} before"
        + (f"; code=base is commit {config['base_commit'][:12]}" if config.get("base_commit") else "")
    )
    print(render(summary, header))
    print(f"\nresults: {out / 'results.json'}")
    failed = [v for v in summary["variants"] if v["ok"] != v["expected"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
