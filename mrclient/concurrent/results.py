"""What a round gives back: one ``ModelPredictResult`` per model called, in a ``RoundResults``.

The result types live apart from the runners that produce them, so that code
reading results (a coordinator's scoring, the command line, a notebook) needs
nothing of the machinery that makes a round.

``RoundResults`` is the plain dict a round always returned (model runner ->
result), with the round's method, start and wall time attached, and ways to
read it: ``summary``, ``to_records()``, ``to_frame()``, a text ``repr`` and an
HTML table in a notebook. The round pays only for the dict: every table is
built when it is asked for.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._support import tables as display
from .._support.tables import Column
from ..runners import MODEL_LEFT, CallOutcome, ErrorType, ModelRunner
from ..stats import RoundSummary, summarize
from ..wire.entries import cruncher_of

__all__ = [
    "IDENTITY_COLUMNS", "ModelPredictResult", "REST_DETAIL", "RESTED", "RoundResults", "SKIPPED", "identity",
    "result_of",
]

#: How the detail of a result starts when the model was not contacted (statistics count it a rest skip).
SKIPPED = "SKIPPED: "
#: The detail of a model answered TIMEOUT without being called, while it rests after timeouts.
REST_DETAIL = SKIPPED + "resting after consecutive timeouts"
#: The outcome of such a skip.
RESTED = CallOutcome(error=ErrorType.TIMEOUT, detail=REST_DETAIL)
#: Rows an HTML table of results shows; the rest are counted in its last row (``to_frame()`` has them all).
HTML_ROWS = 200
#: Rows a text ``repr`` of results shows.
TEXT_ROWS = 20

@dataclass
class ModelPredictResult:
    """One model's answer in a round: its status, its decoded result and how long it took."""

    class Status(enum.Enum):
        """How a model's call ended: answered, failed, or no answer by the deadline."""

        SUCCESS = "SUCCESS"
        FAILED = "FAILED"
        TIMEOUT = "TIMEOUT"

    model_runner: ModelRunner
    result: Any
    status: Status
    exec_time_us: int
    #: The gRPC code or the model's message when the call did not succeed.
    detail: str | None = None

    # The reference client's constructors, kept so that coordinators' code and tests that build results still run.

    @staticmethod
    def of_success(
        model_runner: ModelRunner, result: Any, exec_time: int, *, detail: str | None = None
    ) -> ModelPredictResult:
        """A ``SUCCESS`` result holding ``result``; ``exec_time`` in microseconds."""
        return ModelPredictResult(model_runner, result, ModelPredictResult.Status.SUCCESS, exec_time, detail)

    @staticmethod
    def of_failed(model_runner: ModelRunner, exec_time: int, *, detail: str | None = None) -> ModelPredictResult:
        """A ``FAILED`` result (no value); ``exec_time`` in microseconds."""
        return ModelPredictResult(model_runner, None, ModelPredictResult.Status.FAILED, exec_time, detail)

    @staticmethod
    def of_timeout(model_runner: ModelRunner, exec_time: int, *, detail: str | None = None) -> ModelPredictResult:
        """A ``TIMEOUT`` result (no value); ``exec_time`` in microseconds."""
        return ModelPredictResult(model_runner, None, ModelPredictResult.Status.TIMEOUT, exec_time, detail)


_STATUS_OF_ERROR = {
    None: ModelPredictResult.Status.SUCCESS,
    ErrorType.TIMEOUT: ModelPredictResult.Status.TIMEOUT,
}


def result_of(runner: ModelRunner, outcome: CallOutcome, exec_time_us: int) -> ModelPredictResult:
    """The result a coordinator sees for one model's call outcome."""
    status = _STATUS_OF_ERROR.get(outcome.error, ModelPredictResult.Status.FAILED)
    detail = outcome.detail or (outcome.error.value if outcome.error else None)
    return ModelPredictResult(runner, outcome.result, status, exec_time_us, detail)


_SUCCESS = ModelPredictResult.Status.SUCCESS
_TIMEOUT = ModelPredictResult.Status.TIMEOUT
_FAILED = ModelPredictResult.Status.FAILED
#: Problems first in a table: failures, then timeouts, then successes (each in the round's order).
_DISPLAY_ORDER = {_FAILED: 0, _TIMEOUT: 1, _SUCCESS: 2}


