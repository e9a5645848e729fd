"""A process in a pseudo-terminal of a given size, and its screen as text lines (tests of what the command prints).

The terminal's size is set with ``TIOCSWINSZ`` on the pseudo-terminal, and
``COLUMNS`` and ``LINES`` are removed from the environment, so the process
measures the terminal as it would a real one.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Sequence

WAIT = 60.0  # bound of every wait on the process (it starts Python, gRPC and rich)

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


class Terminal:
    """A process whose standard streams are a pseudo-terminal of a given size; its screen as text lines."""

    def __init__(self, argv: Sequence[str], columns: int = 180, rows: int = 40) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = b""
        self._changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the process closed the terminal
                chunk = b""
            with self._changed:
                if not chunk:
                    self._changed.notify_all()
                    return
                self.output += chunk
                self._changed.notify_all()

    def lines(self) -> list[str]:
        """Every line the process drew so far, escape codes removed."""
        text = _ESCAPE.sub("", self.output.decode("utf-8", "replace"))
        return [line for line in re.split(r"[\r\n]", text) if line.strip()]

    def wait_for(self, predicate: Callable[[list[str]], bool]) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.lines()), WAIT)

    def wait(self) -> int:
        """The exit status, once the process ended by itself; every line it drew is read then."""
        status = self.process.wait(WAIT)
        self.reader.join(WAIT)
        return status

    def interrupt(self) -> int:
        """Ctrl-C; the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(WAIT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)
        self.reader.join(WAIT)
        os.close(self.master)


