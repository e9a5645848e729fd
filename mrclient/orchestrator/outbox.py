"""Messages for the orchestrator, each kept until the orchestrator surely has it.

A WebSocket has no acknowledgement: ``send()`` returning only means the bytes
reached our kernel, and a connection that dies a moment later loses them. It
does have ping and pong on one ordered stream, and a pong carries its ping's
payload back. Each message sent gets a sequence number and each ping says the
last number sent. A pong for it proves the orchestrator's WebSocket layer has
read those messages, not yet that it handed them on: a server reads a batch of
frames, sends the pongs they ask for, and only then passes the batch's
messages to its application; if the connection breaks in between, that batch
is gone although a pong left (the ``websockets`` library does this). So a
message counts as delivered only after a second pong, for a ping sent once the
first pong was back: the server has then read past the batch and handed it on.
Each ping therefore carries two numbers: the last message sent, and the last
one the orchestrator was known to have read when the ping left.

Messages not proven when the connection ends go back to the front of the
queue, in order, and are sent again on the next connection before anything
new: delivery is at least once, with a duplicate only when a connection dies
between the orchestrator's receipt and the proof. While the connection has
not had its ``init``, the outbox is held (``hold``): nothing leaves it until
``release`` has let the caller decide, from that init, what is still worth
sending (see ``redelivery``).

Any thread may ``put``; only the connection's thread sends, confirms and
requeues. It does no IO.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

__all__ = ["Outbox"]

_PING_PREFIX = b"mrclient "


class Outbox:
    """Unsent messages, then sent ones awaiting proof of receipt; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unsent: collections.deque[str] = collections.deque()
        self._unconfirmed: collections.deque[tuple[int, str]] = collections.deque()
        self._last_sent = 0  # sequence number of the last message sent, on any connection
        self._last_read = 0  # the last one a pong proved read by the orchestrator's WebSocket layer
        self._held = False  # a new connection awaits its init: nothing is sent

    def __len__(self) -> int:
        """Messages the orchestrator is not known to have: unsent or unconfirmed."""
        with self._lock:
            return len(self._unsent) + len(self._unconfirmed)

    @property
    def unconfirmed(self) -> int:
        """Messages sent on this connection and not yet proven received."""
        with self._lock:
            return len(self._unconfirmed)

    def counts(self) -> tuple[int, int]:
        """``(unsent, unconfirmed)``, read together."""
        with self._lock:
            return len(self._unsent), len(self._unconfirmed)

    def put(self, text: str) -> None:
        with self._lock:
            self._unsent.append(text)

    def peek(self) -> str | None:
        """The next message to send, left in place until ``mark_sent``; None while held."""
        with self._lock:
            return self._unsent[0] if self._unsent and not self._held else None

    @property
    def on_hold(self) -> bool:
        """Whether messages wait for ``release``."""
        with self._lock:
            return self._held

    def hold(self) -> None:
        """A new connection starts: send nothing until ``release``."""
        with self._lock:
            self._held = True

    def release(self, decide: Callable[[list[str]], list[str]]) -> None:
        """Send again: ``decide(waiting)`` (the messages waiting, in order) returns those still to send.

        Decided under the lock, so a message put meanwhile queues behind them, untouched.
        """
        with self._lock:
            self._unsent = collections.deque(decide(list(self._unsent)))
            self._held = False

    def mark_sent(self) -> None:
        """The message ``peek`` gave was written whole: keep it until a pong proves it arrived."""
        with self._lock:
            self._last_sent += 1
            self._unconfirmed.append((self._last_sent, self._unsent.popleft()))

    def ping_payload(self) -> bytes:
        """What to ping with: the last message sent, and the last one known read by the orchestrator."""
        with self._lock:
            return b"%s%d %d" % (_PING_PREFIX, self._last_sent, self._last_read)

    def confirm(self, pong_payload: bytes) -> int:
        """Act on a pong; how many messages it proves delivered. Pongs not ours prove nothing.

        The pong proves read every message its ping said was sent, and
        delivered every message its ping said was read.
        """
        if not pong_payload.startswith(_PING_PREFIX):
            return 0
        try:
            sent, read = (int(number) for number in pong_payload[len(_PING_PREFIX) :].split())
        except ValueError:
            return 0
        confirmed = 0
        with self._lock:
            if not read <= sent <= self._last_sent:
                return 0
            self._last_read = max(self._last_read, sent)
            while self._unconfirmed and self._unconfirmed[0][0] <= read:
                self._unconfirmed.popleft()
                confirmed += 1
        return confirmed

    @property
    def awaiting_second_pong(self) -> bool:
        """Messages are known read but not yet delivered: one more ping will prove it."""
        with self._lock:
            return bool(self._unconfirmed) and self._unconfirmed[0][0] <= self._last_read

    def requeue(self) -> int:
        """The connection ended: unconfirmed messages go back first, in order; how many."""
        with self._lock:
            count = len(self._unconfirmed)
            self._unsent.extendleft(text for _, text in reversed(self._unconfirmed))
            self._unconfirmed.clear()
            return count

    def held(self) -> list[str]:
        """The messages not known delivered, in order (a copy)."""
        with self._lock:
            return [text for _, text in self._unconfirmed] + list(self._unsent)

    def take_all(self) -> list[str]:
        """Empty the outbox (at close): what the orchestrator may never have received, in order."""
        with self._lock:
            texts = [text for _, text in self._unconfirmed] + list(self._unsent)
            self._unconfirmed.clear()
            self._unsent.clear()
            return texts
