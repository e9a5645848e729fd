"""An asyncio coordinator for tests/test_aio.py: ``python _aio_signal_child.py PORT``.

Shaped like a production kernel: it runs ``runner.sync()`` as a task, awaits
``runner.init()`` and then one ``runner.call(...)`` per tick, and at shutdown
cancels the sync task (nothing else stops the client). SIGTERM reaches it
through ``loop.add_signal_handler``, which cancels the kernel's task. It prints
one JSON line per stage: ``{"ready": n}``, ``{"round": {...}}`` per tick,
``{"cancelled": true}`` when the signal cut it, ``{"closed": ...}`` and
``{"threads": [...]}``: mrclient's threads still running once ``asyncio.run()``
returned (none, if all is well).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from typing import Any

from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.aio import AsyncRunner
from mrclient.testing.examples import BASE_CLASSNAME


def say(**what: Any) -> None:
    print(json.dumps(what), flush=True)


async def kernel(runner: AsyncRunner[DynamicSubclassModelConcurrentRunner]) -> None:
    sync_task = asyncio.create_task(runner.sync())
    try:
        await runner.init()
        say(ready=len(runner.models))
        while True:
            results = await runner.call("predict", ([], []))
            say(round={model.model_name: result.status.name for model, result in results.items()})
            await asyncio.sleep(0.01)
    finally:
        sync_task.cancel()
        try:
            await sync_task
        except asyncio.CancelledError:
            pass


async def main(port: int) -> AsyncRunner[DynamicSubclassModelConcurrentRunner]:
    runner = AsyncRunner(DynamicSubclassModelConcurrentRunner(
        timeout=1.0, crunch_id="aio", host="127.0.0.1", port=port, base_classname=BASE_CLASSNAME,
        retry_backoff_factor=0.01, init_timeout=30,
    ))
    task = asyncio.create_task(kernel(runner))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        say(cancelled=True)
    return runner


if __name__ == "__main__":
    runner = asyncio.run(main(int(sys.argv[1])))
    say(closed=runner.closed)
    say(threads=[t.name for t in threading.enumerate() if t.name.startswith("mrclient")])
