"""Tables, ratios, goal checks and the plot, from a run's records.

::

    python -m benchmarks.report benchmarks/results/latest/results.jsonl          # the text table again
    python -m benchmarks.report benchmarks/results/latest/results.jsonl --rst    # for docs/performance.rst
    python -m benchmarks.report benchmarks/results/latest/results.jsonl --plot overhead.png

The headline is CPU per call: the client process's CPU time (every thread,
gRPC core's included) over the calls it made, per client and case. Ratios
compare mrclient, within one run, with floor B (the design card's shape,
bare: ``raw-threads``) and with the async reference client, and the reference
with its own floor (``raw-aio``). The goals are those of issue 13, each met,
not met, or not measured in this run.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .clients import CLIENTS, FLOOR_AIO, FLOOR_B

Record = dict[str, Any]
Case = tuple[int, float]

SUBJECT = "mrclient"
REFERENCE = "reference"


# -- selecting records -------------------------------------------------------------------------


def results(records: Iterable[Record]) -> list[Record]:
    return [record for record in records if record.get("kind") == "result"]


def cases(records: Iterable[Record]) -> list[Case]:
    return sorted({(record["n"], record["latency_ms"]) for record in results(records)})


def find(records: Iterable[Record], client: str, case: Case) -> Record | None:
    """The successful result of ``client`` in ``case``, if any."""
    for record in results(records):
        if record["client"] == client and (record["n"], record["latency_ms"]) == case and "error" not in record:
            return record
    return None


def _figure(record: Record | None, key: str) -> float | None:
    return None if record is None else float(record[key])


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


# -- ratios and goals --------------------------------------------------------------------------

#: The cases the goals of issue 13 are set at.
GOAL_NS = (100, 1000, 2000)


def ratios(records: Sequence[Record]) -> list[Record]:
    """Per case: mrclient's figures over floor B's and the reference's; the reference's over its own floor."""
    out: list[Record] = []
    for case in cases(records):
        subject = find(records, SUBJECT, case)
        if subject is None:
            continue
        reference, floor_b, floor_aio = (find(records, name, case) for name in (REFERENCE, FLOOR_B, FLOOR_AIO))

        def over(record: Record | None, key: str, base: Record | None = subject) -> float | None:
            return _ratio(_figure(base, key), _figure(record, key))

        out.append(
            {
                "kind": "ratio",
                "n": case[0],
                "latency_ms": case[1],
                "cpu_vs_floor_b": over(floor_b, "cpu_per_call_us"),
                "cpu_vs_reference": over(reference, "cpu_per_call_us"),
                "overhead_vs_floor_b": over(floor_b, "overhead_p50_ms"),
                "overhead_vs_reference": over(reference, "overhead_p50_ms"),
                "ready_vs_reference": over(reference, "ready_s"),
                "reference_cpu_vs_floor_aio": over(floor_aio, "cpu_per_call_us", reference),
            }
        )
    return out


def _goal(name: str, checks: list[tuple[bool | None, str]]) -> Record:
    """A goal is met when every check is; not measured when any check could not be made."""
    verdicts = [verdict for verdict, _ in checks]
    met: bool | None
    if not checks or None in verdicts:
        met = None if all(verdict is not False for verdict in verdicts) else False
    else:
        met = all(verdicts)
    return {"kind": "goal", "goal": name, "met": met, "detail": "; ".join(detail for _, detail in checks)}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


Check = Callable[[Case], tuple[bool | None, str]]


def goals(records: Sequence[Record]) -> list[Record]:
    """The goals of issue 13, checked on this run's figures (ratios within the run)."""
    all_cases = cases(records)
    by_case = {(ratio["n"], ratio["latency_ms"]): ratio for ratio in records if ratio.get("kind") == "ratio"}
    at_goal_ns = [case for case in all_cases if case[0] in GOAL_NS]

    def label(case: Case) -> str:
        return f"N={case[0]} {case[1]:g}ms"

    def checks(selected: Sequence[Case], check: Check, wanted: str) -> list[tuple[bool | None, str]]:
        """The checks at the cases a goal names; without any of them, one "not measured"."""
        if not selected:
            return [(None, f"no {wanted} in this run")]
        return [check(case) for case in selected]

    def successes(case: Case) -> tuple[bool | None, str]:
        subject = next(
            (r for r in results(records) if r["client"] == SUBJECT and (r["n"], r["latency_ms"]) == case), None
        )
        if subject is None:
            return None, f"{label(case)}: not run"
        if "error" in subject:
            return False, f"{label(case)}: {subject['error']}"
        ok = subject["successes"] == subject["expected"]
        return ok, f"{label(case)}: {subject['successes']}/{subject['expected']}"

    def ratio_at_most(key: str, limit: float | Callable[[Case], float]) -> Check:
        def check(case: Case) -> tuple[bool | None, str]:
            value = by_case.get(case, {}).get(key)
            bound = limit(case) if callable(limit) else limit
            if value is None:
                return None, f"{label(case)}: n/a"
            return value <= bound, f"{label(case)}: {value:.2f}" + ("" if bound == limit else f" (<= {bound:g})")

        return check

    def threads(case: Case) -> tuple[bool | None, str]:
        subject = find(records, SUBJECT, case)
        if subject is None:
            return None, f"{label(case)}: n/a"
        ok = subject["peak_threads"] <= case[0] + 20 and subject["python_threads_after_close"] == 0
        return ok, (
            f"{label(case)}: peak {subject['peak_threads']} (limit {case[0] + 20}), "
            f"{subject['python_threads_after_close']} Python threads left"
        )

    def against_reference(key: str, factor: float, unit: str) -> Check:
        def check(case: Case) -> tuple[bool | None, str]:
            subject, reference = find(records, SUBJECT, case), find(records, REFERENCE, case)
            if subject is None or reference is None:
                return None, f"{label(case)}: n/a"
            ok = subject[key] <= factor * reference[key]
            return ok, f"{label(case)}: {subject[key]:.2f} vs {reference[key]:.2f} {unit}"

        return check

    def cpu_bound(case: Case) -> float:
        return 1.3 if case[0] < 1000 else 1.5

    ns = "N=" + ", ".join(map(str, GOAL_NS))
    return [
        _goal("100 % successes for mrclient in every case", checks(all_cases, successes, "case")),
        _goal(
            "CPU per call <= 0.95 x floor B",
            checks(at_goal_ns, ratio_at_most("cpu_vs_floor_b", 0.95), ns),
        ),
        _goal(
            "round overhead p50 <= 0.95 x floor B",
            checks(at_goal_ns, ratio_at_most("overhead_vs_floor_b", 0.95), ns),
        ),
        _goal(
            "CPU per call <= 1.3 x reference at N=100, <= 1.5 x at N >= 1000",
            checks(at_goal_ns, ratio_at_most("cpu_vs_reference", cpu_bound), ns),
        ),
        _goal(
            "round overhead p50 <= 1.2 x reference",
            checks(at_goal_ns, ratio_at_most("overhead_vs_reference", 1.2), ns),
        ),
        _goal(
            "time until 2000 models are callable <= 0.8 x reference",
            checks(
                [case for case in all_cases if case[0] == 2000], against_reference("ready_s", 0.8, "s"), "N=2000"
            ),
        ),
        _goal("peak threads <= N + 20 in a round; none left after close()", checks(all_cases, threads, "case")),
        _goal("peak RSS <= reference", checks(all_cases, against_reference("peak_rss_mb", 1.0, "MiB"), "case")),
    ]


