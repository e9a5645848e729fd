"""Reports the orchestrator can act on: refused at the door, and re-sent after a reconnect only if still valid.

The rules are pure functions (``mrclient.cluster.reports``, ``mrclient.orchestrator.redelivery``),
tested here with plain data; the door is tested on a real runner against a
LocalOrchestrator, whose ``reports`` must stay empty when a report is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrclient import DynamicSubclassModelConcurrentRunner, InvalidCoordinatorUsageError
from mrclient.cluster.reports import FAILURE_CODES, report_problem
from mrclient.orchestrator.redelivery import Redelivery, redeliver
from mrclient.runners import DynamicSubclassModelRunner
from mrclient.testing import LocalModelNode, LocalOrchestrator
from mrclient.testing.examples import BASE_CLASSNAME, EwmaTracker, TrackerBase

WAIT = 10.0
QUIET = 0.3


def report(model_id: str, ip: str, code: str = "MULTIPLE_FAILED") -> str:
    item = {"model_id": model_id, "failure_code": code, "failure_reason": None, "ip": ip}
    return json.dumps({"event": "report_failure", "data": [item]})


def listed(model_id: str, ip: str, port: Any = 5000) -> dict[str, Any]:
    return {"model_id": model_id, "deployment_id": f"d-{model_id}", "state": "RUNNING", "ip": ip, "port": port,
            "infos": {}}


# -- the door: report_problem, with plain data ----------------------------------------------------


def make_runner(model_id: str = "m1") -> DynamicSubclassModelRunner:
    return DynamicSubclassModelRunner(base_classname=BASE_CLASSNAME, deployment_id="d1", model_id=model_id,
                                      model_name=None, ip="127.0.0.1", port=5000, infos={})


def test_the_five_codes_of_the_protocol_pass_for_a_runner_it_made() -> None:
    runner = make_runner()
    assert FAILURE_CODES == ("BAD_IMPLEMENTATION", "CONNECTION_FAILED", "MULTIPLE_FAILED", "MULTIPLE_TIMEOUT",
                             "LOW_PERFORMANCE")
    for code in FAILURE_CODES:
        assert report_problem(runner, code, "why", {runner}) is None
        assert report_problem(runner, code, None, {runner}) is None


@pytest.mark.parametrize("code", ["LOW_PERF", "low_performance", "LOW_PERFORMANCE ", "", "UNKNOWN", None, 3, b"X"])
def test_any_other_code_is_named_with_the_valid_ones(code: Any) -> None:
    runner = make_runner()
    problem = report_problem(runner, code, "x", {runner})
    assert problem is not None and repr(code) in problem
    assert all(valid in problem for valid in FAILURE_CODES)


@pytest.mark.parametrize("thing", [{"model_id": "m1", "ip": "127.0.0.1"}, "m1", None, 7])
def test_anything_but_a_model_runner_is_named(thing: Any) -> None:
    problem = report_problem(thing, "LOW_PERFORMANCE", "x", set())
    assert problem is not None and "model_runner must be a model runner" in problem and repr(thing)[:20] in problem


def test_a_runner_this_client_did_not_make_is_refused() -> None:
    ours, theirs = make_runner("m1"), make_runner("m1")
    problem = report_problem(theirs, "LOW_PERFORMANCE", "x", {ours})
    assert problem is not None and "not made by this runner" in problem


def test_a_reason_must_be_text() -> None:
    runner = make_runner()
    problem = report_problem(runner, "LOW_PERFORMANCE", ValueError("boom"), {runner})
    assert problem is not None and "ValueError" in problem


# -- after a reconnect: redeliver, with plain data -----------------------------------------------


def test_a_report_whose_model_is_listed_at_its_ip_goes_again() -> None:
    held = [report("1", "localhost")]
    assert redeliver(held, [listed("1", "localhost", "32768")]) == Redelivery(send=tuple(held))


def test_a_report_whose_model_is_gone_or_moved_is_dropped_with_why() -> None:
    held = [report("gone", "10.0.0.1"), report("moved", "10.0.0.1"), report("kept", "10.0.0.2")]
    decision = redeliver(held, [listed("moved", "10.0.0.9"), listed("kept", "10.0.0.2")])
    assert decision.send == (held[2],)
    assert [(item["model_id"], why) for item, why in decision.dropped] == [
        ("gone", "the new init does not list model 'gone'"),
        ("moved", "the new init lists model 'moved' at '10.0.0.9', not at '10.0.0.1'"),
    ]


def test_the_ip_must_match_exactly_as_the_orchestrator_compares_it() -> None:
    held = [report("1", "127.0.0.1")]
    assert redeliver(held, [listed("1", "localhost")]).send == (), "localhost is not 127.0.0.1 to the orchestrator"


def test_other_messages_and_unreadable_text_go_as_they_are() -> None:
    held = ["not json", json.dumps({"event": "hello"}), json.dumps([1]), report("x", "10.0.0.1")]
    decision = redeliver(held, [])
    assert decision.send == tuple(held[:3]) and [item["model_id"] for item, _ in decision.dropped] == ["x"]


def test_a_message_with_several_reports_keeps_only_the_listed_ones() -> None:
    items = [{"model_id": m, "failure_code": "MULTIPLE_FAILED", "failure_reason": None, "ip": "10.0.0.1"}
             for m in ("a", "b", "c")]
    decision = redeliver([json.dumps({"event": "report_failure", "data": items})], [listed("b", "10.0.0.1")])
    assert [json.loads(text)["data"] for text in decision.send] == [[items[1]]]
    assert [item["model_id"] for item, _ in decision.dropped] == ["a", "c"]


MODELS = ["a", "b", "c"]
IPS = ["10.0.0.1", "localhost", ""]


@settings(max_examples=400, deadline=None)
@given(
    held=st.lists(st.one_of(st.tuples(st.sampled_from(MODELS), st.sampled_from(IPS)),
                            st.sampled_from(["other", "junk"])), max_size=8),
    entries=st.lists(st.one_of(st.tuples(st.sampled_from(MODELS), st.sampled_from(IPS)),
                               st.sampled_from(["not-an-object", "no-ip"])), max_size=6),
)
def test_exactly_the_reports_listed_at_their_ip_go_in_order_and_the_rest_untouched(
    held: list[Any], entries: list[Any]
) -> None:
    texts = [report(*h) if isinstance(h, tuple) else json.dumps({"event": "x"}) if h == "other" else "{" for h in held]
    raw_entries: list[object] = [
        listed(*e) if isinstance(e, tuple) else "junk" if e == "not-an-object" else {"model_id": "a"} for e in entries
    ]
    pairs = {e for e in entries if isinstance(e, tuple)}
    decision = redeliver(texts, raw_entries)
    expected = [t for h, t in zip(held, texts, strict=True) if not isinstance(h, tuple) or h in pairs]
    assert list(decision.send) == expected
    assert [(item["model_id"], item["ip"]) for item, _ in decision.dropped] == [
        h for h in held if isinstance(h, tuple) and h not in pairs
    ]


# -- the door, on a real runner: nothing is sent -------------------------------------------------


@pytest.fixture
def crunch(local_node: Callable[..., LocalModelNode]) -> Iterator[tuple[LocalOrchestrator, list[Any]]]:
    runners: list[Any] = []
    with LocalOrchestrator(crunch_id="reports") as orchestrator:
        for _ in range(2):
            orchestrator.add_model(port=local_node(classes=[TrackerBase, EwmaTracker]).port)
        try:
            yield orchestrator, runners
        finally:
            for runner in runners:
                runner.close()


def start_runner(orchestrator: LocalOrchestrator, runners: list[Any], **options: Any) -> Any:
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=5.0, crunch_id="reports", host="127.0.0.1", port=orchestrator.port, base_classname=BASE_CLASSNAME,
        retry_backoff_factor=0.01, **options,
    )
    runners.append(runner)
    runner.init(timeout=WAIT)
    assert runner.wait_for_models(2, WAIT)
    return runner


@pytest.mark.parametrize("report_failure", [True, False], ids=["reporting", "reporting-off"])
def test_a_misspelt_code_a_dict_or_another_runners_model_is_refused_and_nothing_is_sent(
    crunch: tuple[LocalOrchestrator, list[Any]], report_failure: bool
) -> None:
    orchestrator, runners = crunch
    runner = start_runner(orchestrator, runners, report_failure=report_failure)
    other = start_runner(orchestrator, runners)
    table = runner.models
    model = table[0]
    with pytest.raises(InvalidCoordinatorUsageError, match=r"failure_code must be one of .*LOW_PERFORMANCE.*, "
                                                           r"got 'LOW_PERF' \(unknown failure code\)"):
        runner.report_failure(model, "LOW_PERF", "x")
    with pytest.raises(InvalidCoordinatorUsageError, match=r"model_runner must be a model runner of this runner.*dict"):
        runner.report_failure({"model_id": model.model_id, "ip": model.ip}, "LOW_PERFORMANCE", "x")
    with pytest.raises(InvalidCoordinatorUsageError, match="not made by this runner"):
        runner.report_failure(other.models[0], "LOW_PERFORMANCE", "x")
    with pytest.raises(InvalidCoordinatorUsageError, match="unknown failure code"):
        runner.model_cluster.report_failure(model, "BAD_IMPL")
    assert not orchestrator.wait_for_reports(1, QUIET) and orchestrator.reports == []
    assert runner.models == table and not model.closed, "the model stays"
    assert runner.connection_state.reports_sent == {}


def test_a_valid_report_still_goes_and_stops_the_model(crunch: tuple[LocalOrchestrator, list[Any]]) -> None:
    orchestrator, runners = crunch
    runner = start_runner(orchestrator, runners)
    model = runner.models[0]
    runner.report_failure(model, "LOW_PERFORMANCE", "too slow")
    assert orchestrator.wait_for_reports(1, WAIT)
    assert orchestrator.reports == [{"model_id": model.model_id, "failure_code": "LOW_PERFORMANCE",
                                     "failure_reason": "too slow", "ip": model.ip}]
    assert orchestrator.ignored_reports == [] and model.model_id not in orchestrator.running_models
