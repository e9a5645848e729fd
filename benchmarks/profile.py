"""Profile one client's rounds with py-spy against a benchmark cluster.

::

    .venv-bench/bin/python -m benchmarks.profile --client mrclient --n 1000 --latency-ms 0

Starts the cluster of one case and the client, and once the client's
warm-up is over attaches ``py-spy record`` to it (sampling every thread,
without pausing the process) for the measured rounds only: the client waits
at each end of its rounds (``BENCH_PROFILE_HANDSHAKE``) until the profiler is
on, then off. It prints the frames where the rounds spend their samples: by
their own time and including what they call. ``--gil`` keeps only the
samples of the thread holding the GIL (where Python's CPU goes); ``--idle``
adds threads that wait, which shows who waits on which lock. The collapsed
stacks are kept for a flame graph (``--out``; open them with speedscope or
flamegraph.pl). Time in gRPC core's own threads has no Python frame: see the
client's ``cpu_by_thread_s`` figures in a benchmark run for it.

Attaching needs the right to trace a sibling process (root, or Linux's
``kernel.yama.ptrace_scope`` at 0); ``--whole-run`` instead runs the client
under py-spy from its start, start-up and shutdown stacks filtered out.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import IO

from . import reference_venv
from .clients import CLIENTS
from .clients.common import PROFILE_HANDSHAKE, ROUNDS_END_MARKER, ROUNDS_MARKER, ClientConfig
from .cluster import BenchCluster

REPO = Path(__file__).resolve().parent.parent
#: Frames that mark a sample as start-up (imports, connecting) or shutdown rather than a round.
NOT_A_ROUND = ("_find_and_load", "init (", "_set_up", "connect_and_setup", "_wait_until_ready", "Retrying", "close (")


def in_observability_check(frames: Sequence[str]) -> bool:
    """Whether a stack is in gRPC's per-call observability check, which takes one process-wide lock.

    Every unary call takes ``grpc._observability``'s lock twice (through ``get_plugin``): when
    Cython's ``segregated_call`` creates the call (a ``contextlib`` frame right under
    ``grpc/_channel.py``, the Cython frame being invisible) and when ``_handle_event`` ends it
    (``maybe_record_rpc_latency``).
    """
    if any("grpc/_observability.py" in frame for frame in frames):
        return True
    return any("grpc/_channel.py" in outer and "contextlib.py" in inner for outer, inner in pairwise(frames))


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def summarize(collapsed: Path, top: int) -> str:
    """The frames with the most samples in rounds: self time, then inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = observability = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if frame]
        if not frames or any(marker in frame for frame in frames for marker in NOT_A_ROUND):
            continue
        count = int(count_text)
        total += count
        observability += count if in_observability_check(frames) else 0
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no samples in rounds"
    lines = [f"{total} samples in rounds; {observability / total:.1%} in gRPC's observability check (get_plugin)"]
    lines += ["", "self:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]
    return "\n".join(lines)


def _wait_for_line(stream: IO[str], wanted: str, deadline: float) -> None:
    """Read ``stream`` until a line holding ``wanted``; TimeoutError at ``deadline``."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            if not selector.select(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no {wanted!r} from the client in time")
            line = stream.readline()
            if not line:
                raise RuntimeError(f"the client ended before {wanted!r}")
            if wanted in line:
                return


def profile_rounds(client: list[str], py_spy_options: list[str], collapsed: Path, timeout: float) -> str:
    """Run ``client``, profile its measured rounds only (see the module's docstring); its stderr tail."""
    deadline = time.monotonic() + timeout
    environment = {**os.environ, PROFILE_HANDSHAKE: "1"}
    with subprocess.Popen(
        client, cwd=REPO, env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        spy: subprocess.Popen[str] | None = None
        try:
            _wait_for_line(process.stdout, ROUNDS_MARKER, deadline)
            spy = subprocess.Popen(
                [*py_spy_options, "--pid", str(process.pid)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            assert spy.stdout is not None
            _wait_for_line(spy.stdout, "Sampling process", deadline)
            process.stdin.write("go\n")
            process.stdin.flush()
            _wait_for_line(process.stdout, ROUNDS_END_MARKER, deadline)
            spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
            spy.communicate(timeout=60)
            process.stdin.write("go\n")
            process.stdin.flush()
            _, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            for child in (spy, process):
                if child is not None and child.poll() is None:
                    child.kill()
                    child.wait(timeout=10)
    return stderr[-2000:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", choices=sorted(CLIENTS), default="mrclient")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gil", action="store_true", help="only samples of the thread holding the GIL")
    parser.add_argument("--idle", action="store_true", help="include threads that wait")
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME=JSON",
        help="a constructor argument of mrclient's runner, e.g. round_switch_interval=null",
    )  # fmt: skip
    parser.add_argument("--whole-run", action="store_true", help="run under py-spy from the start (no attach)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "profile")
    args = parser.parse_args(argv)

    py_spy = find_py_spy()
    if py_spy is None:
        print("py-spy is not installed: `make bench` puts it in .venv-bench", file=sys.stderr)
        return 2
    spec = CLIENTS[args.client]
    try:
        options = {name: json.loads(value) for name, _, value in (text.partition("=") for text in args.option)}
    except json.JSONDecodeError as error:
        parser.error(f"--option: {error}")
    python = str(reference_venv.ensure()) if spec.reference_venv else sys.executable
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.client}-{args.n}-{args.latency_ms:g}ms" + "-gil" * args.gil + "-idle" * args.idle
    stem += "".join(f"-{name}={value}" for name, value in options.items())
    config_path, collapsed = args.out / f"{stem}.json", args.out / f"{stem}.txt"

    with BenchCluster(args.n, args.latency_ms) as cluster:
        ClientConfig(
            client=args.client, n=args.n, latency_ms=args.latency_ms, warmup=args.warmup, rounds=args.rounds,
            timeout=10.0, ready_timeout=120.0, crunch_id=cluster.crunch_id, orchestrator_host=cluster.host,
            orchestrator_port=cluster.orchestrator_port, endpoints=cluster.endpoints, options=options,
        ).dump(str(config_path))  # fmt: skip
        recorder = [
            py_spy, "record", "--nonblocking", "--rate", str(args.rate), "--format", "raw", "--output", str(collapsed),
            *(["--gil"] if args.gil else []), *(["--idle"] if args.idle else []),
        ]  # fmt: skip
        client = [python, "-m", spec.module, "--config", str(config_path)]
        collapsed.unlink(missing_ok=True)
        if args.whole_run:
            done = subprocess.run([*recorder, "--", *client], cwd=REPO, capture_output=True, text=True, timeout=900)
            log = done.stdout[-2000:] + done.stderr[-2000:]
        else:
            log = profile_rounds(client, recorder, collapsed, timeout=900)
    if not collapsed.exists():
        print(log, file=sys.stderr)
        return 1
    print(summarize(collapsed, args.top))
    print(f"\ncollapsed stacks: {collapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
