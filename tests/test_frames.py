"""parse_frame with plain bytes: every odd frame is an answer, never an exception."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrclient.wire.frames import Event, Skipped, parse_frame


def test_init_and_update_frames_are_events() -> None:
    entry = {"model_id": "m1", "state": "RUNNING"}
    assert parse_frame(json.dumps({"event": "init", "data": [entry]}).encode()) == Event("init", [entry])
    assert parse_frame(json.dumps({"event": "update", "data": []})) == Event("update", [])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 1000 + b"]" * 1000, "JSON nested too deeply to parse"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "JSON nested too deeply to parse"),
        (b'{"event": "update", "data": ["\xff"]}', "not UTF-8 text (invalid start byte at byte 30)"),
        (b"", "not JSON (Expecting value: line 1 column 1 (char 0))"),
        (b"not json", "not JSON (Expecting value: line 1 column 1 (char 0))"),
        (b"[1, 2]", "not a JSON object"),
        (b'"init"', "not a JSON object"),
        (b'{"event": "party", "data": []}', "unknown event 'party'"),
        (b'{"data": []}', "unknown event None"),
        (b'{"event": ["init"], "data": []}', "unknown event ['init']"),
        (b'{"event": "update", "data": {"model_id": "m1"}}', "its update data is not a list"),
        (b'{"event": "init"}', "its init data is not a list"),
    ],
)
def test_odd_frames_are_skipped_with_a_reason(data: bytes, reason: str) -> None:
    assert parse_frame(data) == Skipped(reason)


def test_the_orchestrators_error_object_is_an_error() -> None:
    assert parse_frame(b'{"error": "unknown crunch"}') == Skipped(
        "the orchestrator says: unknown crunch", logging.ERROR, refusal="unknown crunch"
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512) | st.text(max_size=512).map(str.encode))
def test_any_bytes_give_an_event_or_a_reason(data: bytes) -> None:
    parsed = parse_frame(data)
    assert isinstance(parsed, (Event, Skipped))
    if isinstance(parsed, Event):
        assert parsed.name in ("init", "update") and isinstance(parsed.entries, list)
