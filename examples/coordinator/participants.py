"""The participants' side: the crunch's base class and a few models that extend it.

In production this code runs on the model nodes, one participant per node;
here ``local_crunch.py`` serves each class on a ``LocalModelNode``. A model is
fed prices with ``tick`` (a list: the whole history when it joins, then one
price per step) and asked for the next one with ``predict``. Each answer says
how many prices the model has seen, so the coordinator can check that no
model missed or got twice any part of the history.
"""

from __future__ import annotations

from typing import Any

#: What the coordinator passes as ``base_classname``.
BASE_CLASSNAME = f"{__name__}.Tracker"


class Tracker:
    """The crunch's base class: every participant's model extends it."""

    def __init__(self) -> None:
        self.prices: list[float] = []

    def tick(self, prices: list[float]) -> None:
        """Receive new prices, oldest first."""
        self.prices.extend(float(price) for price in prices)

    def predict(self) -> dict[str, Any]:
        """The next price, and how many prices this prediction is based on."""
        return {"price": self.forecast(), "seen": len(self.prices)}

    def forecast(self) -> float:
        raise NotImplementedError


class LastPrice(Tracker):
    """Tomorrow looks like today."""

    def forecast(self) -> float:
        return self.prices[-1]


class Momentum(Tracker):
    """The last move goes on."""

    def forecast(self) -> float:
        if len(self.prices) < 2:
            return self.prices[-1]
        return 2 * self.prices[-1] - self.prices[-2]


class MovingAverage(Tracker):
    """Prices come back to their recent mean."""

    window = 5

    def forecast(self) -> float:
        recent = self.prices[-self.window :]
        return sum(recent) / len(recent)


class Flaky(LastPrice):
    """A submission with a bug: every third prediction raises."""

    def predict(self) -> dict[str, Any]:
        if len(self.prices) % 3 == 0:
            raise ValueError("diverged")
        return super().predict()
