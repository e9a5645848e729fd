"""Shards: ``shard_of`` is the same rule everywhere, and runners of one shard each own exactly their models.

Real peers on loopback: one ``LocalOrchestrator``, one ``LocalModelNode`` per
model (a node serves one call at a time, so two models on one node would
collide), and one runner per shard, as K coordinator processes would be.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _crunch_kit import WAIT, Crunch
from _orchestrator_fixtures import QUIET, Recorder
from _rpc_recorder import RecordingProxy, recording_proxy_fixture  # noqa: F401 (the recording_proxy fixture)
from conftest import REPO_ROOT
from mrclient import (
    ConnectionState,
    DynamicSubclassModelConcurrentRunner,
    EmptyCrunchWarning,
    InvalidCoordinatorUsageError,
    ModelPredictResult,
    TrainInferModelConcurrentRunner,
    cli,
    shard_of,
)
from mrclient.testing import LocalModelNode
from mrclient.testing.examples import BrokenTracker, EwmaTracker, TrackerBase
from mrclient.watch.announcements import Announcement
from mrclient.watch.display import model_rows, summary_parts

GOLDEN = Path(__file__).resolve().parent / "data" / "shard_golden.json"
SUCCESS = ModelPredictResult.Status.SUCCESS
RUN_TIMEOUT = 120.0


# -- the rule ----------------------------------------------------------------------------------


def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="ascii"))
    return data


def test_shard_of_gives_the_committed_answers_in_this_python() -> None:
    """The golden file is what every process of a sharded crunch must agree on, whatever its Python.

    This file is in the Makefile's PIN_TESTS: ``make test`` runs it on the
    oldest (3.10) and newest (3.13) supported Pythons as well.
    """
    data = golden()
    counts = data["counts"]
    assert counts == list(range(1, 17)) and len(data["shards"]) >= 250
    wrong = [
        (model_id, count, expected, shard_of(model_id, count))
        for model_id, answers in data["shards"]
        for count, expected in zip(counts, answers, strict=True)
        if shard_of(model_id, count) != expected
    ]
    assert wrong == [], f"{len(wrong)} answers changed, e.g. {wrong[:3]} (model_id, count, expected, got)"


PIN_PYTHONS = [REPO_ROOT / venv / "bin" / "python" for venv in (".venv-oldest", ".venv-newest")]


@pytest.mark.subprocess
@pytest.mark.skipif(not any(python.exists() for python in PIN_PYTHONS), reason="no pin venv (make pins makes them)")
def test_shard_of_gives_the_same_answers_in_a_subprocess_of_another_python_version() -> None:
    data = golden()
    program = (
        "import json, sys\n"
        "from mrclient import shard_of\n"
        "ids = json.load(sys.stdin)\n"
        "print(sys.version_info[:2], json.dumps([[shard_of(i, k) for k in range(1, 17)] for i in ids]))\n"
    )
    ids = [model_id for model_id, _ in data["shards"]]
    versions = set()
    for python in (python for python in PIN_PYTHONS if python.exists()):
        done = subprocess.run([str(python), "-c", program], input=json.dumps(ids), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, check=True, cwd=REPO_ROOT)
        version, answers = done.stdout.split(" ", 2)[:2], json.loads(done.stdout.split(") ", 1)[1])
        versions.add(" ".join(version))
        assert answers == [shards for _, shards in data["shards"]], python
    assert versions


def test_going_from_k_to_k_plus_1_shards_moves_about_1_in_k_plus_1_models_all_to_the_new_shard() -> None:
    ids = [f"model-{number}" for number in range(1000)]
    for count in range(1, 8):
        before = {model_id: shard_of(model_id, count) for model_id in ids}
        after = {model_id: shard_of(model_id, count + 1) for model_id in ids}
        moved = [model_id for model_id in ids if before[model_id] != after[model_id]]
        share = len(moved) / len(ids)
        assert share <= 1.5 / (count + 1), (count, share)
        assert share >= 0.5 / (count + 1), (count, share)  # the new shard does get its part
        assert {after[model_id] for model_id in moved} == {count}, "a model moves only to the new shard"
        sizes = [list(after.values()).count(index) for index in range(count + 1)]
        assert max(sizes) <= 1.3 * len(ids) / (count + 1), (count + 1, sizes)  # balanced


@pytest.mark.subprocess
def test_shard_of_reads_only_the_model_id_and_is_the_same_across_processes() -> None:
    """Not ``hash()``: a string's hash differs from one process to the next (PYTHONHASHSEED)."""
    ids = [f"model-{number}" for number in range(50)]
    program = "import sys; from mrclient import shard_of; print([shard_of(f'model-{n}', 7) for n in range(50)])"
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.stdout.strip() == str([shard_of(model_id, 7) for model_id in ids])


