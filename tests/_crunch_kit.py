"""A local crunch for tests: an orchestrator, the test's model nodes, and the runners made against it.

The tests of rounds, results, statistics and coordinator mistakes each need the
same thing: model nodes serving the test's classes, announced by a
``LocalOrchestrator``, and concurrent runners that are all closed when the test
ends, after the test's held models are released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator

#: Bound of a runner's ``init`` and of the wait for its models.
WAIT = 10.0

_Kit = TypeVar("_Kit", bound="Crunch")


class Crunch:
    """Model nodes for subclasses of ``base``, announced by ``orchestrator``, and the runners made here.

    ``Crunch.running(...)`` is the whole life of one: a test file's fixture
    enters it and yields what it gives (a subclass may add the file's helpers).
    """

    @classmethod
    @contextmanager
    def running(
        cls: type[_Kit],
        crunch_id: str,
        start_node: Callable[..., LocalModelNode],
        base: type,
        *,
        releases: Sequence[threading.Event] = (),
        **defaults: Any,
    ) -> Iterator[_Kit]:
        """A crunch whose runners are closed at the end, once ``releases`` are set (so held models return)."""
        with LocalOrchestrator(crunch_id=crunch_id) as orchestrator:
            kit = cls(orchestrator, start_node, base, **defaults)
            try:
                yield kit
            finally:
                for event in releases:
                    event.set()
                for runner in kit.runners:
                    runner.close()

    def __init__(
        self, orchestrator: LocalOrchestrator, start_node: Callable[..., LocalModelNode], base: type, **defaults: Any
    ) -> None:
        self.orchestrator = orchestrator
        self.start_node = start_node
        self.base = base
        #: Each model's node, by model id.
        self.nodes: dict[str, LocalModelNode] = {}
        self.runners: list[DynamicSubclassModelConcurrentRunner] = []
        self.defaults: dict[str, Any] = {
            "timeout": 5.0, "crunch_id": orchestrator.crunch_id, "host": "127.0.0.1", "port": orchestrator.port,
            "base_classname": base.__name__, "retry_backoff_factor": 0.01, **defaults,
        }  # fmt: skip

    def add(self, cls: type, name: str | None = None) -> str:
        """A node serving ``cls`` (a subclass of ``base``), announced as ``name`` (default: the class's); its model id."""
        node = self.start_node(classes=[self.base, cls])
        model_id = self.orchestrator.add_model(host="127.0.0.1", port=node.port, name=name or cls.__name__)
        self.nodes[model_id] = node
        return model_id

    def runner(
        self,
        count: int | None = None,
        *,
        runner_class: type[DynamicSubclassModelConcurrentRunner] = DynamicSubclassModelConcurrentRunner,
        init: bool = True,
        **options: Any,
    ) -> DynamicSubclassModelConcurrentRunner:
        """A runner with the crunch's defaults and ``options``; initialized unless ``init=False``, then ``count`` models ready."""
        runner = runner_class(**{**self.defaults, **options})
        self.runners.append(runner)
        if init:
            runner.init(timeout=WAIT)
        if count is not None:
            assert runner.wait_for_models(count, WAIT)
        return runner
