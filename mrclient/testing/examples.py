"""Small example trackers, in the shape of the bird-game crunch's models.

Used by ``mrclient demo``, the README examples and tests: a participant
subclasses ``TrackerBase``; the coordinator calls ``tick`` with each new
observation and ``predict`` for the next location. Serve them with
``LocalModelNode(classes=[TrackerBase, EwmaTracker])`` and set up the runner with
``base_classname="mrclient.testing.examples.TrackerBase"``.
"""

from __future__ import annotations

import time
from typing import Any

BASE_CLASSNAME = f"{__name__}.TrackerBase"


class TrackerBase:
    """What every participant's tracker implements."""

    def tick(self, payload: dict[str, Any], performance_metrics: dict[str, Any] | None = None) -> None:
        """Receive one observation (and, optionally, how the model is doing)."""

    def predict(self) -> Any:
        """Predict the next dove location."""
        raise NotImplementedError


class EwmaTracker(TrackerBase):
    """Predicts an exponentially weighted mean of the dove's recent locations."""

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha
        self.mean: float | None = None
        self.ticks = 0
        self.performance_metrics: dict[str, Any] | None = None

    def tick(self, payload: dict[str, Any], performance_metrics: dict[str, Any] | None = None) -> None:
        location = float(payload["dove_location"])
        self.mean = location if self.mean is None else self.alpha * location + (1 - self.alpha) * self.mean
        self.ticks += 1
        self.performance_metrics = performance_metrics

    def predict(self) -> Any:
        return {"location": self.mean, "ticks": self.ticks, "performance_metrics": self.performance_metrics}


class SlowTracker(EwmaTracker):
    """Takes ``delay`` seconds to predict: longer than a coordinator waits."""

    delay = 2.0

    def predict(self) -> Any:
        time.sleep(self.delay)
        return super().predict()


class BrokenTracker(TrackerBase):
    """Raises on every prediction, as a buggy submission does."""

    def predict(self) -> Any:
        raise RuntimeError("this tracker diverged")
