"""The checks at the door, from plain values."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from mrclient import InvalidCoordinatorUsageError
from mrclient._support.validation import check_crunch_id, check_host, check_non_negative_int, check_port, check_timeout


@pytest.mark.parametrize("value", [0, -1, None, "5", float("nan"), math.inf, -math.inf, True, [5]])
def test_a_bad_timeout_is_refused_and_named(value: Any) -> None:
    with pytest.raises(InvalidCoordinatorUsageError, match=rf"^timeout must be .*, got {re.escape(repr(value))}$"):
        check_timeout("timeout", value)


@pytest.mark.parametrize("value, expected", [(5, 5.0), (0.25, 0.25), (1e-3, 0.001)])
def test_a_good_timeout_is_seconds(value: Any, expected: float) -> None:
    assert check_timeout("timeout", value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [("localhost", "localhost"), ("orchestrator.example.com", "orchestrator.example.com"), ("127.0.0.1", "127.0.0.1"),
     ("::1", "::1"), ("[::1]", "::1"), (" host-1 ", "host-1"), ("model_orchestrator", "model_orchestrator")],
)
def test_hosts_and_addresses(value: str, expected: str) -> None:
    assert check_host(value) == expected


@pytest.mark.parametrize(
    "value, hint",
    [("ws://localhost:8000/bird-game", "not a URL"), ("http://host", "not a URL"), ("localhost:8000", "port separately"),
     ("", "host name"), (None, "host name"), ("bad host", "host name"), ("-x.com", "host name")],
)
def test_urls_and_garbage_are_refused_with_a_hint(value: Any, hint: str) -> None:
    with pytest.raises(InvalidCoordinatorUsageError, match=hint):
        check_host(value)


@pytest.mark.parametrize("value, expected", [(8000, 8000), ("8000", 8000), (" 443 ", 443), (65535, 65535)])
def test_ports_and_numeric_strings(value: Any, expected: int) -> None:
    assert check_port(value) == expected


@pytest.mark.parametrize("value", [0, 65536, -1, "80a", "", None, 80.0, True])
def test_bad_ports_are_refused(value: Any) -> None:
    with pytest.raises(InvalidCoordinatorUsageError, match="port must be a TCP port number"):
        check_port(value)


def test_crunch_id_and_thresholds() -> None:
    assert check_crunch_id("bird-game") == "bird-game"
    for value in ("", " ", None, 7):
        with pytest.raises(InvalidCoordinatorUsageError, match="crunch_id"):
            check_crunch_id(value)
    assert check_non_negative_int("max_consecutive_failures", 0) == 0
    for value in (-1, 1.5, "3", None, True):
        with pytest.raises(InvalidCoordinatorUsageError, match="max_consecutive_failures must be an integer, 0 or more"):
            check_non_negative_int("max_consecutive_failures", value)