# -- text --------------------------------------------------------------------------------------

COLUMNS: list[tuple[str, str, Callable[[Record], str]]] = [
    ("client", "<", lambda r: str(r["client"])),
    ("N", ">", lambda r: str(r["n"])),
    ("lat ms", ">", lambda r: f"{r['latency_ms']:g}"),
    ("CPU/call us", ">", lambda r: f"{r['cpu_per_call_us']:.0f}"),
    ("overhead ms", ">", lambda r: f"{r['overhead_p50_ms']:.1f}"),
    ("p50 ms", ">", lambda r: f"{r['wall_p50_ms']:.1f}"),
    ("p90 ms", ">", lambda r: f"{r['wall_p90_ms']:.1f}"),
    ("max ms", ">", lambda r: f"{r['wall_max_ms']:.1f}"),
    ("vcsw/call", ">", lambda r: _fmt(r.get("voluntary_switches_per_call"), 1)),
    ("threads", ">", lambda r: str(r["peak_threads"])),
    ("left", ">", lambda r: f"{r['python_threads_after_close']}/{r['threads_after_close']}"),
    ("RSS MiB", ">", lambda r: f"{r['peak_rss_mb']:.0f}"),
    ("ok/expected", ">", lambda r: f"{r['successes']}/{r['expected']}"),
    ("ready s", ">", lambda r: f"{r['ready_s']:.2f}"),
]

