"""The settings an in-process A/B run (``benchmarks.ab``) can vary, and how each is put on a runner.

A knob has named values. Each value may give constructor arguments (variants
that differ there get a runner each, all in the same process, against the same
cluster), may set something on a runner between rounds (variants that only
differ there share one runner, switched before each of its rounds), and may
replace the round itself (``shape=floor-b``: the bare design-card shape on the
same runner's channels, so mrclient and its floor are compared in one
process), and may give the runner's class itself (``code=base``: the
runner of another commit's mrclient, ``benchmarks.baseline``, so a change is
compared with the code before it in one process). To decide a tuning
question, add a knob here and run::

    python -m benchmarks.ab --variant NAME=VALUE1,VALUE2 --models 1000

Standard library and mrclient only: this runs in the A/B client process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .baseline import runner_class as base_runner_class
from .floor_b import floor_b_round, floor_b_switch_round, rounds_only_round

#: ``apply(runner, value)``: put a value on a constructed runner, between rounds.
Apply = Callable[[Any, str], None]
#: ``round(runner, method, payload, timeout)``: one round another way than ``runner.call``; correct answers.
Round = Callable[[Any, str, dict[str, Any], float], int]
#: ``runner_class(config)``: the concurrent runner class a value means (the A/B client's config at hand).
RunnerClass = Callable[[Mapping[str, Any]], type]


def _nothing(runner: Any, value: str) -> None:
    """A knob with no runtime part."""


@dataclass(frozen=True)
class Knob:
    """One setting: its values, the constructor arguments and the runtime change each value means."""

    name: str
    values: tuple[str, ...]
    help: str
    #: value -> keyword arguments of the runner's constructor (absent: none).
    runner_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    apply: Apply = _nothing
    #: value -> the round to run instead of ``runner.call`` (absent: ``runner.call``).
    rounds: Mapping[str, Round] = field(default_factory=dict)
    #: value -> the runner's class (absent: mrclient's ``DynamicSubclassModelConcurrentRunner``).
    runner_class: Mapping[str, RunnerClass] = field(default_factory=dict)

    def kwargs(self, value: str) -> dict[str, Any]:
        return dict(self.runner_kwargs.get(value, {}))


def _keep_stats(runner: Any, value: str) -> None:
    runner.keep_stats = value == "on"


def _switch_interval(runner: Any, value: str) -> None:
    runner.round_switch_interval = None if value == "off" else float(value)


KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob(
            "stats",
            ("on", "off"),
            "per-model statistics, totals and round summaries (keep_stats), switched between rounds of one runner",
            apply=_keep_stats,
        ),
        Knob(
            "switch",
            ("off", "0.005", "0.01", "0.02", "0.05", "0.1"),
            "the GIL switch interval during a round (round_switch_interval; off: Python's, 0.005 s), "
            "switched between rounds of one runner",
            apply=_switch_interval,
        ),
        Knob(
            "shape",
            ("mrclient", "floor-b", "floor-b-switch", "rounds-only"),
            "mrclient's call(), or floor B (a bare pool of N blocking calls, wait(timeout)) on the same "
            "runner's channels under Python's switch interval, or under the runner's round_switch_interval",
            rounds={"floor-b": floor_b_round, "floor-b-switch": floor_b_switch_round, "rounds-only": rounds_only_round},
        ),
        Knob(
            "code",
            ("current", "base"),
            "this checkout's mrclient, or the mrclient of the git revision MRCLIENT_AB_BASE (default HEAD), "
            "each with its own runner in the same process",
            runner_class={"base": base_runner_class},
        ),
    )
}


def parse_setting(text: str) -> tuple[Knob, list[str]]:
    """``NAME=V1,V2`` -> the knob and its values; ValueError naming what is wrong."""
    name, sep, values_text = text.partition("=")
    knob = KNOBS.get(name.strip())
    if not sep or knob is None:
        raise ValueError(f"{text!r}: expected NAME=VALUE[,VALUE...] with NAME one of {', '.join(sorted(KNOBS))}")
    values = [value.strip() for value in values_text.split(",") if value.strip()]
    unknown = [value for value in values if value not in knob.values]
    if not values or unknown:
        raise ValueError(f"{text!r}: {knob.name} takes {', '.join(knob.values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{text!r}: a value is given twice")
    return knob, values
