"""Run the predict service on the embedded local crunch: ``python -m examples.coordinator``.

SIGTERM (``docker stop``, Kubernetes) and SIGINT (Ctrl-C) close the runner
from the signal handler, which is safe even in the middle of a round: the
service stops at once, prints its summary and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from mrclient import DynamicSubclassModelConcurrentRunner

from .local_crunch import CRUNCH_ID, LocalCrunch
from .participants import BASE_CLASSNAME
from .service import PredictService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.coordinator", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="number of prices (0: until SIGTERM or Ctrl-C)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between two steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mrclient.testing").setLevel(logging.ERROR)  # the nodes' side: the flaky model's tracebacks

    stop = threading.Event()
    with LocalCrunch() as crunch:
        # In production: crunch_id, host and port come from CrunchDAO (port may be os.environ["..."]).
        runner = DynamicSubclassModelConcurrentRunner(
            timeout=5, crunch_id=CRUNCH_ID, host="127.0.0.1", port=crunch.port, base_classname=BASE_CLASSNAME,
        )

        def shut_down(signum: int, frame: FrameType | None) -> None:
            stop.set()
            runner.close()  # safe in a handler: the round under way returns at once

        signal.signal(signal.SIGTERM, shut_down)
        signal.signal(signal.SIGINT, shut_down)
        with runner:  # init(), and close() at the end (it waits for a close() the handler began)
            service = PredictService(runner)
            service.run(crunch.prices(args.steps), stop, args.interval)
        print(service.summary())
        print(f"stopped by {'a signal' if stop.is_set() else 'the end of the prices'}; the runner is closed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
