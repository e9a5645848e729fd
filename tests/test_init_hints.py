"""What init() tells a coordinator who configured no logging: a misspelt crunch id, a wait that lasts its bound."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port
from mrclient import DynamicSubclassModelConcurrentRunner, EmptyCrunchWarning, MrclientWarning
from mrclient._support.hints import wait_hint
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

WAIT = 10.0
RUN_TIMEOUT = 120.0


@pytest.fixture
def crunch() -> Iterator[LocalOrchestrator]:
    """The crunch ``bird-game`` with one model."""
    with LocalOrchestrator(crunch_id="bird-game") as orchestrator, \
            LocalModelNode(classes=[TrackerBase, EwmaTracker]) as node:
        orchestrator.add_model(host="127.0.0.1", port=node.port)
        yield orchestrator


def runner_for(orchestrator: LocalOrchestrator, crunch_id: str) -> DynamicSubclassModelConcurrentRunner:
    return DynamicSubclassModelConcurrentRunner(
        timeout=5, crunch_id=crunch_id, host="127.0.0.1", port=orchestrator.port, base_classname=BASE_CLASSNAME,
        init_timeout=WAIT,
    )


def test_a_misspelt_crunch_id_gives_one_warning_naming_it_over_init_and_rounds(crunch: LocalOrchestrator) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning given, not only Python's first per place
        with runner_for(crunch, "bird-gmae") as runner:
            for _ in range(3):
                assert runner.call("predict") == {}
    given = [warning for warning in caught if issubclass(warning.category, MrclientWarning)]
    assert len(given) == 1, [str(warning.message) for warning in given]
    [warning] = given
    assert warning.category is EmptyCrunchWarning
    assert "'bird-gmae'" in str(warning.message) and "is the crunch id right?" in str(warning.message)
    assert warning.filename == __file__, "the warning points at the coordinator's line, not mrclient's"


def test_the_right_crunch_id_gives_no_warning(crunch: LocalOrchestrator) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with runner_for(crunch, "bird-game") as runner:
            assert len(runner.call("predict")) == 1
    assert not [warning for warning in caught if issubclass(warning.category, MrclientWarning)]


@pytest.mark.subprocess
def test_a_script_that_configured_nothing_hears_of_the_empty_crunch_on_stderr(
    crunch: LocalOrchestrator, tmp_path: Path
) -> None:
    script = tmp_path / "coordinator.py"
    script.write_text(
        "import sys\n"
        "from mrclient import DynamicSubclassModelConcurrentRunner\n"
        "runner = DynamicSubclassModelConcurrentRunner(\n"
        "    timeout=5, crunch_id='bird-gmae', host='127.0.0.1', port=int(sys.argv[1]), base_classname='a.B')\n"
        "runner.init()\n"
        "for _ in range(3):\n"
        "    runner.call('predict')\n"
        "runner.close()\n"
    )
    done = subprocess.run([sys.executable, str(script), str(crunch.port)], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("EmptyCrunchWarning") == 1 and "'bird-gmae'" in done.stderr, done.stderr
    assert f"{script}:5: EmptyCrunchWarning" in done.stderr, done.stderr


def test_the_connection_error_names_init_timeout() -> None:
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=5, crunch_id="bird-game", host="127.0.0.1", port=free_port(), base_classname="a.B", init_timeout=0.5,
    )  # nobody listens on that port
    try:
        with pytest.raises(ConnectionError) as caught:
            runner.init()
    finally:
        runner.close()
    message = str(caught.value)
    assert "within 0.5s" in message and "How long init() waits (0.5s here)" in message
    assert "init_timeout=" in message and "--init-timeout" in message


def test_a_refusal_before_the_bound_needs_no_hint() -> None:
    refused = "the orchestrator at ws://h:1/c refused the connection 3 times: unknown crunch"
    assert wait_hint(refused, waited=0.2, timeout=60) == refused
    hinted = wait_hint("could not connect", waited=60.001, timeout=60)
    assert hinted.startswith("could not connect. How long init() waits (60s here)") and "init_timeout=" in hinted
