"""The coordinator thread's bookkeeping of a round, timed directly: this checkout against another commit.

::

    python -m benchmarks.bookkeeping --base 4356b14 --models 1000 --rounds 400

A round's CPU at N = 1000 is mostly gRPC's and the call threads', and varies
by a few percent from round to round on a shared machine, so an A/B of whole
rounds (``benchmarks.ab --variant code=base,current``) cannot resolve a change
of a fraction of a percent in the work after the calls. This measures that
work alone, with no network: for N unconnected model runners whose calls are
already answered (done futures), reading the answers (``rounds._answer_of``),
making the results (``result_of`` into the round's dict) and recording them
(``StatsBook.record``), as ``ModelConcurrentRunner._run_round`` does after
``wait()``. Both versions run in this process (the base one as
``mrclient_base``, ``benchmarks.baseline``), alternated round by round, timed
with the thread's CPU clock, the garbage collector off while timing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import Any

from . import baseline


def _module(package: ModuleType, *paths: str) -> ModuleType:
    """The first of ``paths`` that ``package`` has imported (a module moved when the layers became packages)."""
    for path in paths:
        module = sys.modules.get(f"{package.__name__}.{path}")
        if module is not None:
            return module
    raise LookupError(f"{package.__name__} has none of {paths}")


def bookkeeping(package: ModuleType, models: int) -> Callable[[], Any]:
    """One round's bookkeeping after the calls, with ``package``'s own code, ready to be repeated."""
    results_module = _module(package, "concurrent.results", "results")
    rounds = _module(package, "concurrent.rounds", "rounds")
    stats = _module(package, "stats.recording", "stats")
    outcome = _module(package, "runners").CallOutcome(result={"echo": 1})
    runners = [
        package.DynamicSubclassModelRunner(
            base_classname="a.B", deployment_id=f"d{n}", model_id=f"m{n}", model_name=None, ip="127.0.0.1", port=1
        )
        for n in range(models)
    ]
    futures: dict[Any, Future[Any]] = {}
    for runner in runners:
        future: Future[Any] = Future()
        future.set_result((outcome, 1000))
        futures[runner] = future
    status = package.ModelPredictResult.Status
    book = stats.StatsBook(success=status.SUCCESS, timeout=status.TIMEOUT, rest_detail="rest", left_detail="left")
    round_results = getattr(results_module, "RoundResults", None)  # absent before issue 20: a plain dict
    result_of, answer_of = results_module.result_of, rounds._answer_of

    def one_round() -> Any:
        answers = {runner: answer_of(runner, future) for runner, future in futures.items()}
        results = {} if round_results is None else round_results(method="tick", started_at=0.0)
        for runner in runners:
            answer, exec_us = answers[runner]
            results[runner] = result_of(runner, answer, exec_us)
        summary = book.record("tick", results, 0.0, 0.1)
        if round_results is not None:
            results._finish(0.1, summary)
        return results

    return one_round


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help=f"git revision of the base (default: ${baseline.BASE_ENV} or HEAD)")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=400, help="timed rounds per version")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mrclient-base-") as directory:
        config = baseline.extract(Path(directory), args.base)
        baseline.runner_class(config)  # imports mrclient_base
        import mrclient

        versions = {"base": bookkeeping(sys.modules[baseline.PACKAGE], args.models),
                    "current": bookkeeping(mrclient, args.models)}  # fmt: skip
        for one_round in versions.values():
            for _ in range(args.warmup):
                one_round()
        spent: dict[str, list[int]] = {name: [] for name in versions}
        order = list(versions)
        gc.collect()
        gc.disable()
        try:
            for number in range(args.rounds):
                for name in order if number % 2 == 0 else order[::-1]:
                    started = time.thread_time_ns()
                    versions[name]()
                    spent[name].append(time.thread_time_ns() - started)
        finally:
            gc.enable()
    per_call = {name: [ns / 1000 / args.models for ns in values] for name, values in spent.items()}
    print(f"bookkeeping of a round at N={args.models}, {args.rounds} rounds each; base is {config['base_commit'][:12]}")
    for name, values in per_call.items():
        print(f"  {name:<8} {statistics.median(values):.3f} us per call (median), {statistics.fmean(values):.3f} mean")
    deltas = [current - base for current, base in zip(per_call["current"], per_call["base"], strict=True)]
    print(f"  current - base: {statistics.median(deltas):+.3f} us per call (median of the paired rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
