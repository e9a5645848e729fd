"""The benchmark cluster of one case: node shard processes and a LocalOrchestrator announcing them.

The parent process (``benchmarks.run``) owns it for the duration of one case
(N endpoints, one model latency) and runs each client against it in turn.
Every shard is a ``benchmarks.nodes`` process; it stops when its standard
input closes, so even a crash of the parent leaves no server behind.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from mrclient.testing import LocalOrchestrator

#: Endpoints per shard process above which another shard is added (up to MAX_SHARDS).
ENDPOINTS_PER_SHARD = 250
MAX_SHARDS = 4


def default_shards(count: int) -> int:
    return max(1, min(MAX_SHARDS, math.ceil(count / ENDPOINTS_PER_SHARD)))


def split(count: int, shards: int) -> list[int]:
    """``count`` endpoints over ``shards`` processes, as evenly as possible."""
    base, extra = divmod(count, shards)
    return [base + (1 if index < extra else 0) for index in range(shards) if base or index < extra]


def _read_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line from a pipe, or TimeoutError at ``deadline`` (time.monotonic)."""
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not buffer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError("no answer from a node shard in time")
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                raise RuntimeError("a node shard exited before listening")
            buffer += chunk
    return buffer


class NodeShards:
    """``count`` benchmark endpoints served by a few ``benchmarks.nodes`` processes."""

    def __init__(
        self,
        count: int,
        latency_ms: float,
        shards: int | None = None,
        host: str = "127.0.0.1",
        log_dir: Path | None = None,
        latency_max_ms: float | None = None,
        seed: int = 0,
    ) -> None:
        self.count = count
        self.latency_ms = latency_ms
        #: Draw each call's latency between ``latency_ms`` and this (``benchmarks.nodes.drawn_latency``).
        self.latency_max_ms = latency_max_ms
        self.seed = seed
        self.shards = shards or default_shards(count)
        self.host = host
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def start(self, timeout: float = 60.0) -> list[int]:
        deadline = time.monotonic() + timeout
        try:
            for index, size in enumerate(split(self.count, self.shards)):
                self.processes.append(self._spawn(index, size))
            for process in self.processes:
                assert process.stdout is not None
                line = _read_line(process.stdout, deadline)
                self.ports.extend(int(port) for port in json.loads(line)["ports"])
        except BaseException:
            self.stop()
            raise
        return self.ports

    def _spawn(self, index: int, size: int) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "benchmarks.nodes",
            "--count", str(size), "--latency-ms", str(self.latency_ms), "--host", self.host,
        ]  # fmt: skip
        if self.latency_max_ms is not None:
            command += ["--latency-max-ms", str(self.latency_max_ms), "--seed", str(self.seed)]
        stderr: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            stderr = open(self.log_dir / f"nodes-{self.count}-{self.latency_ms:g}ms-{index}.log", "ab")
        try:
            return subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=_repo_root()
            )
        finally:
            if not isinstance(stderr, int):
                stderr.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time the shard processes used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for process in self.processes:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every shard: close its stdin, then SIGTERM, then SIGKILL, each bounded."""
        for process in self.processes:
            if process.stdin is not None and not process.stdin.closed:
                process.stdin.close()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=2)
            if process.stdout is not None:
                process.stdout.close()
        self.processes.clear()


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


class BenchCluster:
    """Node shards plus a LocalOrchestrator whose crunch lists every endpoint as RUNNING."""

    def __init__(
        self,
        count: int,
        latency_ms: float,
        shards: int | None = None,
        crunch_id: str = "bench",
        host: str = "127.0.0.1",
        log_dir: Path | None = None,
        latency_max_ms: float | None = None,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.crunch_id = crunch_id
        self.nodes = NodeShards(count, latency_ms, shards, host, log_dir, latency_max_ms, seed)
        self.orchestrator: LocalOrchestrator | None = None

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [(self.host, port) for port in self.nodes.ports]

    @property
    def orchestrator_port(self) -> int:
        assert self.orchestrator is not None, "the cluster is not started"
        return int(self.orchestrator.port)

    def start(self) -> BenchCluster:
        try:
            ports = self.nodes.start()
            self.orchestrator = LocalOrchestrator(crunch_id=self.crunch_id, host=self.host, port=0)
            self.orchestrator.start()
            for index, port in enumerate(ports):
                self.orchestrator.add_model(host=self.host, port=port, name=f"bench-model-{index}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            if self.orchestrator is not None:
                self.orchestrator.stop()
                self.orchestrator = None
        finally:
            self.nodes.stop()

    def __enter__(self) -> BenchCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__: Sequence[str] = ["BenchCluster", "NodeShards", "default_shards", "split"]
