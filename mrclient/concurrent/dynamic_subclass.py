"""Rounds of method calls on each participant's subclass of the coordinator's base class."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from ..errors import InvalidCoordinatorUsageError
from ..orchestrator.connection import OrchestratorSettings
from ..runners import ArgumentsType, DynamicSubclassModelRunner, ModelRunner
from ..runners.dynamic_subclass import check_class_name, checked_call_request
from ..security import GatewayCredentials, SecureCredentials
from ..wire.codec import named_arguments, named_kw_arguments
from .base import DEFAULT_INIT_TIMEOUT, ModelConcurrentRunner, check_request_size, shared_arguments
from .results import RoundResults
from .rounds import ROUND_SWITCH_INTERVAL

__all__ = ["DynamicSubclassModelConcurrentRunner"]


class DynamicSubclassModelConcurrentRunner(ModelConcurrentRunner):
    """Rounds of method calls on each participant's subclass of ``base_classname``."""

    def __init__(
        self,
        timeout: float,
        crunch_id: str,
        host: str,
        port: int | str,
        base_classname: str,
        instance_args: Sequence[Any] | None = None,
        instance_kwargs: Mapping[str, Any] | Sequence[Any] | None = None,
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
            base_classname: the fully qualified base class (``"package.module.Class"``)
                whose subclass each model node finds in the participant's code and instantiates.
            instance_args: the constructor's positional arguments, plain values
                or ``Argument`` messages; encoded once, sent in every model's Setup.
            instance_kwargs: its keyword arguments, a mapping of plain values or a
                list of ``KwArgument`` messages.

        The other arguments are those of :class:`ModelConcurrentRunner`, with the same defaults.
        """
        self.base_classname = check_class_name(base_classname)
        # Encoded once here, shared by every runner's Setup.
        self.instance_args = named_arguments("instance_args", instance_args)
        self.instance_kwargs = named_kw_arguments("instance_kwargs", instance_kwargs)
        super().__init__(**shared_arguments(locals()))  # the base's options, by name (see base.shared_arguments)

    def create_model_runner(self, **kwargs: Any) -> DynamicSubclassModelRunner:
        """A runner that sets up ``base_classname`` on the model's node."""
        return DynamicSubclassModelRunner(
            base_classname=self.base_classname,
            instance_args=self.instance_args,
            instance_kwargs=self.instance_kwargs,
            **self.runner_options(),
            **kwargs,
        )

    def call(
        self,
        method_name: str,
        arguments: ArgumentsType | None = None,
        timeout: float | None = None,
        model_runs: Iterable[ModelRunner | str] | None = None,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> RoundResults:
        """Call ``method_name`` on every ready model (or on ``model_runs``).

        Arguments come in one of three forms: ``arguments=(args, kwargs)`` with
        protobuf ``Argument``/``KwArgument`` lists; ``arguments=fn`` where
        ``fn(model_runner)`` returns that tuple for one model; or plain Python
        values as ``args=[...]`` and ``kwargs={...}``. Shared arguments are
        encoded and serialized once for the whole round. ``fn`` runs on the
        caller's thread before any model is called, so an exception it raises
        ends the round before it starts.

        ``timeout`` is the round's deadline in seconds (default: the runner's).
        ``model_runs`` restricts the round to those models: runners of this
        runner (``models``, a roster's, a round's results) or model ids; a
        model id that names no ready model is skipped, with a warning logged,
        and an empty list calls none. Returns a :class:`~mrclient.RoundResults`: the dict of one
        :class:`ModelPredictResult` per model called (which also shows itself
        as a table); never raises because a model misbehaves.
        """
        if not method_name or not isinstance(method_name, str):
            raise InvalidCoordinatorUsageError(f"method_name must be a non-empty string, got {method_name!r}")
        if arguments is not None and (args is not None or kwargs is not None):
            raise InvalidCoordinatorUsageError("pass either arguments= or args=/kwargs=, not both")
        subject = f"method {method_name!r}"
        runners = self._runners(model_runs)
        if callable(arguments):
            make_arguments = arguments
            requests = {
                runner: checked_call_request(
                    method_name, make_arguments(cast(DynamicSubclassModelRunner, runner)), f"arguments({runner!r})"
                )
                for runner in runners
            }
            for request in requests.values():
                check_request_size(request.ByteSize(), subject)
            return self._run_round(runners, requests.__getitem__, timeout, subject=subject, method=method_name)
        if arguments is None:
            arguments = (named_arguments("args", args), named_kw_arguments("kwargs", kwargs))
        shared = checked_call_request(method_name, arguments, "arguments").SerializeToString()
        check_request_size(len(shared), subject)
        return self._run_round(runners, lambda _: shared, timeout, subject=subject, method=method_name)
