"""Raw floor B: the design card's shape, bare.

A ``ThreadPoolExecutor`` with one worker per model (kept warm across rounds)
issues blocking stub calls with a deadline; the round gathers them with
``concurrent.futures.wait(timeout=...)``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import grpc

from .common import ClientConfig, run_client
from .raw import RawChannels, call_request, is_echo


class RawThreadsDriver:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.raw = RawChannels(config)
        self.pool = ThreadPoolExecutor(max_workers=config.n, thread_name_prefix="raw-call")

    def init(self) -> None:
        self.raw.connect_and_setup()

    def _call(self, call: Any, request: bytes, payload: dict[str, Any]) -> bool:
        try:
            return is_echo(call(request, timeout=self.config.timeout), payload)
        except grpc.RpcError:
            return False

    def round(self, payload: dict[str, Any]) -> int:
        request = call_request(self.config, payload)
        futures: list[Future[bool]] = [
            self.pool.submit(self._call, call, request, payload) for call in self.raw.calls
        ]
        done, _ = wait(futures, timeout=self.config.timeout + 1.0)
        return sum(1 for future in done if future.result())

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.raw.close()


if __name__ == "__main__":
    run_client(RawThreadsDriver)
