"""The join-history pattern: which ready models joined since the coordinator last looked.

A model that joins mid-crunch (a new one, a redeploy, a recovery, a
reconnect: each is a new runner) needs what it missed before its first tick.
Sending that from an ``on_model_joined`` listener races the coordinator's own
rounds: the node serves one call at a time, and the joiner may already be in
the round under way, so it gets a tick before its history, or the history
twice. Instead, the coordinator asks at the top of each step for one snapshot
of the ready models, split in two: those it had in its previous snapshot and
those that joined since. It sends the joiners the history, then runs the
step's rounds on exactly that snapshot (``model_runs=``), so a model that
joins meanwhile waits for the next step: it gets the history once, then every
tick, and no call of its collides with another.

``RosterKeeper`` decides this from plain data (the ready runners, compared by
identity with the previous snapshot); it does no IO.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..runners import ModelRunner

__all__ = ["Roster", "RosterKeeper"]


@dataclass(frozen=True)
class Roster:
    """One snapshot of the ready models, and which of them are new since the previous snapshot."""

    #: Every model ready when the snapshot was taken, in the order they joined:
    #: the ``model_runs=`` of the step's rounds.
    models: tuple[ModelRunner, ...]
    #: Those of ``models`` absent from the previous snapshot (the first one:
    #: all of them): send them the history first.
    joined: tuple[ModelRunner, ...]


class RosterKeeper:
    """Hands out rosters, remembering the runners of the last one to tell the joiners apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: frozenset[ModelRunner] = frozenset()

    def next(self, ready: Sequence[ModelRunner]) -> Roster:
        """The roster of ``ready`` (a snapshot of the ready runners); it becomes the last one."""
        models = tuple(ready)
        with self._lock:
            joined = tuple(runner for runner in models if runner not in self._last)
            self._last = frozenset(models)  # runners that left are forgotten here
        return Roster(models, joined)
