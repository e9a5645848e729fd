"""A real model node on loopback: the gRPC services of a CrunchDAO model node, in-process.

Coordinators' tests (and ours) talk to it over a real socket instead of mocking
the stubs, so every byte crosses the wire as it does in production. It behaves
like the reference node (PyPI ``crunch-model-runner``): the same status codes,
one model call at a time (``RESOURCE_EXHAUSTED`` "Server busy" otherwise), and a
health service that answers while a model call is busy.

Where the reference node is simply broken, this node does the sensible thing
instead, and says so in a comment: it never calls a method cached from an
instance that ``Rest`` dropped, and answers ``BAD_IMPLEMENTATION`` for an
attribute that is not callable.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import pkgutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .._support.addresses import host_port
from .._support.validation import (
    check_callable,
    check_flag,
    check_host,
    check_instance,
    check_port,
    check_timeout,
    check_wait,
    shown,
)
from ..wire.codec import decode_data, to_variant
from ..wire.proto import dynamic_subclass_pb2_grpc, train_infer_pb2_grpc
from ..wire.proto.commons_pb2 import Argument, KwArgument, Status, Variant
from ..wire.proto.dynamic_subclass_pb2 import CallRequest, CallResponse, RestResponse, SetupRequest, SetupResponse
from ..wire.proto.train_infer_pb2 import InferRequest, InferResponse
from .handler_pool import HandlerPool

if TYPE_CHECKING:
    from .secure import GatewayNodeSecurity, MutualTlsNodeSecurity

__all__ = ["InferFunction", "LocalModelNode"]

logger = logging.getLogger(__name__)

InferFunction = Callable[[Iterator[Any]], Iterator[Any]]
"""A participant's ``infer``: a generator function reading values from a stream.

