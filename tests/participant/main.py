"""A participant's TrainInfer entry point: ``infer`` yields a running sum."""

from collections.abc import Iterator
from typing import Any


def train() -> None:
    """Nothing to train; the reference node requires the function to exist."""


def infer(stream: Iterator[Any]) -> Iterator[Any]:
    """Yield once when ready, then the running sum of every value read."""
    yield None
    total = 0
    for value in stream:
        if value == "boom":
            raise ValueError("cannot add boom")
        total += value
        yield total
