"""Rounds of predictions from each participant's ``infer`` generator."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

from .._support.validation import check_timeout
from ..orchestrator.connection import OrchestratorSettings
from ..runners import CallOutcome, ModelRunner, TrainInferModelRunner
from ..runners.train_infer import DEFAULT_SERVICE, check_service_name
from ..security import GatewayCredentials, SecureCredentials
from ..wire.codec import named_variant
from ..wire.proto.train_infer_pb2 import InferRequest
from .base import DEFAULT_INIT_TIMEOUT, ModelConcurrentRunner, check_request_size, shared_arguments
from .maps import DEFAULT_WINDOW, check_window, iterate
from .results import RoundResults
from .rounds import ROUND_SWITCH_INTERVAL

__all__ = ["TrainInferModelConcurrentRunner"]


def _reinitialize(runner: ModelRunner, _request: Any, timeout: float) -> CallOutcome:
    assert isinstance(runner, TrainInferModelRunner)
    return runner.execute_reinitialize(timeout)


class TrainInferModelConcurrentRunner(ModelConcurrentRunner):
    """Rounds of predictions from each participant's ``infer`` generator."""

    def __init__(
        self,
        timeout: float,
        crunch_id: str,
        host: str,
        port: int | str,
        service_name: str = DEFAULT_SERVICE,
        max_consecutive_failures: int = ModelConcurrentRunner.MAX_CONSECUTIVE_FAILURES,
        max_consecutive_timeouts: int = ModelConcurrentRunner.MAX_CONSECUTIVE_TIMEOUTS,
        secure_credentials: SecureCredentials | None = None,
        gateway_credentials: GatewayCredentials | None = None,
        report_failure: bool = True,
        *,
        retry_backoff_factor: float = 2.0,
        orchestrator_settings: OrchestratorSettings | None = None,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        round_switch_interval: float | None = ROUND_SWITCH_INTERVAL,
        keep_stats: bool = True,
        shard: tuple[int, int] | None = None,
    ) -> None:
        """Set up the runner; nothing connects before :meth:`init`.

        Args:
            service_name: ``"TrainInferStreamService"`` (the reference client's
                choice) or ``"TrainInferService"``; both serve the same calls.

        The other arguments are those of :class:`ModelConcurrentRunner`, with the same defaults.
        """
        self.service_name = check_service_name(service_name)
        super().__init__(**shared_arguments(locals()))  # the base's options, by name (see base.shared_arguments)

    def create_model_runner(self, **kwargs: Any) -> TrainInferModelRunner:
        """A runner that feeds the model node's ``infer`` generator."""
        return TrainInferModelRunner(service_name=self.service_name, **self.runner_options(), **kwargs)

    def predict(
        self, value: Any, timeout: float | None = None, model_runs: Iterable[ModelRunner | str] | None = None
    ) -> RoundResults:
        """Feed ``value`` to every model's ``infer`` (or ``model_runs``'s, as in ``call``); gather the predictions."""
        shared = _infer_request(value, "value")
        return self._run_round(
            self._runners(model_runs), lambda _: shared, timeout, subject="Infer", method="predict"
        )

    def map_predict(
        self,
        values: Iterable[Any],
        *,
        timeout: float | None = None,
        model_runs: Iterable[ModelRunner | str] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> Generator[RoundResults, None, None]:
        """Feed ``values`` to every model's ``infer``, each model working through them alone, in order.

        One :class:`~mrclient.RoundResults` per value, in order, as
        :meth:`predict` would give, without a barrier between values: the map
        of :meth:`DynamicSubclassModelConcurrentRunner.map`, with the same
        ``timeout``, ``window``, busy and stopping rules; each value counts as a
        round of ``predict``. A model that skips a value (busy with an earlier
        one) is not fed it: its ``infer`` sees the values it answered.
        """
        items = iterate(values, "values")
        timeout = self.timeout if timeout is None else check_timeout("timeout", timeout)
        window = check_window(window)
        chosen = None if model_runs is None else self._runners(model_runs)  # checked now, not at the first value
        self._check_can_run("a map")

        def prepare(value: Any, index: int, _runners: Sequence[ModelRunner]) -> Callable[[ModelRunner], Any]:
            shared = _infer_request(value, f"value {index}")
            return lambda _: shared

        return self._map_rounds(chosen, items, prepare, timeout, window, "Infer", "predict")

    def reinitialize(
        self, timeout: float | None = None, model_runs: Iterable[ModelRunner | str] | None = None
    ) -> RoundResults:
        """Restart every model's ``infer`` generator (or ``model_runs``'s, as in ``call``); no penalties are counted."""
        return self._run_round(
            self._runners(model_runs), lambda _: None, timeout, _reinitialize, penalize=False, subject="Reinitialize",
            method="reinitialize",
        )


def _infer_request(value: Any, name: str) -> bytes:
    """The serialized ``InferRequest`` of ``value``; a value that cannot be sent is refused, named."""
    shared: bytes = InferRequest(argument=named_variant(name, value)).SerializeToString()
    check_request_size(len(shared), "Infer")
    return shared
