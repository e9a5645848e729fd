"""Raw floor A: a grpcio future per model, all started at once, then gathered.

Note that grpcio's synchronous channel polls each channel's completion queue
from a thread of its own while a call is in flight, so this floor starts and
ends one short-lived thread per model in every round.
"""

from __future__ import annotations

from typing import Any

import grpc

from .common import ClientConfig, run_client
from .raw import RawChannels, call_request, is_echo


class RawFuturesDriver:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.raw = RawChannels(config)

    def init(self) -> None:
        self.raw.connect_and_setup()

    def round(self, payload: dict[str, Any]) -> int:
        request = call_request(self.config, payload)
        futures = [call.future(request, timeout=self.config.timeout) for call in self.raw.calls]
        correct = 0
        for future in futures:  # each future ends by its own deadline at the latest
            try:
                correct += is_echo(future.result(), payload)
            except grpc.RpcError:
                pass
        return correct

    def close(self) -> None:
        self.raw.close()


if __name__ == "__main__":
    run_client(RawFuturesDriver)
