"""A participant's model: remembers the last payload and predicts from it."""

import socket
import time
from typing import Any

from trackers.base import TrackerBase


class MyTracker(TrackerBase):
    """Stores each payload; ``predict`` returns the last one with a count of ticks."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.last: Any = None
        self.ticks = 0
        self.horizon = 0

    def tick(self, payload: Any, horizon: int = 0) -> None:
        self.last = payload
        self.ticks += 1
        self.horizon = horizon

    def predict(self) -> Any:
        return {"last": self.last, "ticks": self.ticks, "scale": self.scale, "horizon": self.horizon}

    def echo(self, value: Any) -> Any:
        """Return the argument: the node decodes it, then encodes it back with its own codec."""
        return value

    def echo_after(self, value: Any, seconds: float = 0.0) -> Any:
        """Return the argument after ``seconds`` of work: a model whose time varies from input to input."""
        time.sleep(seconds)
        return value

    def hold(self, port: int) -> str:
        """Block until the test releases the call: it sends a word on a socket it listens on."""
        with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
            connection.settimeout(60)
            return connection.recv(64).decode()

    def fail(self) -> None:
        raise RuntimeError("participant bug")
