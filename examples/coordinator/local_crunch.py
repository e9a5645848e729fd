"""An embedded crunch to run the service on: a local orchestrator and one local model node per model.

It does to the coordinator what a live crunch does, in a few steps: three
models run from the start (one of them buggy), a fourth joins late, one is
redeployed (a fresh instance on a new node), one stops and later recovers on
its restarted node. ``prices()`` is the feed, a seeded random walk; between
two prices the crunch moves on. Each change that brings a model up waits
until its node has set the model up, so the run is the same every time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from mrclient.testing import LocalModelNode, LocalOrchestrator

from .participants import Flaky, LastPrice, Momentum, MovingAverage, Tracker

CRUNCH_ID = "condor-example"
SETUP_WAIT = 30.0  # bound of the wait for a node to set its model up


class LocalCrunch:
    """The orchestrator and the nodes, started by ``with`` and stopped at its end."""

    def __init__(self, seed: int = 7) -> None:
        self.orchestrator = LocalOrchestrator(crunch_id=CRUNCH_ID)
        self.nodes: list[LocalModelNode] = []
        self.ids: dict[str, str] = {}  # model name -> model_id
        self.node_of: dict[str, LocalModelNode] = {}
        self.random = random.Random(seed)
        self.schedule: dict[int, Callable[[], None]] = {
            2: lambda: self._add("moving-average", MovingAverage),
            4: self._redeploy_momentum,
            6: lambda: self.orchestrator.stop_model(self.ids["last-price"]),
            8: self._recover_last_price,
        }

    def __enter__(self) -> LocalCrunch:
        self.orchestrator.start()
        for name, cls in (("last-price", LastPrice), ("momentum", Momentum), ("flaky", Flaky)):
            self._add(name, cls, wait=False)  # no coordinator yet: it sets them up at init()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for node in self.nodes:
            node.stop()
        self.orchestrator.stop()

    @property
    def port(self) -> int:
        """The orchestrator's port (on 127.0.0.1)."""
        return self.orchestrator.port

    def prices(self, steps: int) -> Iterator[float]:
        """``steps`` prices (0: without end), the crunch changing between them as scheduled."""
        price, step = 100.0, 0
        while not steps or step < steps:
            change = self.schedule.get(step)
            if change is not None:
                change()
            yield price
            price = round(price + self.random.gauss(0, 1), 2)
            step += 1

    # -- what happens to the models ------------------------------------------------------------------

    def _node(self, name: str, cls: type[Tracker]) -> LocalModelNode:
        node = LocalModelNode(classes=[Tracker, cls]).start()
        self.nodes.append(node)
        self.node_of[name] = node
        return node

    def _add(self, name: str, cls: type[Tracker], wait: bool = True) -> None:
        node = self._node(name, cls)
        self.ids[name] = self.orchestrator.add_model(port=node.port, name=name)
        if wait:
            _wait_for_setup(node)

    def _redeploy_momentum(self) -> None:
        """A new deployment of the same model on a new node: a fresh instance."""
        node = self._node("momentum", Momentum)
        self.orchestrator.redeploy_model(self.ids["momentum"], port=node.port)
        _wait_for_setup(node)

    def _recover_last_price(self) -> None:
        """Its node restarts (losing its instance) and the model recovers: RECOVERING, then RUNNING."""
        node = self.node_of["last-price"]
        node.stop()
        node.start()
        self.orchestrator.recover_model(self.ids["last-price"])
        _wait_for_setup(node)


def _wait_for_setup(node: LocalModelNode) -> None:
    """Until the coordinator has set the model up on ``node`` (bounded; a demo must not hang)."""
    deadline = time.monotonic() + SETUP_WAIT
    while node.instance is None and time.monotonic() < deadline:
        time.sleep(0.01)
