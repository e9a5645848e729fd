"""The models that left, kept so that their statistics stay where a coordinator looks.

A model reported after its third failure is exactly the one a coordinator
wants to inspect; a runner's ``stats()`` keeps it, marked with when and why it
left, until the coordinator clears it (``forget_left()``) or newer leavers push
it out. ``LeftModels`` holds the runners that left (their counters and
identity: a snapshot is read when asked, so a round that ends after its model
left still counts), one per model id, in the order they left.

Memory stays bounded in a long crunch with churn: at most ``LEFT_MODELS_KEPT``
models that left while the runner ran are kept, the oldest going first (each
is a closed runner and its counters, a few kilobytes). The models a
``close()`` left are kept on top of those, bounded by the table's size, so
that after a close every model is still there.

Whoever keeps the table tells it who left and why (the cluster, above this
layer); it imports nothing of mrclient. It has no lock of its own: its owner
guards it (the cluster, with its table lock, so that a model is never both
ready and left).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

__all__ = ["LEFT_MODELS_KEPT", "LeftModels"]

#: Models that left while the runner ran which ``stats()`` keeps at most (the oldest go first).
LEFT_MODELS_KEPT = 1000


class _Leaver(Protocol):
    """What is kept of a model that left: its runner, known by its model id."""

    @property
    def model_id(self) -> str: ...


_R = TypeVar("_R", bound=_Leaver)


class LeftModels(Generic[_R]):
    """The runners of the models that left, one per model id, oldest first; guarded by its owner's lock."""

    def __init__(self, limit: int = LEFT_MODELS_KEPT) -> None:
        self.limit = limit
        self._left: dict[str, _R] = {}  # model id -> its runner that left last, in the order they left

    def add(self, runner: _R) -> None:
        """``runner``'s model left: keep it (in place of an older leave of the model); the oldest over the limit go."""
        self._left.pop(runner.model_id, None)
        self._left[runner.model_id] = runner
        while len(self._left) > self.limit:
            del self._left[next(iter(self._left))]

    def add_closed(self, runners: list[_R]) -> None:
        """The models ready when the runner closed: kept on top of the limit (they are the whole table)."""
        for runner in runners:
            self._left.pop(runner.model_id, None)
            self._left[runner.model_id] = runner

    def discard(self, model_id: str) -> None:
        """The model is back (a new runner joined for it): its row is the ready one again."""
        self._left.pop(model_id, None)

    def get(self, model_id: str) -> _R | None:
        """The runner of ``model_id`` that left, if it is kept."""
        return self._left.get(model_id)

    def runners(self) -> list[_R]:
        """The runners kept, in the order their models left (the oldest first)."""
        return list(self._left.values())

    def clear(self) -> int:
        """Forget every model that left; returns how many were forgotten."""
        count = len(self._left)
        self._left.clear()
        return count

    def __len__(self) -> int:
        return len(self._left)
