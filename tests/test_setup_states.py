"""``ModelCluster.setup_states()`` and ``wait_for_setups()``: every announced model, and why it is not callable."""

from __future__ import annotations

import threading
from collections.abc import Callable

from mrclient import DynamicSubclassModelConcurrentRunner
from mrclient.cluster.setup_state import READY, SETTING_UP, SETUP_FAILED
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

WAIT = 30.0


def test_states_of_a_ready_a_held_and_a_failed_setup(local_node: Callable[..., LocalModelNode], gate: threading.Event) -> None:
    class HeldTracker(TrackerBase):
        def __init__(self) -> None:
            gate.wait(WAIT)

    class FailingTracker(TrackerBase):
        def __init__(self) -> None:
            raise RuntimeError("no weights file")

    with LocalOrchestrator(crunch_id="states") as orchestrator:
        good = local_node(classes=[TrackerBase, EwmaTracker])
        ready = orchestrator.add_model(port=good.port)
        held = orchestrator.add_model(port=local_node(classes=[TrackerBase, HeldTracker]).port)
        failing = orchestrator.add_model(port=local_node(classes=[TrackerBase, FailingTracker]).port)
        runner = DynamicSubclassModelConcurrentRunner(
            timeout=WAIT, crunch_id="states", host="127.0.0.1", port=orchestrator.port, base_classname=BASE_CLASSNAME,
            report_failure=False, init_timeout=1.0,
        )
        with runner:
            cluster = runner.model_cluster
            assert cluster.wait_for_setups(0.2) is False  # the held setup is still running
            states = {state.model_id: state for state in cluster.setup_states()}
            assert {m: s.state for m, s in states.items()} == {ready: READY, held: SETTING_UP, failing: SETUP_FAILED}
            assert states[ready].ready and [r.model_id for r in cluster.models] == [ready]
            assert "no weights file" in (states[failing].detail or "") and states[held].detail is None

            gate.set()  # the held setup ends
            assert cluster.wait_for_setups(WAIT) is True
            assert {s.model_id for s in cluster.setup_states() if s.ready} == {ready, held}

            orchestrator.redeploy_model(failing, port=good.port)  # announced again: the old failure is forgotten
            assert runner.wait_for_models(3, WAIT)
            assert {s.state for s in cluster.setup_states()} == {READY}
        assert cluster.setup_states() == [] and cluster.wait_for_setups(0.1) is False