@pytest.mark.parametrize(("model_id", "count", "named"), [
    (12, 3, "model_id"), (None, 3, "model_id"), ("m", 0, "count"), ("m", -1, "count"), ("m", True, "count"),
    ("m", 2.0, "count"), ("m", "3", "count"),
])  # fmt: skip
def test_shard_of_refuses_bad_arguments_naming_them(model_id: Any, count: Any, named: str) -> None:
    with pytest.raises(InvalidCoordinatorUsageError, match=f"^{named} must be"):
        shard_of(model_id, count)


# -- runners of one shard -------------------------------------------------------------------------


@pytest.mark.parametrize("shard", [
    (0,), (0, 1, 2), "0/3", 3, (True, 3), (0, True), (0.0, 3), (0, 3.0), ("0", "3"), (0, 0), (0, -1), (3, 3), (-1, 3),
    {0: 3}, [1],
])  # fmt: skip
@pytest.mark.parametrize("runner_class", [DynamicSubclassModelConcurrentRunner, TrainInferModelConcurrentRunner])
def test_a_bad_shard_is_refused_at_construction_naming_it(runner_class: type, shard: Any) -> None:
    options: dict[str, Any] = dict(timeout=1, crunch_id="c", host="127.0.0.1", port=1)
    if runner_class is DynamicSubclassModelConcurrentRunner:
        options["base_classname"] = "a.B"
    with pytest.raises(InvalidCoordinatorUsageError, match=r"shard"):
        runner_class(shard=shard, **options)


def test_a_good_shard_is_kept_and_shown() -> None:
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=1, crunch_id="c", host="127.0.0.1", port=1, base_classname="a.B", shard=[2, 3]
    )
    try:
        assert runner.shard == (2, 3)
        assert " shard 2/3 not started, 0 ready" in repr(runner)
        assert "0 models ready (shard 2/3)" in runner._repr_html_()
    finally:
        runner.close()
    unsharded = DynamicSubclassModelConcurrentRunner(timeout=1, crunch_id="c", host="127.0.0.1", port=1,
                                                     base_classname="a.B")
    try:
        assert unsharded.shard is None and "shard" not in repr(unsharded)
    finally:
        unsharded.close()


class ShardedCrunch(Crunch):
    """A crunch of models, one node each, and a runner per shard; ``add_recorded`` puts a node behind a proxy."""

    proxies: dict[str, RecordingProxy]

    def add_recorded(self, cls: type, recording_proxy: Callable[[str], RecordingProxy]) -> str:
        """A model whose node's RPCs are recorded (``proxies[model_id]``): the orchestrator announces the proxy."""
        node = self.start_node(classes=[self.base, cls])
        proxy = recording_proxy(f"127.0.0.1:{node.port}")
        model_id = self.orchestrator.add_model(host="127.0.0.1", port=proxy.port)
        self.nodes[model_id], self.proxies[model_id] = node, proxy
        return model_id

    def rpcs(self, model_id: str, method: str) -> int:
        """How many ``method`` RPCs (``Setup``, ``Call``) reached the model's node and succeeded."""
        return sum(1 for rpc in self.proxies[model_id].recorded if rpc.method == method and rpc.code == "OK")

    def owners(self, model_ids: set[str], count: int) -> list[set[str]]:
        """The expected split of ``model_ids`` among ``count`` shards."""
        return [{model_id for model_id in model_ids if shard_of(model_id, count) == index} for index in range(count)]


