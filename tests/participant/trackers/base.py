"""The base class the coordinator names in Setup: ``trackers.base.TrackerBase``."""

from typing import Any


class TrackerBase:
    """Participants subclass this; the node finds the subclass and instantiates it."""

    def tick(self, payload: Any) -> None:
        """Receive one observation."""
        raise NotImplementedError

    def predict(self) -> Any:
        """Return a prediction from what was seen so far."""
        raise NotImplementedError
