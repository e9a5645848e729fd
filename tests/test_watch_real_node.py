"""A default ``mrclient watch`` sends no RPC to the reference model node (crunch-model-runner, in its own venv).

The reference node aborts a call that arrives while another runs
(``RESOURCE_EXHAUSTED``), so a watcher that set models up or called them
would make the crunch coordinator's calls fail. Behind a recording proxy, the
node gets the coordinator's Setup and calls, and nothing from the watch.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from _rpc_recorder import RecordingProxy, recording_proxy_fixture  # noqa: F401 (the recording_proxy fixture)
from conftest import TRACKER_BASE, RealNode
from mrclient.testing import LocalOrchestrator
from test_watch import assert_only_the_coordinator_called, watch_during_rounds

pytestmark = pytest.mark.subprocess  # the reference node and the watch command


@pytest.mark.timeout(900)  # covers building the model-runner virtualenv on a first run
def test_a_default_watch_sends_no_rpc_to_the_reference_node(
    real_nodes: Callable[..., RealNode], recording_proxy: Callable[[str], RecordingProxy]
) -> None:
    node = real_nodes()
    with LocalOrchestrator(crunch_id="watched") as orchestrator:
        proxies = [recording_proxy(f"127.0.0.1:{node.port}")]
        coordinator, _ = watch_during_rounds(orchestrator, proxies, TRACKER_BASE)
    assert_only_the_coordinator_called(coordinator, proxies)