@pytest.fixture
def sharded(local_node: Callable[..., LocalModelNode]) -> Iterator[ShardedCrunch]:
    with ShardedCrunch.running("sharded", local_node, TrackerBase) as kit:
        kit.proxies = {}
        yield kit


def test_three_shards_split_a_changing_crunch_each_model_set_up_called_and_reportable_by_one(
    sharded: ShardedCrunch, recording_proxy: Callable[[str], RecordingProxy]
) -> None:
    """What each node received proves it: one Setup per deployment and one Call per round, from one shard."""
    count = 3
    crunch = {sharded.add_recorded(EwmaTracker, recording_proxy) for _ in range(30)}
    owners = sharded.owners(crunch, count)
    assert all(owners), owners  # 30 models: each shard owns some
    recorders = [Recorder() for _ in range(count)]
    runners = []
    for index in range(count):
        runner = sharded.runner(len(owners[index]), shard=(index, count))
        runner.on_model_joined(recorders[index].joined)
        runner.on_model_left(recorders[index].left)
        runners.append(runner)

    def check_split(expected: list[set[str]], size: int, gone: set[str] = frozenset()) -> None:
        """``gone``: the models that left, each kept in its own shard's stats() only, marked left."""
        for index, runner in enumerate(runners):
            assert {model.model_id for model in runner.models} == expected[index]
            assert {model.model_id for model in runner.stats(include_left=False)} == expected[index]
            states = {stats.model_id: stats.state for stats in runner.stats().values()}
            assert states == {**dict.fromkeys(expected[index], "ready"), **dict.fromkeys(gone & owners[index], "left")}
            assert {state.model_id for state in runner.model_cluster.setup_states()} == expected[index]
            assert runner.model_cluster.crunch_size == size
            assert f"shard {index}/{count}" in repr(runner)
        assert set().union(*expected) == set(sharded.orchestrator.running_models)

    def call_every_shard(expected: list[set[str]]) -> None:
        for index, runner in enumerate(runners):
            results = runner.call("predict")
            assert {model.model_id for model in results} == expected[index]
            assert all(result.status is SUCCESS for result in results.values()), results

    check_split(owners, 30)
    assert {model_id: sharded.rpcs(model_id, "Setup") for model_id in crunch} == dict.fromkeys(crunch, 1)
    call_every_shard(owners)
    assert {model_id: sharded.rpcs(model_id, "Call") for model_id in crunch} == dict.fromkeys(crunch, 1)

    # Reportable by its own shard only: any other shard refuses, and sends nothing.
    for runner in runners:
        for model in runner.models:
            for other in (other for other in runners if other is not runner):
                with pytest.raises(InvalidCoordinatorUsageError, match="not of this runner's shard .*/3"):
                    other.report_failure(model, "LOW_PERFORMANCE", "not yours")
    assert sharded.orchestrator.reports == []

    # The crunch changes: 10 join, 5 leave, 3 are redeployed (a new deployment on the same node).
    originals = sorted(crunch)
    joined = {sharded.add_recorded(EwmaTracker, recording_proxy) for _ in range(10)}
    leaving, redeployed = originals[:5], originals[5:8]
    for model_id in leaving:
        sharded.orchestrator.stop_model(model_id)
    deployments = {model_id: sharded.orchestrator.redeploy_model(model_id) for model_id in redeployed}
    now = (crunch | joined) - set(leaving)
    owners_now = sharded.owners(now, count)
    for index, recorder in enumerate(recorders):
        expected = [("joined", model_id, sharded.orchestrator.model(model_id)["deployment_id"])
                    for model_id in joined & owners_now[index]]
        expected += [("joined", model_id, deployments[model_id]) for model_id in owners_now[index] & set(redeployed)]
        assert recorder.wait_for_events(*expected), (index, recorder.summary(), expected)
        left = {model_id for kind, model_id, _ in recorder.summary() if kind == "left"}
        assert left == (set(leaving) | set(redeployed)) & owners[index]
        assert {model_id for _, model_id, _ in recorder.summary()} <= owners_now[index] | owners[index]
        assert runners[index].wait_for_models(len(owners_now[index]), WAIT)
    check_split(owners_now, 35, gone=set(leaving))
    assert owners_now == [(owners[index] - set(leaving)) | (joined & owners_now[index]) for index in range(count)], \
        "a redeploy keeps a model in its shard"
    setups = {model_id: 2 if model_id in redeployed else 1 for model_id in crunch | joined}
    assert {model_id: sharded.rpcs(model_id, "Setup") for model_id in crunch | joined} == setups
    call_every_shard(owners_now)
    calls = {model_id: (model_id in crunch) + (model_id in now) for model_id in crunch | joined}
    assert {model_id: sharded.rpcs(model_id, "Call") for model_id in crunch | joined} == calls


