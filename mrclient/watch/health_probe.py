"""``mrclient watch --health``: each running model node's gRPC health service, and nothing else.

A ``HealthProbe`` owns one thread (``mrclient-watch-health``), a small pool
for the checks of one sweep, and one health channel per node (its own TCP
connection, the runners' channel options). Every ``every`` seconds the thread
asks ``grpc.health.v1.Health/Check`` of each model the orchestrator announces
as RUNNING, in parallel, each bounded by ``timeout``. It never sends
``Setup``, a model call or ``Rest``: a node answers health on other worker
threads than model calls (PROTOCOL.md section 2), so checking it does not
compete with the crunch's coordinator. A channel is closed when its model
stops, moves or is redeployed, and every channel by ``close()``.

In secure mode a node's health channel uses the TLS of its calls (mutual TLS
pins the certificate a TLS probe reads: a handshake, not an RPC); no token and
no identity check, as for the runners' own health channels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from ..runners.base import CHANNEL_OPTIONS
from ..security import AuthError, GatewayCredentials, SecureCredentials
from ..security.transport import connect_transport
from .announcements import Announcement

__all__ = ["NO_ANSWER", "HealthProbe", "NodeHealth"]

logger = logging.getLogger(__name__)

#: The status of a node whose health service gave no answer (unreachable, refused, too slow).
NO_ANSWER = "NO_ANSWER"

_Key = tuple[str, str, str, int]  # model_id, deployment_id, ip, port


@dataclass(frozen=True)
class NodeHealth:
    """A node's latest health answer: ``SERVING``, ``NOT_SERVING``, ``SERVICE_UNKNOWN``... or ``NO_ANSWER``."""

    status: str
    at: float
    detail: str | None = None


class HealthProbe:
    """Checks the health of the running models that ``targets()`` returns, every ``every`` seconds."""

    def __init__(
        self,
        targets: Callable[[], Sequence[Announcement]],
        credentials: SecureCredentials | GatewayCredentials | None = None,
        every: float = 10.0,
        timeout: float = 5.0,
        workers: int = 8,
    ) -> None:
        self.targets = targets
        self.credentials = credentials
        self.every = every
        self.timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the fields below
        self._channels: dict[_Key, tuple[grpc.Channel, Any]] = {}
        self._results: dict[str, NodeHealth] = {}
        self._closed = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mrclient-watch-health-check")
        self._thread = threading.Thread(target=self._run, name="mrclient-watch-health", daemon=True)
        self._swept = threading.Condition(self._lock)
        self._sweeps = 0

    def start(self) -> HealthProbe:
        self._thread.start()
        return self

    def results(self) -> dict[str, NodeHealth]:
        """model_id -> its node's latest health answer."""
        with self._lock:
            return dict(self._results)

    def wait_for_sweeps(self, count: int, timeout: float) -> bool:
        """Block until ``count`` sweeps are done (for tests and a first draw); False after ``timeout``."""
        with self._swept:
            self._swept.wait_for(lambda: self._sweeps >= count or self._closed, timeout)
            return self._sweeps >= count

    def close(self) -> None:
        """Stop the thread, cancel the checks in flight, close every channel; idempotent."""
        self._stop.set()
        with self._lock:
            self._closed = True
            channels = [channel for channel, _ in self._channels.values()]
            self._channels.clear()
            self._swept.notify_all()
        for channel in channels:
            channel.close()  # cancels a check in flight
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.timeout + 5.0)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sweep()
            except Exception:  # a bug must not end the probe silently
                logger.exception("health sweep failed")
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def sweep(self) -> None:
        """Check every running model once, in parallel; forget the models no longer running."""
        running = [shown for shown in self.targets() if shown.running and shown.ip and shown.port]
        keys = {(s.model_id, s.deployment_id, s.ip or "", s.port or 0): s for s in running}
        with self._lock:
            if self._closed:
                return
            stale = [key for key in self._channels if key not in keys]
            closing = [self._channels.pop(key)[0] for key in stale]
            for model_id in [m for m in self._results if m not in {key[0] for key in keys}]:
                del self._results[model_id]
        for channel in closing:
            channel.close()
        try:
            futures = [self._pool.submit(self._check, key, shown) for key, shown in keys.items()]
        except RuntimeError:  # the pool is shut down: closing
            return
        wait_all(futures, timeout=self.timeout + 5.0)
        with self._lock:
            self._sweeps += 1
            self._swept.notify_all()

    def _check(self, key: _Key, shown: Announcement) -> None:
        try:
            check = self._check_method(key, shown)
            response = check(health_pb2.HealthCheckRequest(service=""), timeout=self.timeout)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            health = NodeHealth(status, time.time())
        except grpc.RpcError as error:
            health = NodeHealth(NO_ANSWER, time.time(), f"{error.code().name}: {error.details()}")
        except AuthError as error:
            health = NodeHealth(NO_ANSWER, time.time(), f"AUTH_ERROR: {error.reason}")
        except (OSError, ValueError) as error:  # the TLS probe failed; ValueError: closed meanwhile
            health = NodeHealth(NO_ANSWER, time.time(), f"{type(error).__name__}: {error}")
        with self._lock:
            if not self._closed:
                self._results[key[0]] = health

    def _check_method(self, key: _Key, shown: Announcement) -> Any:
        """The Check method of the node's health channel, opened on first use."""
        with self._lock:
            known = self._channels.get(key)
        if known is not None:
            return known[1]
        model_id, _, ip, port = key
        transport = connect_transport(self.credentials, host=ip, port=port, model_id=model_id, infos=shown.infos)
        channel = transport.open_channel(shown.address, CHANNEL_OPTIONS)
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        with self._lock:
            if self._closed:
                channel.close()
                raise ValueError("the probe is closed")
            self._channels[key] = (channel, check)
        return check
