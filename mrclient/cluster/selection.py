"""Which models a round's ``model_runs=`` names, decided with plain data.

A round may be restricted to some models: ``model_runs=`` takes the model
runners of this client (from ``runner.models``, a roster, a round's results)
and, as a convenience, model ids. Anything else used to fail deep in the
round (``'str' object has no attribute 'cooldown_calls_remaining'``); here it
is refused before any model is called, naming ``model_runs`` and the bad
value, as ``report_failure`` does:

* one string or one runner instead of a list (``model_runs="model-1"``);
* an item that is neither a runner nor a model id (``[None]``), or a runner
  another client made;
* the roster itself instead of ``roster.models`` or ``roster.joined``.

A model id names the model's ready runner. One that names no ready model
(it left between the coordinator's lookup and the call, or is of another
shard, or is a typo) is not called and is listed in ``missing``: a model
leaving is ordinary in a live crunch and a round never raises because of the
models (a runner that left is likewise answered ``MODEL_LEFT``). A model named
twice is called once.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

from ..errors import InvalidCoordinatorUsageError
from ..runners.base import ModelRunner
from .roster import Roster

__all__ = ["Selection", "select_models"]

_TAKES = "model runners of this runner (runner.models, a roster's models or joined, a round's results) or model ids"


@dataclass(frozen=True)
class Selection:
    """The runners to call, in the order given, each once; and the model ids given that name no ready model."""

    runners: list[ModelRunner]
    missing: list[str]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def select_models(model_runs: object, ready: Sequence[ModelRunner], created: Container[ModelRunner]) -> Selection:
    """The models ``model_runs`` names among ``ready``; ``created`` holds the runners this client made.

    Raises ``InvalidCoordinatorUsageError`` naming ``model_runs`` and the bad value.
    """
    if isinstance(model_runs, (str, bytes)):
        raise InvalidCoordinatorUsageError(
            f"model_runs must be a list of {_TAKES}, not one string: model_runs=[{model_runs!r}]"
        )
    if isinstance(model_runs, ModelRunner):
        raise InvalidCoordinatorUsageError(
            f"model_runs must be a list of {_TAKES}, not one runner: model_runs=[runner]"
        )
    if isinstance(model_runs, Roster):
        raise InvalidCoordinatorUsageError("model_runs takes roster.models or roster.joined, not the roster itself")
    if not isinstance(model_runs, Iterable):
        raise InvalidCoordinatorUsageError(
            f"model_runs must be a list of {_TAKES}, got {type(model_runs).__name__} {_show(model_runs)}"
        )
    items = list(model_runs)
    ready_set = frozenset(ready)  # every ready runner was made here: only the others are looked up in created
    by_id: dict[str, ModelRunner] | None = None
    runners: dict[ModelRunner, None] = {}  # ordered, each once
    missing: list[str] = []
    for position, item in enumerate(items):
        if isinstance(item, ModelRunner):
            if item not in ready_set and item not in created:
                raise InvalidCoordinatorUsageError(
                    f"model_runs[{position}] is {item!r}, which this runner did not make: pass {_TAKES}"
                )
            runners[item] = None
        elif isinstance(item, str):
            if by_id is None:
                by_id = {runner.model_id: runner for runner in ready}
            found = by_id.get(item)
            if found is None:
                missing.append(item)
            else:
                runners[found] = None
        else:
            raise InvalidCoordinatorUsageError(
                f"model_runs must hold {_TAKES}; model_runs[{position}] is {type(item).__name__} {_show(item)} "
                f"in model_runs={_show(items)}"
            )
    return Selection(list(runners), missing)
