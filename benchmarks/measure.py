"""What a client process measures about itself: threads, memory, CPU, wall times.

Standard library only: the reference client's driver imports this module from
its own virtual environment, where mrclient is not installed.
"""

from __future__ import annotations

import math
import os
import re
import resource
import threading
import time
from collections import Counter
from collections.abc import Sequence

#: The numbers in a thread's name: "mrclient-call_12" -> "mrclient-call", "Thread-3 (run)" -> "Thread (run)".
_NUMBERED = re.compile(r"(?:[-_ ]?\d+)+(?= \(|$)")


def thread_census(total: int) -> dict[str, int]:
    """Who the ``total`` OS threads are: Python threads by name prefix, the rest as native.

    Native threads are those gRPC core (or another C library) started itself.
    """
    names = Counter(
        _NUMBERED.sub("", thread.name) or thread.name
        for thread in threading.enumerate()
        if thread.name != "bench-thread-sampler"
    )
    names["native (gRPC core)"] = max(0, total - sum(names.values()))
    return dict(names.most_common())


def os_thread_count() -> int:
    """Threads of this process as the kernel counts them (Python's and gRPC core's)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads line in /proc/self/status")


def context_switches(who: int = resource.RUSAGE_SELF) -> tuple[int, int]:
    """Voluntary (a thread waited) and involuntary (the kernel preempted it) context switches so far.

    ``RUSAGE_SELF``: every thread of the process, ended ones included.
    """
    usage = resource.getrusage(who)
    return usage.ru_nvcsw, usage.ru_nivcsw


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation between ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def thread_cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU time of every live thread of this process: native id -> (name, seconds).

    Python threads are named as Python knows them, the others by their kernel
    name (gRPC core's, e.g. ``event_engine``). ``schedstat`` counts nanoseconds,
    where ``stat`` rounds each thread to 10 ms, which loses most of the time of
    a thousand threads that each run a few milliseconds.
    """
    python_names = {thread.native_id: thread.name for thread in threading.enumerate()}
    seconds: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc/self/task"):
        tid = int(entry.name)
        try:
            with open(f"{entry.path}/schedstat", encoding="ascii") as schedstat:
                nanoseconds = int(schedstat.read().split()[0])
            name = python_names.get(tid)
            if name is None:
                with open(f"{entry.path}/comm", encoding="utf-8") as comm:
                    name = "native " + comm.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[tid] = (_NUMBERED.sub("", name) or name, nanoseconds / 1e9)
    return seconds


def cpu_by_thread(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], process_seconds: float
) -> dict[str, float]:
    """CPU seconds spent between two ``thread_cpu_seconds`` snapshots, by thread name.

    Threads that started and ended in between are only in the process's total:
    they show as ``"threads that ended"``.
    """
    spent: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        spent[name] = spent.get(name, 0.0) + seconds - (before[tid][1] if tid in before else 0.0)
    spent["threads that ended"] = max(0.0, process_seconds - sum(spent.values()))
    return {name: round(seconds, 4) for name, seconds in sorted(spent.items(), key=lambda item: -item[1])}


class ThreadSampler:
    """A background thread that records the peak OS thread count of the process.

    Reading ``/proc/self/status`` every few milliseconds costs a few
    microseconds; the sampler keeps its own CPU time and context switches so
    the caller can subtract them from the process's, and its own thread is
    left out of every count.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self._peak = 0
        self._census: dict[str, int] = {}
        self._cpu = 0.0
        self._switches = (0, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-thread-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.thread_time()
            count = os_thread_count() - 1
            with self._lock:
                if count > self._peak:
                    self._peak = count
                    self._census = thread_census(count)
                self._cpu += time.thread_time() - started
                self._switches = context_switches(resource.RUSAGE_THREAD)
            self._stop.wait(self.interval)

    def reset_peak(self) -> None:
        """Start a new observation window: the peak from now on."""
        with self._lock:
            self._peak = os_thread_count() - (1 if self._thread.is_alive() else 0)
            self._census = thread_census(self._peak)

    @property
    def peak(self) -> int:
        with self._lock:
            return self._peak

    @property
    def census(self) -> dict[str, int]:
        """``thread_census`` at the moment of the peak."""
        with self._lock:
            return dict(self._census)

    @property
    def switches(self) -> tuple[int, int]:
        """The sampler's own voluntary and involuntary context switches so far (as last read)."""
        with self._lock:
            return self._switches

    def switches_since(self, before: tuple[int, int]) -> tuple[int, int]:
        """The sampler's own context switches since ``before`` (a ``switches`` value)."""
        now = self.switches
        return now[0] - before[0], now[1] - before[1]

    @property
    def cpu_seconds(self) -> float:
        """CPU time the sampler itself used (to subtract from the process's)."""
        with self._lock:
            return self._cpu