def test_a_model_failing_is_reported_by_its_own_shard_only(sharded: ShardedCrunch) -> None:
    count = 3
    working = {sharded.add(EwmaTracker) for _ in range(6)}
    broken = sharded.add(BrokenTracker)
    owners = sharded.owners(working | {broken}, count)
    owner = shard_of(broken, count)
    runners = [sharded.runner(len(owners[index]), shard=(index, count), max_consecutive_failures=1)
               for index in range(count)]
    for _ in range(2):  # one failure is allowed, the second is reported
        for index, runner in enumerate(runners):
            results = runner.call("predict")
            assert {model.model_id for model in results} == owners[index]
    assert sharded.orchestrator.wait_for_reports(1, WAIT)
    assert not sharded.orchestrator.wait_for_reports(2, QUIET), sharded.orchestrator.reports
    (report,) = sharded.orchestrator.reports
    assert (report["model_id"], report["failure_code"]) == (broken, "MULTIPLE_FAILED")
    assert broken not in {model.model_id for model in runners[owner].models}
    for index, runner in enumerate(runners):
        assert {model.model_id for model in runner.models} == owners[index] - {broken}
        left = {stats.model_id: stats.left_reason for stats in runner.stats().values() if stats.state == "left"}
        assert left == ({broken: "reported MULTIPLE_FAILED"} if index == owner else {}), "kept by its own shard only"


