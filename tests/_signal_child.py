"""A coordinator process for tests/test_shutdown.py: ``python _signal_child.py PORT MODE``.

It connects to the crunch at 127.0.0.1:PORT (the test's LocalOrchestrator),
closes the runner from a SIGTERM handler, and prints one JSON line per stage:
``{"ready": ...}`` once set up, ``{"results": ...}`` when its round (or
``sync()``) returned, and ``{"threads": [...]}``: the threads still running
after ``close()`` and a bounded wait for gRPC's pollers (none, if all is well).

MODE is ``round`` (a round on the model that holds; the test sends SIGTERM
while it runs), ``map`` (a map whose first input holds; likewise: its
results, then ``{"raised": ...}``, what the next step of the map raised),
``sync`` (``sync()``; the test sends SIGTERM) or
``pool-lock`` (the process signals itself while the round holds the call pool's
lock, in ``_pool_for``: where a handler taking that lock would wait forever).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mrclient.concurrent.base
from mrclient import Args, DynamicSubclassModelConcurrentRunner, MrclientError

LEFTOVER_WAIT = 1.0  # gRPC's connectivity pollers end shortly after their channel closes


def say(**what: Any) -> None:
    print(json.dumps(what), flush=True)


def signal_while_holding_the_pool_lock(*args: Any, **kwargs: Any) -> ThreadPoolExecutor:
    """Stands for ThreadPoolExecutor in mrclient.concurrent.base: called under the pool lock, it raises SIGTERM first."""
    signal.raise_signal(signal.SIGTERM)  # the handler runs here, the lock held beneath it
    return ThreadPoolExecutor(*args, **kwargs)


def main(port: int, mode: str) -> None:
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=60, crunch_id="shutdown", host="127.0.0.1", port=port, base_classname="ShutdownBase",
        retry_backoff_factor=0.01,
    )
    signal.signal(signal.SIGTERM, lambda signum, frame: runner.close())
    runner.init(timeout=30)
    say(ready=len(runner.models))
    if mode == "sync":
        runner.sync()
        say(results={})
    elif mode == "map":
        mapped = runner.map("hold", [Args()] * 3)
        results = next(mapped)
        say(results={m.model_name: [r.status.name, r.detail] for m, r in results.items()})
        try:
            next(mapped)
        except MrclientError as error:
            say(raised=str(error))
    else:
        if mode == "pool-lock":
            mrclient.concurrent.base.ThreadPoolExecutor = signal_while_holding_the_pool_lock  # type: ignore[misc]
        results = runner.call("hold")
        say(results={m.model_name: [r.status.name, r.detail] for m, r in results.items()})
    say(closed=runner.closed)
    runner.close()  # the handler's close() returned at once; this one waits for the work to end
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(LEFTOVER_WAIT)
    say(threads=[t.name for t in threading.enumerate() if t is not threading.main_thread()])


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