NOTES = (
    "CPU/call = client process CPU (all threads) over the measured rounds / calls; overhead = p50 round wall -\n"
    "model latency; vcsw/call = voluntary context switches per call (a thread gave up the CPU to wait);\n"
    "threads = peak OS threads while rounds run; left = Python / OS threads after close();\n"
    "ready = from init() until all N models callable."
)


def progress_line(record: Record) -> str:
    if "error" in record:
        return f"{record['client']:<12} ERROR: {record['error']}"
    return (
        f"{record['client']:<12} p50 {record['wall_p50_ms']:8.1f} ms  overhead {record['overhead_p50_ms']:7.1f} ms  "
        f"CPU/call {record['cpu_per_call_us']:6.0f} us  ok {record['successes']}/{record['expected']}  "
        f"ready {record['ready_s']:.2f} s"
    )


def _rows(records: Sequence[Record]) -> list[list[str]]:
    order = {name: index for index, name in enumerate(CLIENTS)}
    rows = []
    for record in sorted(results(records), key=lambda r: (r["n"], r["latency_ms"], order.get(r["client"], 99))):
        if "error" in record:
            rows.append([record["client"], str(record["n"]), f"{record['latency_ms']:g}", "ERROR: " + record["error"]])
        else:
            rows.append([cell(record) for _, _, cell in COLUMNS])
    return rows


def _align(rows: list[list[str]]) -> str:
    width = len(COLUMNS)
    widths = [max(len(row[i]) for row in rows if len(row) == width) for i in range(width)]
    lines = []
    for row in rows:
        if len(row) != width:
            lines.append("  ".join(row))
            continue
        cells = [f"{text:{COLUMNS[i][1]}{widths[i]}}" for i, text in enumerate(row)]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _ratio_rows(records: Sequence[Record]) -> list[list[str]]:
    header = [
        "N", "lat ms", "CPU / floor B", "CPU / reference", "overhead / floor B", "overhead / reference",
        "ready / reference", "reference CPU / raw-aio",
    ]  # fmt: skip
    keys = (
        "cpu_vs_floor_b", "cpu_vs_reference", "overhead_vs_floor_b", "overhead_vs_reference", "ready_vs_reference",
        "reference_cpu_vs_floor_aio",
    )  # fmt: skip
    rows = [header]
    for ratio in (record for record in records if record.get("kind") == "ratio"):
        rows.append([str(ratio["n"]), f"{ratio['latency_ms']:g}", *(_fmt(ratio.get(key)) for key in keys)])
    return rows


def _headline_rows(records: Sequence[Record]) -> list[list[str]]:
    """CPU per call (us) of every client, a row per case: the figure to read first."""
    rows = [["N", "lat ms", *CLIENTS]]
    for case in cases(records):
        figures = [find(records, name, case) for name in CLIENTS]
        rows.append([str(case[0]), f"{case[1]:g}", *(_fmt(_figure(r, "cpu_per_call_us"), 0) for r in figures)])
    return rows


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)) for row in rows)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def cpu_breakdown(records: Sequence[Record]) -> str:
    """Where each client's CPU per call went, by thread, at the largest N (the first latency)."""
    all_cases = cases(records)
    if not all_cases:
        return ""
    case = max(all_cases, key=lambda c: (c[0], -c[1]))
    lines = [f"Client CPU per call by thread at N={case[0]}, latency {case[1]:g} ms (us):"]
    for client in CLIENTS:
        record = find(records, client, case)
        if record is None or "cpu_by_thread_s" not in record:
            continue
        calls = record["expected"]
        parts = [
            f"{name} {seconds / calls * 1e6:.0f}"
            for name, seconds in record["cpu_by_thread_s"].items()
            if seconds / calls * 1e6 >= 1 and name != "bench-thread-sampler"
        ]
        lines.append(f"  {client:<12} {record['cpu_per_call_us']:4.0f} = " + " + ".join(parts[:5]))
        if "nodes_cpu_s" in record:
            node_calls = (record["warmup"] * record.get("passes", 1) + record["rounds"]) * record["n"]
            lines[-1] += f"   (nodes: {record['nodes_cpu_s'] / node_calls * 1e6:.0f} per call, start-up included)"
    return "\n".join(lines) if len(lines) > 1 else ""