def test_a_shard_that_owns_no_model_of_a_crunch_says_so_once_at_info_and_runs_those_that_join(
    sharded: ShardedCrunch, caplog: pytest.LogCaptureFixture
) -> None:
    crunch = {sharded.add(EwmaTracker) for _ in range(2)}
    count = 3
    empty = next(index for index in range(count) if index not in {shard_of(model_id, count) for model_id in crunch})
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="mrclient.cluster"):
        warnings.simplefilter("always")
        runner = sharded.runner(shard=(empty, count))
    assert not [warning for warning in caught if issubclass(warning.category, EmptyCrunchWarning)]
    said = [record for record in caplog.records if "owns none" in record.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO, caplog.text
    assert f"shard {empty}/{count} of crunch sharded owns none of its 2 models" in said[0].getMessage()
    assert runner.models == [] and runner.model_cluster.crunch_size == 2
    # A model of its shard joins: it runs it.
    node = sharded.start_node(classes=[TrackerBase, EwmaTracker])
    joiner = next(f"joiner-{n}" for n in range(100) if shard_of(f"joiner-{n}", count) == empty)
    sharded.orchestrator.add_model(host="127.0.0.1", port=node.port, model_id=joiner)
    assert runner.wait_for_models(1, WAIT)
    assert [model.model_id for model in runner.models] == [joiner]


def test_a_shard_of_an_empty_crunch_still_gets_the_empty_crunch_warning(sharded: ShardedCrunch) -> None:
    with pytest.warns(EmptyCrunchWarning, match="is the crunch id right"):
        runner = sharded.runner(shard=(1, 2))
    assert runner.models == [] and runner.model_cluster.crunch_size == 0


# -- the command line ----------------------------------------------------------------------------


def mrclient_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mrclient", *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, cwd=REPO_ROOT)


@pytest.mark.subprocess
def test_call_with_shard_calls_only_that_shards_models(sharded: ShardedCrunch) -> None:
    crunch = {sharded.add(EwmaTracker) for _ in range(5)}
    count = 2
    owners = sharded.owners(crunch, count)
    common = ["call", "--host", "127.0.0.1", "--port", str(sharded.orchestrator.port), "--crunch-id", "sharded",
              "--base-classname", "TrackerBase", "--json", "-q"]
    for index in range(count):
        done = mrclient_command(*common, "--shard", f"{index}/{count}", "predict")
        assert done.returncode == (0 if owners[index] else 1), done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        assert {row["model_id"] for row in rows} == owners[index]
        assert all(row["status"] == "SUCCESS" for row in rows)


@pytest.mark.subprocess
def test_call_with_a_shard_that_owns_none_says_so_and_exits_1(sharded: ShardedCrunch) -> None:
    model_id = sharded.add(EwmaTracker)
    other = 1 - shard_of(model_id, 2)
    done = mrclient_command("call", "--host", "127.0.0.1", "--port", str(sharded.orchestrator.port), "--crunch-id",
                            "sharded", "--base-classname", "TrackerBase", "--shard", f"{other}/2", "predict")
    assert done.returncode == 1, done
    said = " ".join(done.stderr.split())  # wrapped at 80 columns
    assert f"error: shard {other}/2 owns none of the 1 model of crunch 'sharded': nothing to call" in said, said


@pytest.mark.parametrize("shard", ["3/3", "-1/3", "0/0", "1", "a/b", "1/2/3", "0.5/2", ""])
def test_call_with_a_bad_shard_exits_2_with_the_usage(shard: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Parsed in this process (argparse exits before anything else runs); the command itself in the tests above."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["call", "--crunch-id", "c", "--base-classname", "a.B", f"--shard={shard}", "predict"])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("usage: mrclient call"), stderr
    said = " ".join(stderr.split())  # wrapped at 80 columns
    assert f"argument --shard: not a shard I/K (I from 0 to K - 1, e.g. 0/3 for the first of three): {shard!r}" in said


def test_watch_table_shows_each_models_shard_and_the_count_per_shard() -> None:
    running = [Announcement(model_id=f"model-{n}", deployment_id=f"d{n}", state="RUNNING", ip="127.0.0.1",
                            port=9000 + n, since=0.0) for n in range(1, 7)]
    stopped = Announcement(model_id="model-9", deployment_id="d9", state="STOPPED", since=0.0)
    columns, rows = model_rows([*running, stopped], shards=3)
    assert [column.name for column in columns][:2] == ["MODEL", "SHARD"]
    assert {row[0]: row[1] for row in rows[1:]} == {
        shown.model_id: str(shard_of(shown.model_id, 3)) for shown in [*running, stopped]
    }
    columns, rows = model_rows(running)
    assert "SHARD" not in [column.name for column in columns] and len(rows[0]) == len(columns)
    state = ConnectionState(connected=True, since=None, reconnects=0, reports_pending=0, reports_unconfirmed=0)
    parts = summary_parts("c", state, [*running, stopped], shards=3)
    per_shard = [sum(1 for shown in running if shard_of(shown.model_id, 3) == index) for index in range(3)]
    assert f"running per shard of 3: 0:{per_shard[0]} 1:{per_shard[1]} 2:{per_shard[2]}" in parts


@pytest.mark.subprocess
def test_watch_with_shards_says_each_models_shard(sharded: ShardedCrunch) -> None:
    model_id = sharded.add(EwmaTracker)
    process = subprocess.Popen(
        [sys.executable, "-m", "mrclient", "watch", "--host", "127.0.0.1", "--port", str(sharded.orchestrator.port),
         "--crunch-id", "sharded", "--shards", "4", "--output", "lines"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
    )
    first: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: first.append(stdout.readline()), daemon=True)
    reader.start()
    try:
        reader.join(RUN_TIMEOUT)
        assert first and f"running    {model_id} shard {shard_of(model_id, 4)} " in first[0], first
    finally:
        process.terminate()
        process.wait(RUN_TIMEOUT)
        stdout.close()
