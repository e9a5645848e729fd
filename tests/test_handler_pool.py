"""The executor LocalModelNode's gRPC handlers run on: daemon threads, bounded, owned by shutdown()."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from mrclient.testing.handler_pool import HandlerPool

WAIT = 10.0


def test_work_runs_on_at_most_max_workers_daemon_threads() -> None:
    pool = HandlerPool(2, thread_name_prefix="pool-test")
    try:
        names = {pool.submit(lambda: threading.current_thread().name).result(WAIT) for _ in range(20)}
        assert names <= {"pool-test_0", "pool-test_1"}, "idle threads take the next work"
        release = threading.Event()
        held = [pool.submit(release.wait, WAIT) for _ in range(3)]  # the third waits for a free thread
        assert not held[2].done()
        release.set()
        assert all(future.result(WAIT) for future in held)
        assert len(pool.threads) == 2 and all(thread.daemon for thread in pool.threads)
    finally:
        pool.shutdown()
    assert not any(thread.is_alive() for thread in pool.threads)


def test_an_exception_goes_to_the_future_and_the_thread_serves_on() -> None:
    pool = HandlerPool(1, thread_name_prefix="pool-test")
    try:
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(WAIT)
        assert pool.submit(lambda: 42).result(WAIT) == 42
    finally:
        pool.shutdown()


def test_shutdown_without_waiting_leaves_a_busy_thread_to_finish_and_cancels_the_queue() -> None:
    pool = HandlerPool(1, thread_name_prefix="pool-test")
    entered, release = threading.Event(), threading.Event()

    def busy() -> str:
        entered.set()
        release.wait(WAIT)
        return "done"

    running = pool.submit(busy)
    assert entered.wait(WAIT)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    pool.shutdown(wait=False, cancel_futures=True)  # idempotent: the thread is still told to end once
    with pytest.raises(CancelledError):
        queued.result(WAIT)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)
    [thread] = pool.threads
    assert thread.is_alive() and not running.done()
    release.set()
    assert running.result(WAIT) == "done"
    thread.join(WAIT)
    assert not thread.is_alive()