It must yield once before reading (the node primes it), then yield one
prediction per value it reads.
"""

_MAX_MESSAGE_LENGTH = 64 * 1024 * 1024  # the reference node's default


class LocalModelNode:
    """A model node serving a participant's code on ``host:port`` until stopped.

    ``classes`` are the participant's classes (the base class may be left out:
    a class matches when one of its ancestors has the requested name, first as
    "module.qualname", then by bare name); ``code_directory`` instead imports a
    submission directory the way the reference node does. ``infer`` is the
    generator function the TrainInfer services feed (default: ``main.py`` of
    ``code_directory``).

    ``secure`` serves secure mode as the secure node does (see
    ``mrclient.testing.secure``): mutual TLS with the participant's identity
    on every response, or a gateway token check. A new ``secure`` applies to
    the next call for what is checked per call (identity, accepted
    coordinators, tokens) and at the next ``start()`` for the TLS certificate.
    ``server_credentials`` only puts plain TLS on the port.
    """

    def __init__(
        self,
        classes: Iterable[type] | None = None,
        *,
        code_directory: str | os.PathLike[str] | None = None,
        infer: InferFunction | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        server_credentials: grpc.ServerCredentials | None = None,
        secure: MutualTlsNodeSecurity | GatewayNodeSecurity | None = None,
        max_workers: int = 4,
        grace: float = 0.2,
        join_timeout: float = 5.0,
    ) -> None:
        if classes is not None and code_directory is not None:
            raise ValueError("give the participant's classes or its code_directory, not both")
        if secure is not None and server_credentials is not None:
            raise ValueError("give secure= or server_credentials=, not both")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 2:
            raise ValueError(
                f"max_workers must be at least 2 so health checks answer during a model call, got {shown(max_workers)}"
            )
        if classes is not None:
            if isinstance(classes, type) or not isinstance(classes, Iterable):
                raise ValueError(f"classes must be a list of the participant's classes, got {shown(classes)}")
            classes = list(classes)
            for cls in classes:
                check_instance("classes", cls, type, "a list of the participant's classes", error=ValueError)
        if code_directory is not None:
            check_instance("code_directory", code_directory, (str, os.PathLike), "a directory path", error=ValueError)
            if not Path(code_directory).is_dir():
                raise ValueError(
                    f"code_directory must be the directory of the participant's code, got {shown(code_directory)}"
                )
        if infer is not None:
            check_callable("infer", infer, "a generator function of the values fed to it", error=ValueError)
        check_instance("server_credentials", server_credentials, grpc.ServerCredentials,
                       "grpc.ServerCredentials or None", optional=True, error=ValueError)
        if secure is not None and not (hasattr(secure, "server_credentials") and hasattr(secure, "check_call")):
            raise ValueError(f"secure must be MutualTlsNodeSecurity or GatewayNodeSecurity "
                             f"(LocalCertificateAuthority makes them), got {shown(secure)}")
        self.classes: list[type] | None = None if classes is None else list(classes)
        self.code_directory = None if code_directory is None else str(Path(code_directory).resolve())
        self.infer = infer
        self.host = check_host(host, error=ValueError)
        port = 0 if port == 0 else check_port(port, error=ValueError)  # 0: the system picks a free port
        grace = check_wait("grace", grace, error=ValueError)
        join_timeout = check_timeout("join_timeout", join_timeout, error=ValueError)
        self.server_credentials = server_credentials  # plain TLS on the port, no client certificate
        self.secure = secure
        self.max_workers = max_workers
        self.grace = grace
        self.join_timeout = join_timeout
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()  # guards start/stop
        self._busy = _Busy()  # one model call at a time, across every service; new at each start
        self._refusals = 0  # calls refused as busy, since the node was made (guarded by _refusals_lock)
        self._refusals_lock = threading.Lock()
        self._server: Any = None
        self._executor: HandlerPool | None = None
        self._health = health.HealthServicer()
        self._subclass = _DynamicSubclassServicer(self)
        self._train_infer = _TrainInferServicer(self)

    # -- lifecycle --------------------------------------------------------

    def start(self) -> LocalModelNode:
        """Bind and serve; a restart after ``stop`` reuses the port (a node coming back)."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the node is already started")
            self._subclass.reset()
            self._train_infer.reset()
            # A model call left running by stop() holds the old lock until it returns; a restarted
            # node, like a new process, is not busy with it.
            self._busy = _Busy()
            self._health = health.HealthServicer()  # a stopped one stays NOT_SERVING for good
            executor = HandlerPool(self.max_workers, thread_name_prefix="local-model-node")
            secure = self.secure
            interceptors = None
            if secure is not None:
                from .secure import UnaryInterceptor

                interceptors = [UnaryInterceptor(self._check_secure_call)]
            server = grpc.server(
                executor,
                interceptors=interceptors,
                options=[
                    ("grpc.max_send_message_length", _MAX_MESSAGE_LENGTH),
                    ("grpc.max_receive_message_length", _MAX_MESSAGE_LENGTH),
                ],
            )
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            dynamic_subclass_pb2_grpc.add_DynamicSubclassServiceServicer_to_server(self._subclass, server)  # type: ignore[no-untyped-call]
            train_infer_pb2_grpc.add_TrainInferStreamServiceServicer_to_server(self._train_infer, server)  # type: ignore[no-untyped-call]
            train_infer_pb2_grpc.add_TrainInferServiceServicer_to_server(self._train_infer, server)  # type: ignore[no-untyped-call]
            port = self._port if self._port is not None else self._requested_port
            address = host_port(self.host, port)
            try:
                credentials = secure.server_credentials() if secure is not None else self.server_credentials
                if credentials is None:
                    bound = server.add_insecure_port(address)
                else:
                    bound = server.add_secure_port(address, credentials)
                if not bound:
                    raise RuntimeError(f"could not bind {address}")
                server.start()
            except BaseException:
                server.stop(None)
                executor.shutdown(wait=True)
                raise
            self._health.set("", health_pb2.HealthCheckResponse.SERVING)
            self._server, self._executor, self._port = server, executor, int(bound)
        logger.info("local model node serving on %s", self.address)
        return self

    def stop(self) -> None:
        """Stop serving at once and join the worker threads; idempotent.

        A running model call gets ``grace`` seconds to finish, then every call
        is cancelled and the node stops without waiting for it: a participant's
        method cannot be interrupted, so one still running (a model sleeping
        past the deadline) is left to return on its own, on a daemon thread that
        keeps neither ``stop()`` nor the interpreter's exit waiting, and whose
        answer goes nowhere. The other worker threads are joined, each for at
        most ``join_timeout`` seconds.
        """
        with self._lock:
            server, executor = self._server, self._executor
            self._server = self._executor = None
        if server is None or executor is None:
            return
        self._health.enter_graceful_shutdown()
        # Our own grace: gRPC's (stop(grace)) leaves a helper thread running after stop returns.
        busy = self._busy
        if busy.lock.acquire(timeout=self.grace):
            busy.lock.release()
        server.stop(None).wait(self.join_timeout)
        executor.shutdown(wait=False, cancel_futures=True)
        in_model = busy.thread
        for thread in executor.threads:
            if thread is not in_model:
                thread.join(self.join_timeout)
        if in_model is not None and in_model.is_alive():
            logger.info("local model node on port %s stopped; a model call still running on %s is left to return "
                        "on its own", self._port, in_model.name)
        stuck = [thread.name for thread in executor.threads if thread.is_alive() and thread is not in_model]
        if stuck:
            logger.warning("local model node on port %s stopped with handler threads still running: %s", self._port,
                           stuck)
        logger.info("local model node on port %s stopped", self._port)

    def _check_secure_call(self, method: str, context: Any) -> None:
        """Secure mode's per-call checks, read from ``secure`` at each call so a test can change them live."""
        secure = self.secure
        if secure is not None:
            secure.check_call(method, context)

    def __enter__(self) -> LocalModelNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state for tests --------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (kept after ``stop``, for a restart on the same port)."""
        if self._port is None:
            raise RuntimeError("the node has not been started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port``, the target a gRPC channel connects to."""
        return host_port(self.host, self.port)

    @property
    def running(self) -> bool:
        """Whether the node is serving."""
        return self._server is not None

    @property
    def instance(self) -> Any:
        """The participant's instance made by ``Setup``, or None."""
        return self._subclass.instance

    @property
    def busy_refusals(self) -> int:
        """How many calls the node refused as busy (``RESOURCE_EXHAUSTED``) since it was made.

        A client that never sends a call while the node is busy keeps it at 0.
        """
        with self._refusals_lock:
            return self._refusals

    def set_serving(self, serving: bool) -> None:
        """Make the health service answer SERVING or NOT_SERVING (a sick node)."""
        check_flag("serving", serving, error=ValueError)
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self._health.set("", status)

    @contextmanager
    def _exclusive(self, context: Any) -> Iterator[None]:
        """Fail fast while another call runs, as the reference node does."""
        busy = self._busy  # this generation's: a restart makes a new one (see start)
        if not busy.lock.acquire(blocking=False):
            with self._refusals_lock:
                self._refusals += 1
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Server busy")
        busy.thread = threading.current_thread()
        try:
            yield
        finally:
            busy.thread = None
            busy.lock.release()

    # -- the participant's code -------------------------------------------

    def _find_class(self, base_classname: str) -> type:
        """The participant's subclass of ``base_classname``; ImportError when there is none."""
        if self.classes is not None:
            return _find_among(self.classes, base_classname)
        if self.code_directory is not None:
            return _find_in_directory(self.code_directory, base_classname)
        raise ImportError("the node was given no participant code (classes or code_directory)")

    def _infer_function(self) -> InferFunction:
        if self.infer is not None:
            return self.infer
        if self.code_directory is None:
            raise ValueError("the node was given no infer function and no code_directory")
        module = _import_main(self.code_directory)
        infer = getattr(module, "infer", None)
        if not callable(infer):
            raise ValueError("no `infer` function found")
        result: InferFunction = infer
        return result


