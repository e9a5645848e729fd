"""mrclient, the client under test: ``DynamicSubclassModelConcurrentRunner`` with reporting off.

Used as DESIGN.md documents it: ``init()``, ``wait_for_models(n)``, then one
``call(method, args=[payload])`` per round with a plain Python value, and
``close()``; in the ``map`` case, ``map(method, (Args(payload) ...))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mrclient import Args, DynamicSubclassModelConcurrentRunner, ModelPredictResult

from .common import ClientConfig, run_client

_SUCCESS = ModelPredictResult.Status.SUCCESS


class MrclientDriver:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.runner = DynamicSubclassModelConcurrentRunner(**config.runner_arguments(), **config.options)

    def init(self) -> None:
        self.runner.init()
        if not self.runner.wait_for_models(self.config.n, timeout=self.config.ready_timeout):
            ready = len(self.runner.models)
            raise TimeoutError(f"{ready} of {self.config.n} models callable after {self.config.ready_timeout}s")

    def round(self, payload: dict[str, Any]) -> int:
        results = self.runner.call(self.config.method, args=[payload])
        return sum(1 for result in results.values() if result.status is _SUCCESS and result.result == payload)

    def map(self, payloads: Sequence[dict[str, Any]]) -> int:
        correct = 0
        mapped = self.runner.map(self.config.method, (Args(payload) for payload in payloads))
        for payload, results in zip(payloads, mapped, strict=True):
            correct += sum(1 for result in results.values() if result.status is _SUCCESS and result.result == payload)
        return correct

    def close(self) -> None:
        self.runner.close()


if __name__ == "__main__":
    run_client(MrclientDriver)
