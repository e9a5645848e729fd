"""The ``mrclient`` command with Ctrl-C landing where its main thread cannot hear it: ``python _cli_signal_child.py MODE ARGS...``.

For tests/test_cli_signals.py. Python runs a signal's handler on the main
thread, and a main thread blocked on a lock wakes for it only if the signal
interrupts that wait. On a busy machine the signal can land just before the
thread blocks, or on another thread of the process; the handler then waits
with the main thread (a whole ``--init-timeout``). This child makes that
happen every time. MODE:

* ``other-thread``: a thread started first keeps SIGINT and SIGTERM
  deliverable, then the main thread blocks both (as do the threads it starts
  later), so the kernel hands every such signal to that thread, never to the
  main thread's waits;
* ``blocked``: the process starts with both blocked on every thread, as when
  a parent's signal mask is inherited.

The command must still end at once.
"""

from __future__ import annotations

import signal
import sys
import threading

from mrclient import cli

#: How long the receiving thread lives (it is a daemon: the process ends without it).
LIFETIME = 600.0
SIGNALS = {signal.SIGINT, signal.SIGTERM}


def main(mode: str, argv: list[str]) -> int:
    if mode == "other-thread":
        started = threading.Event()

        def receive_signals() -> None:
            started.set()
            threading.Event().wait(LIFETIME)

        threading.Thread(target=receive_signals, name="signal-receiver", daemon=True).start()
        started.wait(LIFETIME)
    elif mode != "blocked":
        raise SystemExit(f"unknown mode {mode!r}")
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