class _Busy:
    """A node's one-call-at-a-time lock, and the thread running participant code while it is held."""

    __slots__ = ("lock", "thread")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None


def _status(code: str, message: str = "") -> Status:
    return Status(code=code, message=message)


def _prepare_arguments(
    arguments: Iterable[Argument], kw_arguments: Iterable[KwArgument]
) -> tuple[list[Any], dict[str, Any]]:
    args = [decode_data(arg.data.value, arg.data.type) for arg in sorted(arguments, key=lambda arg: arg.position)]
    kwargs = {kwarg.keyword: decode_data(kwarg.data.value, kwarg.data.type) for kwarg in kw_arguments}
    return args, kwargs


class _DynamicSubclassServicer(dynamic_subclass_pb2_grpc.DynamicSubclassServiceServicer):
    """Setup / Call / Rest with the reference node's status codes and messages."""

    def __init__(self, node: LocalModelNode) -> None:
        self._node = node
        self.instance: Any = None

    def reset(self) -> None:
        self.instance = None

    def Setup(self, request: SetupRequest, context: Any) -> SetupResponse:
        with self._node._exclusive(context):
            if self.instance is not None:
                return SetupResponse(status=_status("SUCCESS", "Instance already exists"))
            try:
                class_name = request.className.strip()
                if not class_name:
                    return SetupResponse(status=_status("INVALID_ARGUMENT", "class_name cannot be empty"))
                args, kwargs = _prepare_arguments(request.instanceArguments, request.instanceKwArguments)
                cls = self._node._find_class(class_name)
                self.instance = cls(*args, **kwargs)
            except ImportError as error:
                logger.warning("BAD_IMPLEMENTATION in Setup: %s", error)
                return SetupResponse(status=_status("BAD_IMPLEMENTATION", str(error)))
            except Exception as error:
                logger.warning("SETUP_FAILED: %s", error, exc_info=True)
                return SetupResponse(status=_status("SETUP_FAILED", str(error)))
            logger.info("Setup made an instance of %s", type(self.instance).__qualname__)
            return SetupResponse(status=_status("SUCCESS", "Instance created successfully"))

    def Call(self, request: CallRequest, context: Any) -> CallResponse:
        with self._node._exclusive(context):
            instance = self.instance
            if instance is None:
                return CallResponse(status=_status("FAILED_PRECONDITION", "Setup has not been called yet"))
            method_name = request.methodName
            if method_name == "":
                return CallResponse(status=_status("INVALID_ARGUMENT", "methodName cannot be empty"))
            method = getattr(instance, method_name, None)
            if not callable(method):  # the reference node crashes (UNKNOWN) on a non-callable attribute
                message = f'Method "{method_name}" not found in class "{type(instance).__name__}"'
                return CallResponse(status=_status("BAD_IMPLEMENTATION", message))
            try:
                args, kwargs = _prepare_arguments(request.methodArguments, request.methodKwArguments)
                # Like the reference node: only keywords the signature names after the
                # positional arguments, so a new keyword never breaks an old model.
                accepted = list(inspect.signature(method).parameters)[len(args) :]
                result = method(*args, **{key: value for key, value in kwargs.items() if key in accepted})
                if result is None:
                    return CallResponse(status=_status("SUCCESS"))
                return CallResponse(status=_status("SUCCESS"), methodResponse=to_variant(result))
            except Exception as error:
                logger.warning("MODEL_FAILED in %s: %s", method_name, error, exc_info=True)
                return CallResponse(status=_status("MODEL_FAILED", f"The model raised an exception: {error}"))

    def Rest(self, request: empty_pb2.Empty, context: Any) -> RestResponse:
        with self._node._exclusive(context):
            if self.instance is None:
                return RestResponse(status=_status("SUCCESS", "No instance exists to reset"))
            self.instance = None
            return RestResponse(status=_status("SUCCESS", "Instance successfully reset"))


