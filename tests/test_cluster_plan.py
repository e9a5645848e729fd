"""The event rules of PROTOCOL.md, as a pure plan: plain data, no sockets, thousands of cases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrclient.cluster.plan import Plan, plan_event
from mrclient.wire.entries import ModelEntry, Rejected, parse_entry


@dataclass(frozen=True)
class Rec:
    """A runner in the table, as the rules see it, plus an identity to follow it."""

    deployment_id: str
    ip: str
    port: int
    infos: Mapping[str, Any] = field(default_factory=dict)
    ident: str = "new"


def entry(model_id: str, deployment_id: str = "d1", state: str = "RUNNING", ip: str = "10.0.0.1",
          port: int = 5000, **infos: Any) -> dict[str, Any]:
    return {"model_id": model_id, "deployment_id": deployment_id, "state": state, "ip": ip, "port": port,
            "infos": infos}


def known(**models: tuple[str, str, int]) -> dict[str, Rec]:
    return {mid: Rec(dep, ip, port, ident=f"orig-{mid}") for mid, (dep, ip, port) in models.items()}


def starts(plan: Plan) -> list[tuple[str, str, str | None, int | None]]:
    return [(e.model_id, e.deployment_id, e.ip, e.port) for e in plan.start]


# -- each rule, by example ----------------------------------------------------------------


def test_a_new_running_model_is_started() -> None:
    plan = plan_event({}, [entry("m1", model_name="alpha")], snapshot=False)
    assert starts(plan) == [("m1", "d1", "10.0.0.1", 5000)]
    assert plan.start[0].model_name == "alpha"
    assert plan.close == () and plan.refresh == () and plan.problems == ()


def test_same_deployment_and_address_keeps_the_runner_and_refreshes_its_infos() -> None:
    plan = plan_event(known(m1=("d1", "10.0.0.1", 5000)), [entry("m1", model_name="renamed", extra=1)], snapshot=False)
    assert plan.close == () and plan.start == ()
    assert [(e.model_id, e.model_name, dict(e.infos)) for e in plan.refresh] == [
        ("m1", "renamed", {"model_name": "renamed", "extra": 1})
    ]


def test_a_moved_address_replaces_the_runner() -> None:
    plan = plan_event(known(m1=("d1", "10.0.0.1", 5000)), [entry("m1", port=5001)], snapshot=False)
    assert plan.close == ("m1",)
    assert starts(plan) == [("m1", "d1", "10.0.0.1", 5001)]


def test_a_new_deployment_replaces_the_runner_even_at_the_same_address() -> None:
    plan = plan_event(known(m1=("d1", "10.0.0.1", 5000)), [entry("m1", deployment_id="d2")], snapshot=False)
    assert plan.close == ("m1",)
    assert starts(plan) == [("m1", "d2", "10.0.0.1", 5000)]


def test_stopped_and_recovering_close_only_the_matching_deployment() -> None:
    table = known(m1=("d1", "10.0.0.1", 5000))
    for state in ("STOPPED", "RECOVERING"):
        assert plan_event(table, [entry("m1", state=state)], snapshot=False).close == ("m1",)
        stale = plan_event(table, [entry("m1", deployment_id="d0", state=state)], snapshot=False)
        assert stale == Plan(), "a stale deployment's state must not touch the current runner"
        assert plan_event(table, [entry("m9", state=state)], snapshot=False) == Plan()


def test_recovering_then_running_in_one_frame_restarts_the_runner() -> None:
    table = known(m1=("d1", "10.0.0.1", 5000))
    plan = plan_event(table, [entry("m1", state="RECOVERING"), entry("m1")], snapshot=False)
    assert plan.close == ("m1",)
    assert starts(plan) == [("m1", "d1", "10.0.0.1", 5000)]


def test_an_init_removes_models_it_does_not_mention_and_an_update_does_not() -> None:
    table = known(m1=("d1", "10.0.0.1", 5000), m2=("d1", "10.0.0.2", 5000))
    assert plan_event(table, [entry("m1")], snapshot=True).close == ("m2",)
    assert set(plan_event(table, [], snapshot=True).close) == {"m1", "m2"}
    assert plan_event(table, [entry("m1")], snapshot=False).close == ()


def test_within_a_frame_only_the_last_runner_of_a_model_is_started() -> None:
    plan = plan_event({}, [entry("m1", "d1"), entry("m1", "d2"), entry("m1", "d3", port=5001)], snapshot=False)
    assert starts(plan) == [("m1", "d3", "10.0.0.1", 5001)]
    gone = plan_event({}, [entry("m1", "d1"), entry("m1", "d1", state="STOPPED")], snapshot=False)
    assert gone == Plan(), "a model started and stopped in the same frame is never started"


def test_a_newer_entry_for_a_runner_to_start_brings_its_infos() -> None:
    plan = plan_event({}, [entry("m1", model_name="old"), entry("m1", model_name="new")], snapshot=False)
    assert [e.model_name for e in plan.start] == ["new"]


def test_a_stale_running_entry_wins_as_the_protocol_says() -> None:
    # RUNNING for another deployment always replaces: the orchestrator's latest word counts.
    plan = plan_event(known(m1=("d2", "10.0.0.1", 5000)), [entry("m1", "d1")], snapshot=False)
    assert plan.close == ("m1",) and starts(plan) == [("m1", "d1", "10.0.0.1", 5000)]


# -- bad input --------------------------------------------------------------------------------


def test_each_bad_entry_is_described_once_and_the_rest_of_the_frame_applies() -> None:
    frame: list[Any] = [
        "not an object",
        {"deployment_id": "d1", "state": "RUNNING", "ip": "10.0.0.1", "port": 5000},
        entry("m2", port="abc"),  # type: ignore[arg-type]
        entry("m3", state="PAUSED"),
        {**entry("m4"), "infos": ["x"]},
        entry("m5", ip=""),
        entry("m6", port=True),
        entry("m7", port=70000),
        entry("ok"),
    ]
    plan = plan_event({}, frame, snapshot=False)
    assert starts(plan) == [("ok", "d1", "10.0.0.1", 5000)]
    assert len(plan.problems) == 8
    expected = [
        "entry 0 skipped: not an object",
        "entry 1 skipped: model_id is missing",
        "entry 2 (model 'm2') skipped: port is 'abc' (str), not a number",
        "entry 3 (model 'm3') skipped: unknown state 'PAUSED'",
        "entry 4 (model 'm4') skipped: infos is list, not an object",
        "entry 5 (model 'm5') skipped: ip is '' (str), not a non-empty string",
        "entry 6 (model 'm6') skipped: port is True (bool), not a number",
        "entry 7 (model 'm7') skipped: port 70000 is out of range",
    ]
    for problem, start in zip(plan.problems, expected, strict=True):
        assert problem.startswith(start), problem


def test_an_entry_with_several_faults_names_them_all() -> None:
    rejected = parse_entry({"model_id": 7, "state": "RUNNING", "port": "x"})
    assert isinstance(rejected, Rejected) and rejected.model_id is None
    for fault in ("model_id is 7 (int)", "deployment_id is missing", "ip is missing", "port is 'x'"):
        assert fault in rejected.reason


def test_stopped_entries_need_no_address_and_missing_infos_are_empty() -> None:
    parsed = parse_entry({"model_id": "m1", "deployment_id": "d1", "state": "STOPPED"})
    assert parsed == ModelEntry("m1", "d1", "STOPPED", None, None, {})
    running = parse_entry({**entry("m1"), "infos": None})
    assert isinstance(running, ModelEntry) and running.infos == {} and running.model_name is None


def test_a_malformed_entry_in_an_init_does_not_tear_its_model_down() -> None:
    table = known(m1=("d1", "10.0.0.1", 5000), m2=("d1", "10.0.0.1", 5001))
    bad_port: Any = "5000/tcp"
    plan = plan_event(table, [entry("m1", port=bad_port), entry("m2", port=5001)], snapshot=True)
    assert plan.close == () and plan.start == () and len(plan.problems) == 1


# -- frames as the real orchestrator sends them (PROTOCOL.md section 1) ------------------------


def test_docker_style_string_ports_and_host_names_are_accepted() -> None:
    plan = plan_event({}, [entry("1", "1_20261206_161245_287", ip="localhost", port="32768")],  # type: ignore[arg-type]
                      snapshot=True)
    assert starts(plan) == [("1", "1_20261206_161245_287", "localhost", 32768)]
    assert isinstance(plan.start[0].port, int) and plan.problems == ()


def test_a_string_port_naming_the_runners_port_keeps_the_runner() -> None:
    table = known(m1=("d1", "localhost", 32768))
    plan = plan_event(table, [entry("m1", ip="localhost", port="32768", model_name="x")], snapshot=True)  # type: ignore[arg-type]
    assert plan.close == () and plan.start == () and [e.model_name for e in plan.refresh] == ["x"]


@pytest.mark.parametrize("port", ["abc", "", " 32768", "32768 ", "+32768", "-1", "3e4", "0x10", "32768.0",
                                  "\u0663\u0662\u0667\u0666\u0668", "32768/tcp", 32768.0, None, [32768]])
def test_a_port_that_is_not_a_number_is_refused_and_only_its_entry_skipped(port: Any) -> None:
    plan = plan_event({}, [entry("bad", port=port), entry("ok")], snapshot=False)
    assert starts(plan) == [("ok", "d1", "10.0.0.1", 5000)]
    kind = "null" if port is None else type(port).__name__
    assert plan.problems == (f"entry 0 (model 'bad') skipped: port is {port!r} ({kind}), not a number",)


@pytest.mark.parametrize("port", ["0", "00000", "65536", "99999999999", "9" * 5000, 0, -1, 65536])
def test_a_port_out_of_range_is_refused_with_its_value(port: Any) -> None:
    plan = plan_event({}, [entry("bad", port=port)], snapshot=False)
    assert plan.start == () and len(plan.problems) == 1
    assert plan.problems[0].startswith("entry 0 (model 'bad') skipped: port ")
    assert plan.problems[0].endswith(" is out of range")
    assert len(plan.problems[0]) < 120, "a huge value is shown cut"


@pytest.mark.parametrize("second", [{"ip": "", "port": 0}, {"ip": None, "port": 0}, {"port": 0}, {"ip": "", "port": "0"}],
                         ids=["empty-ip", "null-ip", "no-ip", "string-zero"])
def test_the_two_frames_of_a_stop_close_once_and_the_second_is_quiet(second: dict[str, Any]) -> None:
    table = known(m1=("d1", "localhost", 32768))
    first = entry("m1", state="STOPPED", ip="localhost", port="32768")  # type: ignore[arg-type]
    then = {**entry("m1", state="STOPPED"), **second}
    if "ip" not in second:
        del then["ip"]
    plan = plan_event(table, [first], snapshot=False)
    assert plan == Plan(close=("m1",))
    assert plan_event({}, [then], snapshot=False) == Plan(), "the second frame: nothing to do, nothing to say"
    assert plan_event(table, [first, then], snapshot=False) == Plan(close=("m1",)), "both in one frame"
    assert plan_event(table, [then], snapshot=False) == Plan(close=("m1",)), "the second alone still stops it"


def test_a_replaced_submission_running_new_then_stopped_old_keeps_the_new_runner() -> None:
    table: dict[str, Rec] = known(m1=("d1", "localhost", 32768))
    new = entry("m1", "d2", ip="localhost", port="32769")  # type: ignore[arg-type]
    stop_old = entry("m1", "d1", state="STOPPED", ip="localhost", port="32768")  # type: ignore[arg-type]
    stop_old_again = {**entry("m1", "d1", state="STOPPED"), "ip": "", "port": 0}
    plan = plan_event(table, [new], snapshot=False)
    assert plan.close == ("m1",) and starts(plan) == [("m1", "d2", "localhost", 32769)]
    table = carry_out(table, plan)
    for frame in ([stop_old], [stop_old_again]):
        assert plan_event(table, frame, snapshot=False) == Plan(), "a stale deployment's stop leaves the new one"
    assert plan_event(known(m1=("d1", "localhost", 32768)), [new, stop_old, stop_old_again], snapshot=False) == plan


def test_each_closed_model_has_its_reason_for_its_statistics() -> None:
    table = known(m1=("d1", "10.0.0.1", 5000), m2=("d1", "10.0.0.1", 5001), m3=("d1", "10.0.0.1", 5002),
                  m4=("d1", "10.0.0.1", 5003), m5=("d1", "10.0.0.1", 5004), m6=("d1", "10.0.0.1", 5005))  # fmt: skip
    frame = [
        entry("m1", state="STOPPED"), entry("m2", state="RECOVERING"), entry("m3", "d2", port=5002),
        entry("m4", port=6000), entry("m6", port=5005),
    ]  # fmt: skip
    plan = plan_event(table, frame, snapshot=True)
    assert dict(plan.reasons) == {
        "m1": "stopped", "m2": "recovering", "m3": "redeployed", "m4": "moved", "m5": "gone"
    }  # fmt: skip
    assert set(plan.close) == set(plan.reasons), "every model closed has a reason, and only those"
    assert plan_event(table, frame, snapshot=True) == replace(plan, reasons={}), "not part of a plan's equality"


# -- thousands of cases: the plan against an independent, entry-by-entry oracle -----------------

MODEL_IDS = ["m1", "m2", "m3", "m4"]
DEPLOYMENTS = ["d1", "d2", "d3"]
IPS = ["10.0.0.1", "10.0.0.2", "localhost"]
PORTS: list[Any] = [5000, 5001, "5000", "5001"]  # ints (process and cloud backends) or numeric strings (Docker)
STATES = ["RUNNING", "RUNNING", "STOPPED", "RECOVERING", "PAUSED"]

infos_st = st.fixed_dictionaries({"model_name": st.sampled_from(["alpha", "beta", "gamma"])})
good_entry_st = st.builds(
    lambda mid, dep, state, ip, port, infos: {"model_id": mid, "deployment_id": dep, "state": state,
                                              "ip": ip, "port": port, "infos": infos},
    st.sampled_from(MODEL_IDS), st.sampled_from(DEPLOYMENTS), st.sampled_from(STATES),
    st.sampled_from(IPS), st.sampled_from(PORTS), infos_st,
)
junk_st = st.one_of(
    st.none(), st.integers(-5, 70000), st.text(max_size=3), st.booleans(), st.lists(st.none(), max_size=1),
    st.sampled_from(["0", "65536", " 5000", "5000.0", "+5000", "0x10", "\u0665\u0660\u0660\u0660"]),
)


@st.composite
def any_entry_st(draw: st.DrawFn) -> Any:
    """Mostly valid entries; some with a key dropped or a value of the wrong type; a few non-objects."""
    raw: dict[str, Any] = draw(good_entry_st)
    kind = draw(st.sampled_from(["good"] * 6 + ["second-stop", "drop", "junk", "not-object"]))
    if kind == "second-stop":  # the second STOPPED frame of a stop: port 0, an empty, null or no ip
        raw.update(state="STOPPED", port=0, ip=draw(st.sampled_from(["", None])))
        if draw(st.booleans()):
            del raw["ip"]
    elif kind == "drop":
        del raw[draw(st.sampled_from(sorted(raw)))]
    elif kind == "junk":
        raw[draw(st.sampled_from(sorted(raw)))] = draw(junk_st)
    elif kind == "not-object":
        return draw(junk_st)
    return raw


table_st = st.dictionaries(
    st.sampled_from(MODEL_IDS),
    st.tuples(st.sampled_from(DEPLOYMENTS), st.sampled_from(IPS), st.sampled_from([5000, 5001])),
).map(lambda models: known(**models))
frame_st = st.lists(any_entry_st(), max_size=8)


def is_valid(raw: Any) -> bool:
    """The contract's MODEL entry, written out independently of the parser."""
    if not isinstance(raw, dict):
        return False
    if not all(isinstance(raw.get(k), str) and raw[k] for k in ("model_id", "deployment_id", "state")):
        return False
    if raw["state"] not in ("RUNNING", "STOPPED", "RECOVERING"):
        return False
    if raw.get("infos") is not None and not isinstance(raw["infos"], dict):
        return False
    if raw["state"] != "RUNNING":
        return True
    port = port_number(raw.get("port"))
    return isinstance(raw.get("ip"), str) and bool(raw["ip"]) and port is not None and 0 < port <= 65535


