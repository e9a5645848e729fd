"""A thread pool for work that comes in bursts, whose threads leave when it runs dry.

Runner setups come in bursts (the first snapshot, an orchestrator restart, a
redeploy wave) and need many threads while they last: a setup mostly waits on
the network, and a dead node's retries wait out their backoff. Between bursts
no setup thread should stay behind, so that a round's threads are the round's
own. A ``ThreadPoolExecutor`` keeps its threads until shut down; this wraps one
and retires it each time its last task ends, starting a fresh one on the next
submit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)


class BurstPool:
    """Runs tasks on up to ``max_workers`` threads; no thread outlives a burst."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self.max_workers = max_workers
        self.thread_name_prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._retired: ThreadPoolExecutor | None = None  # the last drained pool, its threads exiting
        self._running = 0
        self._closed = False

    def submit(self, task: Callable[..., Any], *args: Any) -> None:
        """Run ``task(*args)``; RuntimeError once the pool is closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.thread_name_prefix)
            self._running += 1
            pool = self._pool
        pool.submit(self._run, task, args)

    def _run(self, task: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            task(*args)
        except Exception:
            logger.exception("task %r failed", task)
        finally:
            self._task_done()

    def _task_done(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running or self._pool is None:
                return
            drained, self._pool = self._pool, None
            previous, self._retired = self._retired, drained
        drained.shutdown(wait=False)  # its idle threads exit now, this one after returning
        if previous is not None:
            previous.shutdown(wait=True)  # long drained: its threads are gone or going

    def close(self) -> None:
        """Cancel tasks not started, wait for those running; idempotent."""
        with self._lock:
            self._closed = True
            pools = [pool for pool in (self._pool, self._retired) if pool is not None]
            self._pool = self._retired = None
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
