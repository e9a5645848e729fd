"""The measuring loop every benchmark client runs in its own process.

A client is a small ``Driver`` (init, one round, close) around one way of
calling N models. ``run_client`` times its ``init()`` until every model is
callable, runs the warm-up rounds, then measures the rounds (wall time of
each, process CPU time over all of them, peak threads while they run), closes
it, counts what it left behind, and prints one result line that the parent
(``benchmarks.run``) reads.

With ``BENCH_PROFILE_HANDSHAKE=1`` in its environment (``benchmarks.profile``)
it prints ``ROUNDS_MARKER`` before the measured rounds and ``ROUNDS_END_MARKER``
after them, each time waiting for a line on its standard input, so that a
profiler attached in between samples the rounds and nothing else.

Standard library only: the reference client's driver runs in its own virtual
environment, where mrclient is not installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from ..measure import (
    ThreadSampler,
    context_switches,
    cpu_by_thread,
    os_thread_count,
    peak_rss_mb,
    percentile,
    thread_cpu_seconds,
)

#: Pause between the warm-up and the measured rounds, seconds.
SETTLE_S = 0.5

#: The parent looks for the line that starts with this marker on the client's stdout.
RESULT_MARKER = "BENCH-RESULT "
#: The environment variable, and the lines around the measured rounds, of a profiler's handshake.
PROFILE_HANDSHAKE = "BENCH_PROFILE_HANDSHAKE"
ROUNDS_MARKER = "BENCH-ROUNDS-START"
ROUNDS_END_MARKER = "BENCH-ROUNDS-END"


def _handshake(marker: str) -> None:
    """Tell a profiler where the rounds begin or end, and wait until it is ready (no-op otherwise)."""
    if os.environ.get(PROFILE_HANDSHAKE):
        print(marker, flush=True)
        sys.stdin.readline()


@dataclasses.dataclass
class ClientConfig:
    """Everything a client process needs, passed as a JSON file."""

    client: str
    n: int
    latency_ms: float
    warmup: int
    rounds: int
    timeout: float
    ready_timeout: float
    crunch_id: str
    orchestrator_host: str
    orchestrator_port: int
    endpoints: list[tuple[str, int]]
    base_classname: str = "benchmarks.BenchModel"
    method: str = "tick"
    #: Keyword arguments for the client's constructor beyond the usual (mrclient's, e.g. from benchmarks.profile).
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: "rounds" (the fan-out benchmark); or the ``map`` case (``benchmarks.map_case``): "loop", the ``rounds``
    #: inputs one round each, or "map", all of them in one ``map`` (mrclient only), timed as a whole.
    mode: str = "rounds"

    def dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(dataclasses.asdict(self), file)

    def runner_arguments(self) -> dict[str, Any]:
        """The arguments of every client's ``DynamicSubclassModelConcurrentRunner`` (the same names); no reports."""
        return dict(timeout=self.timeout, crunch_id=self.crunch_id, host=self.orchestrator_host,
                    port=self.orchestrator_port, base_classname=self.base_classname, report_failure=False)

    @classmethod
    def load(cls, path: str) -> ClientConfig:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        data["endpoints"] = [(host, int(port)) for host, port in data["endpoints"]]
        return cls(**data)


class Driver(Protocol):
    """One way of calling every model; constructed, initialised, used for rounds, closed."""

    def init(self) -> None:
        """Connect and return once all ``config.n`` models are callable (or raise)."""

    def round(self, payload: dict[str, Any]) -> int:
        """Call ``config.method`` with ``payload`` on every model; the number of correct answers.

        An answer is correct when the model succeeded and echoed ``payload``.
        """

    def close(self) -> None:
        """Release everything: connections, threads, event loops."""


class MapDriver(Driver, Protocol):
    """A driver that also maps: every payload to every model, each model alone, in one call."""

    def map(self, payloads: Sequence[dict[str, Any]]) -> int:
        """The number of correct answers, over every payload and model (as ``round`` counts them)."""


def make_payload(round_number: int) -> dict[str, Any]:
    """The one JSON argument of a round: small, like a coordinator's tick."""
    return {
        "round": round_number,
        "asset": "BTC",
        "features": [round(round_number * 0.25 + k * 0.125, 3) for k in range(8)],
    }


def _python_threads_left(settle: float) -> list[str]:
    """Names of Python threads other than the main one and the sampler, after ``settle`` seconds at most."""
    deadline = time.monotonic() + settle
    while True:
        others = [
            thread.name
            for thread in threading.enumerate()
            if thread is not threading.main_thread() and thread.name != "bench-thread-sampler"
        ]
        if not others or time.monotonic() >= deadline:
            return others
        time.sleep(0.05)