class _Stream:
    """What ``infer`` iterates: the latest value, forever; None ends the stream."""

    def __init__(self) -> None:
        self.value: Any = None

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        if self.value is None:
            raise StopIteration
        return self.value


class _TrainInferServicer(train_infer_pb2_grpc.TrainInferStreamServiceServicer):
    """Setup / Infer / Reinitialize, for both TrainInfer services; errors as gRPC codes."""

    def __init__(self, node: LocalModelNode) -> None:
        self._node = node
        self._infer: InferFunction | None = None
        self._stream = _Stream()
        self._generator: Iterator[Any] | None = None

    def reset(self) -> None:
        self._infer = self._generator = None

    def _restart(self) -> None:
        assert self._infer is not None
        self._stream = _Stream()
        self._generator = self._infer(self._stream)
        next(self._generator)  # run the participant's code up to its first (ready) yield

    def Setup(self, request: empty_pb2.Empty, context: Any) -> empty_pb2.Empty:
        with self._node._exclusive(context):
            if self._infer is None:
                error = self._attempt(self._setup)
                if error is not None:
                    self._infer = None
                    context.abort(grpc.StatusCode.INTERNAL, error)
            return empty_pb2.Empty()

    def _setup(self) -> None:
        self._infer = self._node._infer_function()
        self._restart()

    def Infer(self, request: InferRequest, context: Any) -> InferResponse:
        with self._node._exclusive(context):
            if self._generator is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "Call Setup first")
            response = InferResponse()
            error = self._attempt(lambda: response.prediction.CopyFrom(self._predict(request.argument)))
            if error is not None:
                self._attempt(self._restart)  # like the reference node: a fresh generator after a failure
                context.abort(grpc.StatusCode.INTERNAL, error)
            return response

    def _predict(self, argument: Variant) -> Variant:
        assert self._generator is not None
        self._stream.value = decode_data(argument.value, argument.type)
        return to_variant(next(self._generator))

    def Reinitialize(self, request: empty_pb2.Empty, context: Any) -> empty_pb2.Empty:
        with self._node._exclusive(context):
            if self._infer is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "Call Setup first")
            error = self._attempt(self._restart)
            if error is not None:
                context.abort(grpc.StatusCode.INTERNAL, error)
            return empty_pb2.Empty()

    @staticmethod
    def _attempt(action: Callable[[], object]) -> str | None:
        """Run participant code; the exception's text, or None on success.

        Kept apart from ``context.abort``, which raises a plain Exception that a
        surrounding ``except Exception`` would swallow.
        """
        try:
            action()
        except Exception as error:
            logger.warning("the participant's infer code raised: %r", error, exc_info=True)
            return str(error) or type(error).__name__
        return None


