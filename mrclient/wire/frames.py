"""The orchestrator's frames, read: bytes in, an event or the reason to skip it out.

A pure function with no state and no IO, so every odd frame a peer can send
(not UTF-8, not JSON, nested past Python's recursion limit, the wrong shape, an
event we do not know) is decided here and tested with plain bytes; the
connection thread only logs what is skipped and goes on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["EVENTS", "Event", "Skipped", "parse_frame"]

EVENTS = ("init", "update")


@dataclass(frozen=True)
class Event:
    """An ``init`` or ``update`` frame: its name and its list of model entries."""

    name: str
    entries: list[Any]


@dataclass(frozen=True)
class Skipped:
    """A frame to log and skip, and why; ``level`` is ERROR for the orchestrator's own error object."""

    reason: str
    level: int = logging.WARNING
    #: The orchestrator's error object's text, when it refuses the connection (an unknown crunch...).
    refusal: str | None = None


def parse_frame(data: bytes | str) -> Event | Skipped:
    """Read one text frame; never raises."""
    try:
        frame = json.loads(data)
    except RecursionError:
        return Skipped("JSON nested too deeply to parse")
    except UnicodeDecodeError as error:
        return Skipped(f"not UTF-8 text ({error.reason} at byte {error.start})")
    except ValueError as error:
        return Skipped(f"not JSON ({error})")
    except Exception as error:  # anything json.loads can raise on hostile input (MemoryError...)
        return Skipped(f"unreadable ({type(error).__name__}: {error})")
    if not isinstance(frame, dict):
        return Skipped("not a JSON object")
    event, entries = frame.get("event"), frame.get("data")
    if event not in EVENTS:
        if "error" in frame:
            text = str(frame["error"])[:500]
            return Skipped(f"the orchestrator says: {text}", logging.ERROR, refusal=text)
        return Skipped(f"unknown event {event!r:.100}")
    if not isinstance(entries, list):
        return Skipped(f"its {event} data is not a list")
    return Event(event, entries)
