"""What a round gives back: one ``ModelPredictResult`` per model called.

The result types live apart from the runners that produce them, so that code
reading results (a coordinator's scoring, the command line, a notebook) needs
nothing of the machinery that makes a round.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .runners import CallOutcome, ErrorType, ModelRunner

__all__ = ["ModelPredictResult", "result_of"]

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
