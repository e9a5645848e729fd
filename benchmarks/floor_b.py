"""Floor B inside an A/B process: the bare design-card shape on an mrclient runner's own channels.

``benchmarks.clients.raw_threads`` is floor B in a process of its own, which a
full run compares with mrclient across processes. For a decision of a few
percent the A/B harness needs the floor in the same process, on the same
channels, alternated with mrclient's rounds: ``shape=floor-b`` runs a round
as floor B does (a warm ``ThreadPoolExecutor`` with one worker per model,
one blocking stub call each with the deadline, ``wait(timeout=...)``, the
answer checked) using each ready model's ``Call`` stub, and nothing of
mrclient's round (no results, penalties, statistics, nor its switch interval).
``shape=floor-b-switch`` is the same under the runner's ``round_switch_interval``,
so what mrclient's own code costs shows apart from what the interval saves, and
``shape=rounds-only`` is mrclient's own fan-out without the bookkeeping after it.

Benchmark code: it reads a runner's private ``_call`` stub and ``_pool_for``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import grpc

from mrclient.concurrent.rounds import call_models, switch_interval

from .clients.raw import is_echo, method_request

#: One warm pool per runner, as floor B keeps one for its whole run; closed by ``close_pools``.
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(runner: Any, size: int) -> ThreadPoolExecutor:
    pool = _pools.get(id(runner))
    if pool is None or pool._max_workers < size:  # grown like floor B's: one worker per model
        if pool is not None:
            pool.shutdown(wait=False)
        pool = _pools[id(runner)] = ThreadPoolExecutor(size, thread_name_prefix="floor-b")
    return pool


def _is_echo(stub: Any, request: bytes, timeout: float, payload: dict[str, Any]) -> bool:
    try:
        return is_echo(stub(request, timeout=timeout), payload)
    except grpc.RpcError:
        return False


def _round(runner: Any, method: str, payload: dict[str, Any], timeout: float) -> int:
    request = method_request(method, payload)
    stubs = [model._call for model in runner.models]
    pool = _pool(runner, len(stubs))
    futures = [pool.submit(_is_echo, stub, request, timeout, payload) for stub in stubs]
    done, _ = wait(futures, timeout=timeout + 1.0)
    return sum(1 for future in done if future.result())


def floor_b_round(runner: Any, method: str, payload: dict[str, Any], timeout: float) -> int:
    """One floor-B round on ``runner``'s models under Python's switch interval; the correct answers."""
    return _round(runner, method, payload, timeout)


def floor_b_switch_round(runner: Any, method: str, payload: dict[str, Any], timeout: float) -> int:
    """One floor-B round under the runner's ``round_switch_interval``, as mrclient's rounds run."""
    with switch_interval(runner.round_switch_interval):
        return _round(runner, method, payload, timeout)


def close_pools() -> None:
    """Shut every floor-B pool down (the A/B client's end)."""
    for pool in _pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _pools.clear()


def rounds_only_round(runner: Any, method: str, payload: dict[str, Any], timeout: float) -> int:
    """mrclient's fan-out alone (``rounds.call_models`` on the runner's pool and models, under its switch
    interval), without the concurrent runner's results, penalties and statistics: what the hand-off costs."""
    request = method_request(method, payload)
    models = runner.models
    with switch_interval(runner.round_switch_interval):
        answers = call_models(runner._pool_for(len(models)), models, lambda _: request, timeout)
    return sum(1 for outcome, _ in answers.values() if outcome.error is None and outcome.result == payload)