def _run_header(records: Sequence[Record]) -> str:
    """One line on how and where the run was made, or nothing."""
    for run in (record for record in records if record.get("kind") == "run"):
        load_start = run.get("loadavg_at_start", math.nan)
        load_end = run.get("loadavg_at_end", math.nan)
        return (
            f"preset {run['preset']}: {run['warmup']} warm-up + {run['rounds']} measured rounds, "
            f"{run.get('passes', 1)} passes; {run['cpus']} CPUs, Python {run['python']}, "
            f"commit {run['commit'] or '?'}; load average {load_start:.1f} at start, {load_end:.1f} at end\n\n"
        )
    return ""


def render(records: Sequence[Record]) -> str:
    """The whole text report: the CPU headline, figures, ratios, goals."""
    headline = f"Client CPU per call, us (lower is better):\n{_table(_headline_rows(records))}"
    figures = _align([[name for name, _, _ in COLUMNS], *_rows(records)])
    goal_text = "\n".join(
        f"[{_verdict(goal['met'])}] {goal['goal']}\n      {goal['detail']}"
        for goal in records
        if goal.get("kind") == "goal"
    )
    breakdown = cpu_breakdown(records)
    breakdown = f"\n\n{breakdown}" if breakdown else ""
    ratios = f"mrclient ratios (lower is better):\n{_table(_ratio_rows(records))}"
    return (
        f"{_run_header(records)}{headline}\n\n{figures}\n\n{NOTES}{breakdown}\n\n{ratios}\n\nGoals:\n{goal_text}"
    )


def rst(records: Sequence[Record]) -> str:
    """The figures, ratios and goals as reStructuredText tables, for docs/performance.rst."""

    def csv_table(title: str, rows: list[list[str]]) -> str:
        def line(row: list[str]) -> str:
            return ", ".join('"' + cell.replace('"', '""') + '"' for cell in row)

        body = "\n".join(f"   {line(row)}" for row in rows[1:])
        return f".. csv-table:: {title}\n   :header: {line(rows[0])}\n\n{body}"

    figures = [[name for name, _, _ in COLUMNS], *(row for row in _rows(records) if len(row) == len(COLUMNS))]
    goal_rows = [["goal", "verdict", "figures"]] + [
        [goal["goal"], _verdict(goal["met"]), goal["detail"]] for goal in records if goal.get("kind") == "goal"
    ]
    return "\n\n".join(
        [
            csv_table("Client CPU per call, us (lower is better)", _headline_rows(records)),
            csv_table("Figures per client and case", figures),
            csv_table("mrclient ratios (lower is better)", _ratio_rows(records)),
            csv_table("Goals", goal_rows),
        ]
    )


# -- plot --------------------------------------------------------------------------------------


def plot(records: Sequence[Record], path: Path) -> bool:
    """Round overhead p50 against N, one line per client, one panel per latency; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    latencies = sorted({latency for _, latency in cases(records)})
    if not latencies:
        return False
    figure, axes = plt.subplots(1, len(latencies), figsize=(6 * len(latencies), 4.5), squeeze=False)
    for axis, latency in zip(axes[0], latencies, strict=True):
        for client in CLIENTS:
            points = sorted(
                (record["n"], record["overhead_p50_ms"])
                for record in results(records)
                if record["client"] == client and record["latency_ms"] == latency and "error" not in record
            )
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=client)
        axis.set_xscale("log")
        axis.set_yscale("log")
        ns = sorted({n for n, _ in cases(records)})
        axis.set_xticks(ns, [str(n) for n in ns])
        axis.set_xlabel("models (N)")
        axis.set_ylabel("round overhead p50 (ms, log scale)")
        axis.set_title(f"model latency {latency:g} ms")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle("Round overhead (p50 wall time - model latency), lower is better")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


# -- command line ------------------------------------------------------------------------------


def load(path: Path) -> list[Record]:
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a results.jsonl written by benchmarks.run")
    parser.add_argument("--rst", action="store_true", help="print reStructuredText tables instead")
    parser.add_argument("--plot", type=Path, help="write the overhead plot to this PNG")
    args = parser.parse_args(argv)
    records = load(args.results)
    if not any(record.get("kind") == "goal" for record in records):
        records += ratios(records)
        records += goals(records)
    print(rst(records) if args.rst else render(records))
    if args.plot is not None and not plot(records, args.plot):
        raise SystemExit("matplotlib is not installed")


if __name__ == "__main__":
    main()