def run_client(make_driver: Callable[[ClientConfig], Driver], argv: Sequence[str] | None = None) -> None:
    """Parse ``--config``, measure one driver, print the result line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="JSON file written by benchmarks.run")
    config = ClientConfig.load(parser.parse_args(argv).config)
    if config.mode != "rounds":
        _run_sequence(make_driver, config)
        return

    sampler = ThreadSampler()
    sampler.start()
    threads_before = os_thread_count() - 1
    try:
        started = time.perf_counter()
        driver = make_driver(config)
        try:
            driver.init()
            ready_s = time.perf_counter() - started
            threads_ready = os_thread_count() - 1

            warmup_ok = sum(driver.round(make_payload(-1 - i)) for i in range(config.warmup))
            # Let start-up threads end (gRPC's connectivity watchers poll for up to 0.2 s
            # after their last subscriber leaves): the peak counts a round's threads.
            time.sleep(SETTLE_S)

            walls: list[float] = []
            successes = 0
            _handshake(ROUNDS_MARKER)
            sampler.reset_peak()
            threads_cpu_before = thread_cpu_seconds()
            sampler_cpu, sampler_switches = sampler.cpu_seconds, sampler.switches
            switches_before = context_switches()
            cpu_started = time.process_time()
            for number in range(config.rounds):
                payload = make_payload(number)
                round_started = time.perf_counter()
                successes += driver.round(payload)
                walls.append(time.perf_counter() - round_started)
            process_cpu_s = time.process_time() - cpu_started
            switches = [
                after - before - own
                for after, before, own in zip(
                    context_switches(), switches_before, sampler.switches_since(sampler_switches), strict=True
                )
            ]
            _handshake(ROUNDS_END_MARKER)
            cpu_s = process_cpu_s - (sampler.cpu_seconds - sampler_cpu)
            threads_cpu = cpu_by_thread(threads_cpu_before, thread_cpu_seconds(), process_cpu_s)
            peak_threads = sampler.peak
            threads_at_peak = sampler.census
        finally:
            driver.close()
        python_threads_left = _python_threads_left(settle=2.0)
        threads_after_close = os_thread_count() - 1
    finally:
        sampler.stop()

    calls = config.n * config.rounds
    latency_s = config.latency_ms / 1000.0
    p50 = percentile(walls, 0.5)
    record = {
        "kind": "result",
        "client": config.client,
        "n": config.n,
        "latency_ms": config.latency_ms,
        "warmup": config.warmup,
        "rounds": config.rounds,
        "wall_p50_ms": p50 * 1000,
        "wall_p90_ms": percentile(walls, 0.9) * 1000,
        "wall_max_ms": max(walls) * 1000,
        "overhead_p50_ms": (p50 - latency_s) * 1000,
        "cpu_per_call_us": cpu_s / calls * 1e6,
        "cpu_s": cpu_s,
        "cpu_by_thread_s": threads_cpu,
        "voluntary_switches_per_call": switches[0] / calls,
        "involuntary_switches_per_call": switches[1] / calls,
        "peak_threads": peak_threads,
        "threads_at_peak": threads_at_peak,
        "threads_before_init": threads_before,
        "threads_ready": threads_ready,
        "threads_after_close": threads_after_close,
        "python_threads_after_close": len(python_threads_left),
        "python_threads_left": python_threads_left[:10],
        "peak_rss_mb": peak_rss_mb(),
        "successes": successes,
        "expected": calls,
        "warmup_successes": warmup_ok,
        "warmup_expected": config.n * config.warmup,
        "ready_s": ready_s,
        "walls_ms": [wall * 1000 for wall in walls],
    }
    print(RESULT_MARKER + json.dumps(record), flush=True)


def _run_sequence(make_driver: Callable[[ClientConfig], Driver], config: ClientConfig) -> None:
    """The ``map`` case: ``config.rounds`` inputs as a loop of rounds, or as one map; wall and CPU of the whole."""
    started = time.perf_counter()
    driver = make_driver(config)
    try:
        driver.init()
        ready_s = time.perf_counter() - started

        def run(payloads: list[dict[str, Any]]) -> int:
            if config.mode == "map":
                return cast(MapDriver, driver).map(payloads)
            return sum(driver.round(payload) for payload in payloads)

        warmup_ok = run([make_payload(-1 - i) for i in range(config.warmup)])
        time.sleep(SETTLE_S)
        payloads = [make_payload(i) for i in range(config.rounds)]
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        successes = run(payloads)
        wall_s, cpu_s = time.perf_counter() - wall_started, time.process_time() - cpu_started
    finally:
        driver.close()
    calls = config.n * config.rounds
    record = {
        "kind": "result",
        "client": config.client,
        "mode": config.mode,
        "n": config.n,
        "inputs": config.rounds,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "cpu_per_call_us": cpu_s / calls * 1e6,
        "successes": successes,
        "expected": calls,
        "warmup_successes": warmup_ok,
        "warmup_expected": config.n * config.warmup,
        "ready_s": ready_s,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(RESULT_MARKER + json.dumps(record), flush=True)
