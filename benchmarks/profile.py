"""Profile one client's rounds with py-spy against a benchmark cluster.

::

    .venv-bench/bin/python -m benchmarks.profile --client mrclient --n 1000 --latency-ms 0

Starts the cluster of one case, runs the client under ``py-spy record``
(sampling every thread, without pausing the process), and prints the frames
where the rounds spend their samples: by their own time and including what
they call. The collapsed stacks are kept for a flame graph (``--out``; open
them with speedscope or flamegraph.pl). Stacks of start-up and shutdown are
left out of the summary. Time in gRPC core's own threads has no Python frame:
see the client's ``cpu_by_thread_s`` figures in a benchmark run for it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from . import reference_venv
from .clients import CLIENTS
from .clients.common import ClientConfig
from .cluster import BenchCluster

REPO = Path(__file__).resolve().parent.parent
#: Frames that mark a sample as start-up (imports, connecting) or shutdown rather than a round.
NOT_A_ROUND = ("_find_and_load", "init (", "_set_up", "connect_and_setup", "_wait_until_ready", "Retrying", "close (")


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def summarize(collapsed: Path, top: int) -> str:
    """The frames with the most samples in rounds: self time, then inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if frame]
        if not frames or any(marker in frame for frame in frames for marker in NOT_A_ROUND):
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no samples in rounds"
    lines = [f"{total} samples in rounds", "", "self:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", choices=sorted(CLIENTS), default="mrclient")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "profile")
    args = parser.parse_args(argv)

    py_spy = find_py_spy()
    if py_spy is None:
        print("py-spy is not installed: `make bench` puts it in .venv-bench", file=sys.stderr)
        return 2
    spec = CLIENTS[args.client]
    python = str(reference_venv.ensure()) if spec.reference_venv else sys.executable
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.client}-{args.n}-{args.latency_ms:g}ms"
    config_path, collapsed = args.out / f"{stem}.json", args.out / f"{stem}.txt"

    with BenchCluster(args.n, args.latency_ms) as cluster:
        ClientConfig(
            client=args.client, n=args.n, latency_ms=args.latency_ms, warmup=args.warmup, rounds=args.rounds,
            timeout=10.0, ready_timeout=120.0, crunch_id=cluster.crunch_id, orchestrator_host=cluster.host,
            orchestrator_port=cluster.orchestrator_port, endpoints=cluster.endpoints,
        ).dump(str(config_path))  # fmt: skip
        command = [
            py_spy, "record", "--nonblocking", "--rate", str(args.rate), "--format", "raw", "--output", str(collapsed),
            "--", python, "-m", spec.module, "--config", str(config_path),
        ]  # fmt: skip
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not collapsed.exists():
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
        return 1
    print(summarize(collapsed, args.top))
    print(f"\ncollapsed stacks: {collapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
