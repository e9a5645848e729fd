"""Checks at the door: the coordinator's arguments, refused early with a message that names them.

A wrong timeout, a URL where a host name goes, or a port read from the
environment as a string would otherwise surface later, far from the mistake,
as every model timing out or a connection that never comes. Each function
returns the value to use, or raises ``InvalidCoordinatorUsageError`` naming the
argument and the bad value.
"""

from __future__ import annotations

import ipaddress
import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidCoordinatorUsageError

__all__ = [
    "check_crunch_id",
    "check_host",
    "check_non_negative_int",
    "check_port",
    "check_positive_int",
    "check_shard",
    "check_timeout",
]

_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$")


def check_timeout(name: str, value: Any) -> float:
    """A positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidCoordinatorUsageError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidCoordinatorUsageError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return seconds


def check_host(value: Any) -> str:
    """A host name or an IP address (IPv6 with or without brackets); not a URL, not ``host:port``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidCoordinatorUsageError(f"host must be a host name or an IP address, got {value!r}")
    host = value.strip()
    if "://" in host or "/" in host:
        raise InvalidCoordinatorUsageError(
            f"host must be the host only, not a URL: got {value!r}; "
            "pass e.g. host='orchestrator.example.com', port=8000"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if ":" in host:
        raise InvalidCoordinatorUsageError(
            f"host must be a host name or an IP address, got {value!r}; "
            "pass the port separately, e.g. host='localhost', port=8000"
        )
    if not _HOST_NAME.match(host):
        raise InvalidCoordinatorUsageError(f"host must be a host name or an IP address, got {value!r}")
    return host


def check_port(value: Any, name: str = "port") -> int:
    """A TCP port, 1 to 65535; a string of digits (read from the environment) is accepted."""
    port: int | None = None
    if isinstance(value, str) and value.strip().isdigit():
        port = int(value.strip())
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        port = int(value)
    if port is None or not 1 <= port <= 65535:
        raise InvalidCoordinatorUsageError(f"{name} must be a TCP port number (1 to 65535), got {value!r}")
    return port


def check_crunch_id(value: Any) -> str:
    """A non-empty crunch id (the whole path of the orchestrator's URL)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidCoordinatorUsageError(f"crunch_id must be the crunch's id, a non-empty string, got {value!r}")
    return value


def check_non_negative_int(name: str, value: Any) -> int:
    """A count or a threshold: an integer, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidCoordinatorUsageError(f"{name} must be an integer, 0 or more, got {value!r}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """A count that cannot be zero: an integer, 1 or more."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidCoordinatorUsageError(f"{name} must be an integer, 1 or more, got {value!r}")
    return int(value)


def check_shard(value: Any) -> tuple[int, int] | None:
    """``shard=(index, count)``: two integers, ``count`` 1 or more, ``index`` 0 to ``count - 1``; None owns all."""
    if value is None:
        return None
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 2
        or any(isinstance(part, bool) or not isinstance(part, numbers.Integral) for part in value)
    ):
        raise InvalidCoordinatorUsageError(
            f"shard must be (index, count), two integers, e.g. shard=(0, 3) for the first of three; got {value!r}"
        )
    index, count = int(value[0]), int(value[1])
    if count < 1:
        raise InvalidCoordinatorUsageError(f"shard=(index, count) needs a count of 1 or more, got shard={value!r}")
    if not 0 <= index < count:
        raise InvalidCoordinatorUsageError(
            f"shard=(index, count) needs an index from 0 to count - 1 ({count - 1} here), got shard={value!r}"
        )
    return index, count
