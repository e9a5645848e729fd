"""Pictures of a crunch for a notebook: latency per model, and the status mix of recent rounds.

Two matplotlib figures, drawn from the statistics the runner already keeps
(no call reaches a model): ``latency_figure`` puts each model's p50 and p90
latency against the round's deadline, ``status_figure`` stacks the
successes, failures and timeouts of the last rounds. matplotlib comes with
the ``notebook`` extra and is imported only when a figure is drawn, so the
plain install never loads it.

Each function returns the ``matplotlib.figure.Figure`` (a notebook shows it;
``fig.savefig(path)`` writes it). The figure is made with pyplot, which hooks
into Jupyter's inline display, and closed there at once, so a cell that
returns it shows it once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._support.extras import install_hint
from .._support.tables import NOTEBOOK_EXTRA, STATUS_COLOURS, counted
from .._support.validation import check_non_negative_int, check_positive_int, check_timeout, shown
from ..errors import InvalidCoordinatorUsageError
from ..stats import CallTotals, ModelStats, RoundSummary

if TYPE_CHECKING:
    from ..concurrent.base import ModelConcurrentRunner

__all__ = ["latency_figure", "status_figure"]

#: Models a latency figure shows at most: the slowest by p90.
LATENCY_MODELS = 40


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as pyplot
    except ImportError as error:
        raise ImportError(f"figures need matplotlib: {install_hint(NOTEBOOK_EXTRA)}") from error
    return pyplot


def check_source(source: object, what: str) -> None:
    """A figure's ``source``: something it can draw from (a runner, or an iterable of snapshots)."""
    if isinstance(source, (str, bytes)) or not (hasattr(source, "stats") or isinstance(source, (Iterable, CallTotals))):
        raise InvalidCoordinatorUsageError(f"source must be {what}, got {type(source).__name__} {shown(source)}")


def _model_stats(source: Any) -> list[ModelStats]:
    if hasattr(source, "stats") and callable(source.stats):  # a runner
        source = source.stats()
    if isinstance(source, Mapping):
        source = source.values()
    return [stats for stats in source if isinstance(stats, ModelStats)]


def latency_figure(
    source: ModelConcurrentRunner | Mapping[Any, ModelStats] | Iterable[ModelStats],
    *,
    deadline: float | None = None,
    models: int = LATENCY_MODELS,
) -> Any:
    """Each model's p50 and p90 latency (ms, over its recent calls), the slowest on top, the deadline marked.

    ``source`` is a runner (its ``stats()``; the deadline is its ``timeout``),
    or what ``stats()`` returned, or ``ModelStats`` snapshots; ``deadline``
    (seconds) overrides the runner's. Models with no call yet are left out;
    at most ``models`` are drawn, the slowest by p90.
    """
    check_source(source, "a runner, its stats() or ModelStats snapshots")
    models = check_positive_int("models", models)
    if deadline is None:
        deadline = getattr(source, "timeout", None)
    else:
        deadline = check_timeout("deadline", deadline)
    measured = [stats for stats in _model_stats(source) if stats.latency_p90_ms is not None]
    measured.sort(key=lambda stats: stats.latency_p90_ms or 0.0)
    measured = measured[-models:]
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(7.0, 1.2 + 0.32 * max(1, len(measured))), layout="constrained")
    labels = [stats.model_name or stats.model_id for stats in measured]
    rows = range(len(measured))
    axes.barh(rows, [s.latency_p90_ms for s in measured], color="#9ecae1", label="p90")
    axes.barh(rows, [s.latency_p50_ms for s in measured], height=0.45, color="#3182bd", label="p50")
    axes.set_yticks(list(rows), labels)
    if deadline is not None and math.isfinite(deadline):
        axes.axvline(deadline * 1000, color=STATUS_COLOURS["FAILED"], linestyle="--", label=f"deadline {deadline:g} s")
    axes.set_xlabel("latency, ms")
    axes.set_title(f"Latency per model ({counted(len(measured), 'model')}, recent calls)")
    if measured or deadline is not None:
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    pyplot.close(figure)
    return figure


def _summaries(source: Any) -> list[RoundSummary]:
    if hasattr(source, "totals") and callable(source.totals):  # a runner
        source = source.totals()
    if isinstance(source, CallTotals):
        return list(source.recent_rounds)
    return [item.summary if hasattr(item, "summary") else item for item in source]


def status_figure(
    source: ModelConcurrentRunner | CallTotals | Iterable[RoundSummary] | Iterable[Any],
    *,
    rounds: int | None = None,
) -> Any:
    """The status mix of recent rounds: successes, failures and timeouts per round, stacked, oldest left.

    ``source`` is a runner (its ``totals().recent_rounds``: the last 64 it
    recorded), a ``CallTotals``, or round summaries or round results in
    order; ``rounds`` keeps only the last so many.
    """
    check_source(source, "a runner, its totals(), round summaries or round results")
    if rounds is not None:
        rounds = check_non_negative_int("rounds", rounds)
    summaries = _summaries(source)
    if rounds is not None:
        summaries = summaries[-rounds:] if rounds > 0 else []
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(7.0, 3.2), layout="constrained")
    positions = list(range(len(summaries)))
    bottom = [0] * len(summaries)
    for status, counts in (
        ("SUCCESS", [s.successes for s in summaries]),
        ("FAILED", [s.failures for s in summaries]),
        ("TIMEOUT", [s.timeouts for s in summaries]),
    ):
        axes.bar(positions, counts, bottom=bottom, color=STATUS_COLOURS[status], label=status, width=0.8)
        bottom = [below + count for below, count in zip(bottom, counts, strict=True)]
    step = max(1, len(summaries) // 12)  # a readable number of labels
    axes.set_xticks(positions[::step], [summary.method for summary in summaries][::step], rotation=45, ha="right")
    axes.set_ylabel("models")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_title(f"Status of the last {counted(len(summaries), 'round')}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    pyplot.close(figure)
    return figure
