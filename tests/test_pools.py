"""BurstPool: many threads during a burst, none after it."""

from __future__ import annotations

import threading

import pytest

from mrclient.cluster.pools import BurstPool

WAIT = 10.0


def pool_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def threads_left(prefix: str) -> list[threading.Thread]:
    """The pool's threads still alive after each was given WAIT seconds to end."""
    for thread in pool_threads(prefix):
        thread.join(WAIT)
    return pool_threads(prefix)


def test_a_burst_runs_in_parallel_and_leaves_no_thread() -> None:
    pool = BurstPool(8, thread_name_prefix="burst-a")
    barrier = threading.Barrier(9, timeout=WAIT)  # only passes if 8 tasks run at once
    for _ in range(8):
        pool.submit(barrier.wait)
    barrier.wait()
    assert len(pool_threads("burst-a")) == 8
    assert threads_left("burst-a") == []

    # A second burst starts fresh threads, and they leave too.
    second = threading.Event()
    pool.submit(second.set)
    assert second.wait(WAIT)
    assert threads_left("burst-a") == []
    pool.close()


def test_a_failing_task_is_logged_and_the_pool_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = BurstPool(2, thread_name_prefix="burst-b")
    ran = threading.Event()
    pool.submit(lambda: 1 / 0)
    pool.submit(ran.set)
    assert ran.wait(WAIT)
    pool.close()
    assert any("failed" in record.getMessage() for record in caplog.records)


def test_close_cancels_waiting_tasks_and_joins_running_ones() -> None:
    pool = BurstPool(1, thread_name_prefix="burst-c")
    started, release = threading.Event(), threading.Event()
    ran_second = threading.Event()
    pool.submit(lambda: (started.set(), release.wait(WAIT)))
    pool.submit(ran_second.set)
    assert started.wait(WAIT)
    closer = threading.Thread(target=pool.close)
    closer.start()
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive() and not ran_second.is_set()
    assert not pool_threads("burst-c")
    with pytest.raises(RuntimeError):
        pool.submit(ran_second.set)
