"""The measuring process of an A/B run: the variants' runners, their rounds alternated, one line of results.

Started by ``benchmarks.ab`` as ``python -m benchmarks.ab_client --config FILE``
against a running benchmark cluster. It builds one runner per distinct set of
constructor arguments, warms every variant up, then runs the rounds in blocks
(every variant once per block, in forward then reverse order: A B B A A B...),
switching each variant's runtime settings on before its round. Each round's
process CPU time (every thread, gRPC core's included), the calling thread's
own CPU time, the process's context switches (voluntary: a thread waited;
involuntary: the kernel preempted it) and the wall time are measured around
the round alone (``call()``, or the round a knob puts in its place).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mrclient import DynamicSubclassModelConcurrentRunner

from .clients.common import RESULT_MARKER, make_payload
from .floor_b import close_pools
from .knobs import KNOBS, Round
from .measure import context_switches


def schedule(variants: int, blocks: int) -> list[int]:
    """Variant indexes in run order: each block runs every variant once, every other block reversed."""
    order = list(range(variants))
    return [index for block in range(blocks) for index in (order if block % 2 == 0 else order[::-1])]


def _kwargs(settings: dict[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, value in sorted(settings.items()):
        kwargs.update(KNOBS[name].kwargs(value))
    return kwargs


def _apply(runner: DynamicSubclassModelConcurrentRunner, settings: dict[str, str]) -> None:
    for name, value in sorted(settings.items()):
        KNOBS[name].apply(runner, value)


def _runner_class(settings: dict[str, str], config: Mapping[str, Any]) -> type:
    """The variant's runner class: a knob's (``code=base``), else this checkout's."""
    for name, value in sorted(settings.items()):
        choose = KNOBS[name].runner_class.get(value)
        if choose is not None:
            return choose(config)
    return DynamicSubclassModelConcurrentRunner


#: ``SUCCESS`` of the package each runner class comes from (``mrclient`` or ``mrclient_base``).
_SUCCESS_OF: dict[type, Any] = {}


def _success_of(cls: type) -> Any:
    package = importlib.import_module(cls.__module__.partition(".")[0])
    return _SUCCESS_OF.setdefault(cls, package.ModelPredictResult.Status.SUCCESS)


def _call_round(runner: DynamicSubclassModelConcurrentRunner, method: str, payload: dict[str, Any], _: float) -> int:
    results = runner.call(method, args=[payload])
    success = _SUCCESS_OF[type(runner)]
    return sum(1 for result in results.values() if result.status is success and result.result == payload)


def _round_of(settings: dict[str, str]) -> Round:
    """The variant's round: a knob's replacement if one gives it, else ``runner.call``."""
    for name, value in sorted(settings.items()):
        replacement = KNOBS[name].rounds.get(value)
        if replacement is not None:
            return replacement
    return _call_round


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    with open(parser.parse_args(argv).config, encoding="utf-8") as file:
        config = json.load(file)
    variants: list[dict[str, str]] = config["variants"]  # each: knob name -> value, fixed settings included
    n, method = config["models"], config["method"]

    runners: dict[str, DynamicSubclassModelConcurrentRunner] = {}
    runner_of: list[DynamicSubclassModelConcurrentRunner] = []
    try:
        for settings in variants:
            cls = _runner_class(settings, config)
            key = f"{cls.__module__}.{cls.__qualname__} " + json.dumps(_kwargs(settings), sort_keys=True, default=repr)
            if key not in runners:
                runner = cls(
                    timeout=config["timeout"], crunch_id=config["crunch_id"], host=config["host"],
                    port=config["port"], base_classname="benchmarks.BenchModel", report_failure=False,
                    **_kwargs(settings),
                )  # fmt: skip
                runners[key] = runner
                _success_of(cls)
                runner.init()
                if not runner.wait_for_models(n, timeout=config["ready_timeout"]):
                    raise TimeoutError(f"{len(runner.models)} of {n} models callable")
            runner_of.append(runners[key])

        rounds_of = [_round_of(settings) for settings in variants]

        def one_round(index: int, number: int) -> dict[str, Any]:
            runner, payload, round_ = runner_of[index], make_payload(number), rounds_of[index]
            _apply(runner, variants[index])
            voluntary, involuntary = context_switches()
            cpu, own, wall = time.process_time(), time.thread_time(), time.perf_counter()
            ok = round_(runner, method, payload, config["timeout"])
            wall, own, cpu = time.perf_counter() - wall, time.thread_time() - own, time.process_time() - cpu
            voluntary_after, involuntary_after = context_switches()
            return {
                "variant": index, "cpu_s": cpu, "caller_cpu_s": own, "wall_s": wall, "ok": ok,
                "voluntary_switches": voluntary_after - voluntary,
                "involuntary_switches": involuntary_after - involuntary,
            }  # fmt: skip

        for number, index in enumerate(schedule(len(variants), config["warmup"])):
            one_round(index, -1 - number)
        gc.collect()
        rounds = []
        for number, index in enumerate(schedule(len(variants), config["rounds"])):
            rounds.append({**one_round(index, number), "block": number // len(variants)})
    finally:
        close_pools()
        for runner in runners.values():
            runner.close()
    print(RESULT_MARKER + json.dumps({"rounds": rounds, "runners": len(runners)}), flush=True)


if __name__ == "__main__":
    main()