def port_number(port: Any) -> int | None:
    """The contract's port: an int, or a string of ASCII digits 0-9."""
    if isinstance(port, str):
        return int(port) if port and all(c in "0123456789" for c in port) else None
    return port if isinstance(port, int) and not isinstance(port, bool) else None


def oracle(table: dict[str, Rec], frame: list[Any], snapshot: bool) -> dict[str, Rec]:
    """PROTOCOL.md's rules applied literally, one entry at a time, to a copy of the table."""
    table = dict(table)
    mentioned = set()
    for raw in frame:
        if isinstance(raw, dict) and isinstance(raw.get("model_id"), str) and raw["model_id"]:
            mentioned.add(raw["model_id"])
        if not is_valid(raw):
            continue
        mid = raw["model_id"]
        current = table.get(mid)
        if current is not None and current.deployment_id != raw["deployment_id"]:
            current = None
        if raw["state"] in ("STOPPED", "RECOVERING"):
            if current is not None:
                del table[mid]
        elif current is not None and (current.ip, current.port) == (raw["ip"], port_number(raw["port"])):
            table[mid] = replace(current, infos=raw.get("infos") or {})
        else:
            table[mid] = Rec(raw["deployment_id"], raw["ip"], port_number(raw["port"]) or 0, raw.get("infos") or {})
    if snapshot:
        table = {mid: rec for mid, rec in table.items() if mid in mentioned}
    return table