class RoundResults(dict[ModelRunner, ModelPredictResult]):
    """One round's results: the dict of ``ModelRunner -> ModelPredictResult`` it always was, that reads well.

    Equal to a plain dict of the same items and iterated the same way; it
    adds the round's ``method``, ``started_at`` (``time.time()``) and
    ``wall_time_s``, its ``summary`` (a :class:`~mrclient.RoundSummary`),
    ``to_records()`` (plain rows, no pandas), ``to_frame()`` (a pandas
    DataFrame, the ``notebook`` extra), a text ``repr``, and in a notebook an
    HTML table: one row per model with its status in colour, failures first,
    under a caption of the counts per status and the round's wall time.
    """

    __slots__ = ("method", "started_at", "wall_time_s", "_summary")

    def __init__(
        self,
        items: Mapping[ModelRunner, ModelPredictResult] | Iterable[tuple[ModelRunner, ModelPredictResult]] = (),
        *,
        method: str = "",
        started_at: float = math.nan,
        wall_time_s: float = math.nan,
    ) -> None:
        """The results ``items``, of a round of ``method`` (rounds fill in their start and wall time)."""
        super().__init__(items)
        self.method = method
        self.started_at = started_at
        self.wall_time_s = wall_time_s
        self._summary: RoundSummary | None = None

    def _finish(self, wall_time_s: float, summary: RoundSummary | None) -> None:
        """The round is over: its wall time and, when statistics recorded it, its summary."""
        self.wall_time_s = wall_time_s
        self._summary = summary

    @property
    def summary(self) -> RoundSummary:
        """The round's :class:`~mrclient.RoundSummary`, with counts per status, rest skips, left, slowest, wall time.

        The one its ``on_round`` listeners got; made from the results as they
        are now when statistics did not record the round (``keep_stats=False``,
        or results built by hand).
        """
        if self._summary is not None:
            return self._summary
        return summarize(
            self.method, self, self.started_at, self.wall_time_s,
            success=_SUCCESS, timeout=_TIMEOUT, rest_detail=SKIPPED, left_detail=MODEL_LEFT,
        )  # fmt: skip

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per model, in the round's order: who it is, its status, latency, result and detail."""
        return [_record(runner, result) for runner, result in self.items()]

    def to_frame(self) -> Any:
        """``to_records()`` as a pandas DataFrame indexed by model id (needs the ``notebook`` extra).

        A missing value is NaN in ``latency_ms`` and None in every other column (``result`` included).
        """
        return display.frame(self.to_records(), _RECORD_KEYS, index="model_id", numeric=("latency_ms",))

    def _rows(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The rows to show (problems first), at most ``limit``, and how many were left out."""
        ordered = sorted(self.items(), key=lambda item: _DISPLAY_ORDER.get(item[1].status, 0))
        return [_record(runner, result) for runner, result in ordered[:limit]], max(0, len(ordered) - limit)

    def _caption(self) -> str:
        summary = self.summary
        counts = ", ".join(
            f"{count} {label}"
            for count, label in (
                (summary.successes, "SUCCESS"), (summary.failures, "FAILED"), (summary.timeouts, "TIMEOUT"),
            )
        )  # fmt: skip
        notes = "".join(
            f", {count} {label}" for count, label in ((summary.rest_skips, "resting"), (summary.left, "left")) if count
        )
        moment = summary.started_datetime
        at = "" if moment is None else f" at {moment:%Y-%m-%d %H:%M:%S}"
        wall = "" if not math.isfinite(self.wall_time_s) else f" in {self.wall_time_s * 1000:.0f} ms"
        return f"{self.method or 'round'}{at}: {display.counted(len(self), 'model')}, {counts}{notes}{wall}"

    def __repr__(self) -> str:
        """A caption, then a line per model (trouble first, at most ``TEXT_ROWS``), fitted to the terminal's width."""
        rows, left_out = self._rows(TEXT_ROWS)
        width = display.terminal_width()
        lines = [display.fit_line(f"<RoundResults {self._caption()}>", width)]
        if rows:
            lines.append(display.text_table(_TEXT_COLUMNS, rows, width=width))
        if left_out:
            lines.append(f"  … {left_out} more (to_records() has them all)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows, left_out = self._rows(HTML_ROWS)
        more = f"… {display.counted(left_out, 'more model')} (to_frame() has them all)" if left_out else None
        return display.html_table(_HTML_COLUMNS, rows, caption=self._caption(), more=more)


#: The first columns of every model table: which model a row is (the keys of ``identity``).
IDENTITY_COLUMNS = (
    Column("model_id", "model", least=None),
    Column("model_name", "name", least=6, drop=2),
    Column("cruncher", "cruncher", least=6, drop=4),
)


def identity(runner: ModelRunner) -> dict[str, Any]:
    """Which model a row is: its id, its name and its cruncher (see ``IDENTITY_COLUMNS``)."""
    return {"model_id": runner.model_id, "model_name": runner.model_name, "cruncher": cruncher_of(runner.infos)}


def _record(runner: ModelRunner, result: ModelPredictResult) -> dict[str, Any]:
    status = result.status.value
    return {
        **identity(runner),
        "deployment_id": runner.deployment_id,
        "status": status,
        "left": status == "FAILED" and result.detail == MODEL_LEFT,
        "latency_ms": result.exec_time_us / 1000,
        "result": result.result,
        "detail": result.detail,
    }


def _status_badge(row: Mapping[str, Any]) -> str:
    return display.badge(row["status"], "MODEL_LEFT" if row["left"] else None)


_RECORD_KEYS = ("model_id", "model_name", "cruncher", "deployment_id", "status", "left", "latency_ms", "result",
                "detail")  # fmt: skip
_HTML_COLUMNS = (
    *IDENTITY_COLUMNS,
    Column("status", "status", html=_status_badge, least=None),
    Column("latency_ms", "latency ms", format=display.milliseconds, numeric=True),
    Column("result", "result", format=display.shorten, width=display.CELL_CHARS, least=10, drop=1),
    Column("detail", "detail", width=2 * display.CELL_CHARS, least=12, drop=3),
)
_TEXT_COLUMNS = tuple(column for column in _HTML_COLUMNS if column.key != "cruncher")