# -- finding the participant's class ----------------------------------------


def _full_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _find_among(classes: Sequence[type], base_classname: str) -> type:
    """First class with an ancestor named ``base_classname``, full name before bare name."""
    bare = base_classname.rpartition(".")[2]
    rules: list[Callable[[type], bool]] = [
        lambda cls: _full_name(cls) == base_classname,
        lambda cls: cls.__name__ == bare,
    ]
    for named in rules:
        for candidate in classes:
            if not named(candidate) and any(named(base) for base in candidate.__mro__[1:]):
                return candidate
    raise ImportError(f"No Inherited class found from {base_classname}.")


def _find_in_directory(directory: str, base_classname: str) -> type:
    """Import every module of ``directory`` and return a subclass of the base class.

    As the reference node: the base class is imported by its dotted name with the
    directory on ``sys.path``, modules of the base class's top package are
    skipped, and a module that fails to import is logged and passed over.
    """
    _activate(directory)
    module_name, _, class_name = base_classname.rpartition(".")
    if not module_name:
        raise ValueError(f"Invalid class name '{class_name}'. Use 'module.ClassName' format.")
    base = getattr(importlib.import_module(module_name), class_name, None)
    if not inspect.isclass(base):
        raise ValueError(f"Class '{class_name}' not found in module '{module_name}'.")
    base_package = base_classname.partition(".")[0]

    def skip(name: str) -> None:
        logger.error("error importing package %r of %s", name, directory)

    for info in pkgutil.walk_packages([directory], onerror=skip):
        try:
            module = importlib.import_module(info.name)
        except Exception:
            logger.error("error importing module %r of %s", info.name, directory, exc_info=True)
            continue
        for _, candidate in inspect.getmembers(module, inspect.isclass):
            owner = getattr(candidate, "__module__", "")
            if candidate is base or owner == base_package or owner.startswith(f"{base_package}."):
                continue
            if issubclass(candidate, base):
                return candidate
    raise ImportError(f"No Inherited class found from {base}.")


_DIRECTORIES: list[str] = []  # code directories in-process nodes put on sys.path, latest first
_DIRECTORIES_LOCK = threading.Lock()


def _activate(directory: str) -> None:
    """Put ``directory`` on ``sys.path`` and forget same-named modules of other submissions.

    A real node has a process per submission; in-process nodes share
    ``sys.modules``, so two submissions with a ``my_tracker.py`` would otherwise
    get each other's module. Submission directories go after every other entry,
    as the reference node appends its own, so they never shadow installed
    modules; among them the latest activated comes first.
    """
    with _DIRECTORIES_LOCK:
        others = [Path(other) for other in _DIRECTORIES if other != directory]
        _DIRECTORIES[:] = [directory, *map(str, others)]
        sys.path[:] = [entry for entry in sys.path if entry not in _DIRECTORIES] + _DIRECTORIES
        for info in pkgutil.iter_modules([directory]):
            origin = getattr(sys.modules.get(info.name), "__file__", None)
            if origin is None or not any(other in Path(origin).resolve().parents for other in others):
                continue
            for name in [name for name in sys.modules if name == info.name or name.startswith(f"{info.name}.")]:
                del sys.modules[name]


def _import_main(directory: str, main_file: str = "main.py") -> ModuleType:
    """Execute ``main.py`` as a fresh, unregistered module, as the reference node does.

    (The reference node puts the directory first on ``sys.path`` for this; here
    it goes last, like every submission directory, see ``_activate``.)
    """
    _activate(directory)
    path = os.path.join(directory, main_file)
    spec = importlib.util.spec_from_file_location("submission code", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