def carry_out(table: dict[str, Rec], plan: Plan) -> dict[str, Rec]:
    """What the cluster does with a plan, on plain records; asserts the plan is well formed."""
    table = dict(table)
    assert len(set(plan.close)) == len(plan.close), "a runner closed twice"
    for mid in plan.close:
        del table[mid]  # KeyError: closing a runner that is not in the table
    assert len({e.model_id for e in plan.start}) == len(plan.start), "two runners started for one model"
    for e in plan.start:
        assert e.model_id not in table, "a runner started without closing the previous one"
        assert e.state == "RUNNING" and e.ip and isinstance(e.port, int) and not isinstance(e.port, bool)
        table[e.model_id] = Rec(e.deployment_id, e.ip, e.port, dict(e.infos))
    started = {e.model_id for e in plan.start}
    for e in plan.refresh:
        assert e.model_id not in started, "a refresh for a runner the plan starts"
        table[e.model_id] = replace(table[e.model_id], infos=dict(e.infos))
    return table


@settings(max_examples=1500, deadline=None)
@given(table=table_st, frame=frame_st, snapshot=st.booleans())
def test_the_plan_does_what_the_rules_say_entry_by_entry(
    table: dict[str, Rec], frame: list[Any], snapshot: bool
) -> None:
    plan = plan_event(table, frame, snapshot=snapshot)
    assert carry_out(table, plan) == oracle(table, frame, snapshot)
    assert len(plan.problems) == sum(not is_valid(raw) for raw in frame)
    assert set(plan.reasons) == set(plan.close)
    started = {e.model_id: e for e in plan.start}
    for model_id, why in plan.reasons.items():
        if model_id in started:  # replaced: by a new deployment, or the same one at a new address
            same = started[model_id].deployment_id == table[model_id].deployment_id
            assert why == ("moved" if same else "redeployed"), (model_id, why)
        else:
            assert why in ("stopped", "recovering", "gone"), (model_id, why)


@settings(max_examples=600, deadline=None)
@given(table=table_st, frame=frame_st)
def test_a_frame_at_once_equals_its_entries_one_frame_each(table: dict[str, Rec], frame: list[Any]) -> None:
    whole = carry_out(table, plan_event(table, frame, snapshot=False))
    stepwise = table
    for raw in frame:
        stepwise = carry_out(stepwise, plan_event(stepwise, [raw], snapshot=False))
    assert whole == stepwise


@settings(max_examples=300, deadline=None)
@given(table=table_st, frame=frame_st, snapshot=st.booleans())
def test_planning_is_pure(table: dict[str, Rec], frame: list[Any], snapshot: bool) -> None:
    before = (dict(table), repr(frame))
    first = plan_event(table, frame, snapshot=snapshot)
    assert (dict(table), repr(frame)) == before, "plan_event changed its input"
    assert plan_event(table, frame, snapshot=snapshot) == first
