"""The ``mrclient`` command as a process, its output read line by line, every wait bounded; killed by PID after the test."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from conftest import TESTS

CHILD = TESTS / "_cli_signal_child.py"
WAIT = 60.0  # bound of every wait on the process (it starts Python and gRPC)


class Process:
    """The command as a process; its standard output and error read line by line on threads, each wait bounded."""

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self.readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.popen.stdout, self.out), (self.popen.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: object, lines: queue.Queue[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line)

    def line_with(self, lines: queue.Queue[str], text: str) -> str:
        deadline = time.monotonic() + WAIT
        while (remaining := deadline - time.monotonic()) > 0:
            line = lines.get(timeout=remaining)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {WAIT}s")

    def stop_with(self, signum: int) -> tuple[int, float]:
        """Send ``signum``; the exit status and how long the process took to end."""
        started = time.monotonic()
        self.popen.send_signal(signum)
        status = self.popen.wait(WAIT)
        return status, time.monotonic() - started

    def stderr(self) -> str:
        for reader in self.readers:
            reader.join(WAIT)
        return "".join(self.err.queue)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(WAIT)
        for reader in self.readers:
            reader.join(WAIT)


@pytest.fixture(name="run")
def run_fixture() -> Iterator[Callable[..., Process]]:
    """Factory: ``run(*argv, child=None)`` starts ``mrclient ARGV`` (through ``_cli_signal_child.py`` in that mode)."""
    started: list[Process] = []

    def start(*argv: str, child: str | None = None) -> Process:
        command = [sys.executable, str(CHILD), child] if child else [sys.executable, "-m", "mrclient"]
        process = Process([*command, *argv])
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


