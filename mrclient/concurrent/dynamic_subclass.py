"""Rounds of method calls on each participant's subclass of the coordinator's base class."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, cast

from .._support.validation import check_timeout
from ..errors import InvalidCoordinatorUsageError
from ..orchestrator.connection import OrchestratorSettings
from ..runners import ArgumentsType, DynamicSubclassModelRunner, ModelRunner
from ..runners.dynamic_subclass import check_class_name, checked_call_request
from ..security import GatewayCredentials, SecureCredentials
from ..wire.arguments import Args
from ..wire.codec import named_arguments, named_kw_arguments
from .base import DEFAULT_INIT_TIMEOUT, ModelConcurrentRunner, check_request_size, shared_arguments
from .maps import DEFAULT_WINDOW, check_window, iterate
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
        arguments: ArgumentsType | Args | None = None,
        timeout: float | None = None,
        model_runs: Iterable[ModelRunner | str] | None = None,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> RoundResults:
        """Call ``method_name`` on every ready model (or on ``model_runs``).

        Arguments come in one of three forms: ``arguments=(args, kwargs)`` with
        protobuf ``Argument``/``KwArgument`` lists; ``arguments=fn`` where
        ``fn(model_runner)`` returns that tuple (or an ``Args``) for one model;
        or plain Python values as ``args=[...]`` and ``kwargs={...}`` (or
        ``arguments=Args(...)``, as :meth:`map` takes them). Shared arguments are
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
        _check_method_name(method_name)
        if arguments is not None and (args is not None or kwargs is not None):
            raise InvalidCoordinatorUsageError("pass either arguments= or args=/kwargs=, not both")
        subject = f"method {method_name!r}"
        runners = self._runners(model_runs)
        if arguments is None:
            arguments = (named_arguments("args", args), named_kw_arguments("kwargs", kwargs))
        request_of = _request_of(method_name, arguments, runners, "arguments", subject)
        return self._run_round(runners, request_of, timeout, subject=subject, method=method_name)

    def map(
        self,
        method_name: str,
        inputs: Iterable[Any],
        *,
        timeout: float | None = None,
        model_runs: Iterable[ModelRunner | str] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> Generator[RoundResults, None, None]:
        """Call ``method_name`` once per input, each model working through the inputs alone, in order.

        Yields one :class:`~mrclient.RoundResults` per input, in input order,
        with the same statuses and details as :meth:`call`: input ``i``'s once
        every model has answered ``i`` or its call's deadline has passed. No
        model waits for another: a map costs the slowest model's own total,
        where a loop of ``call()`` costs the sum of every input's slowest answer.

        Each input is ``Args(*args, **kwargs)`` (plain values), an ``(args,
        kwargs)`` tuple of ``Argument``/``KwArgument`` lists, or a function of
        the model runner returning one (run on this thread). ``inputs`` may be
        a generator of any length: at most ``window`` inputs are pulled ahead
        of the one being yielded, so memory stays bounded. A bad input (or an
        exception from ``inputs``) is raised when its turn comes, after the
        inputs before it were yielded.

        ``timeout`` bounds each call from the moment that model's call starts
        (default: the runner's), so a map of n inputs ends within about n x
        ``timeout``. A model whose call times out is charged one timeout; its
        node is still busy with that input, so the inputs passing meanwhile are
        answered ``TIMEOUT`` ("SKIPPED: busy with input i ...") at no charge,
        and it resumes once its node answers. Penalties, reports,
        ``on_round``, ``stats()`` and metrics count each input as a round of
        ``method_name``. The models are those ready when the map starts (or
        ``model_runs``, checked and looked up when ``map()`` is called, as in
        :meth:`call`); one that leaves is answered ``MODEL_LEFT``.

        The map holds the runner's models until it ends: ``call()`` or another
        map meanwhile raises ``InvalidCoordinatorUsageError``. Breaking out of
        the loop (or the iterator's ``close()``) ends it; after ``close()`` of
        the runner, the input under way is yielded, then ``MrclientError`` is
        raised. See docs/concepts.rst ("Many inputs: map").
        """
        _check_method_name(method_name)
        items = iterate(inputs)
        timeout = self.timeout if timeout is None else check_timeout("timeout", timeout)
        window = check_window(window)
        chosen = None if model_runs is None else self._runners(model_runs)  # checked now, not at the first input
        self._check_can_run("a map")
        subject = f"method {method_name!r}"

        def prepare(item: Any, index: int, runners: Sequence[ModelRunner]) -> Callable[[ModelRunner], Any]:
            return _request_of(method_name, item, runners, f"input {index}", subject)

        return self._map_rounds(chosen, items, prepare, timeout, window, subject, method_name)


def _request_of(
    method_name: str, arguments: Any, runners: Sequence[ModelRunner], name: str, subject: str
) -> Callable[[ModelRunner], Any]:
    """Each model's request for ``arguments``: serialized once when shared, built per model by a function.

    A function of the model runner runs here, on the caller's thread, once
    per model; a request no node would accept is refused (``name`` is what the
    coordinator passed, ``subject`` what it called).
    """
    if callable(arguments):
        make_arguments = arguments
        requests = {
            runner: checked_call_request(
                method_name, make_arguments(cast(DynamicSubclassModelRunner, runner)), f"{name}({runner!r})"
            )
            for runner in runners
        }
        for request in requests.values():
            check_request_size(request.ByteSize(), subject)
        return requests.__getitem__
    shared = checked_call_request(method_name, arguments, name).SerializeToString()
    check_request_size(len(shared), subject)
    return lambda _: shared


def _check_method_name(method_name: Any) -> None:
    if not method_name or not isinstance(method_name, str):
        raise InvalidCoordinatorUsageError(f"method_name must be a non-empty string, got {method_name!r}")

