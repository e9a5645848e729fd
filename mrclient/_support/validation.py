"""Checks at the door: the coordinator's arguments, refused early with a message that names them.

A wrong timeout, a URL where a host name goes, or a port read from the
environment as a string would otherwise surface later, far from the mistake,
as every model timing out or a connection that never comes. Each function
returns the value to use, or raises ``InvalidCoordinatorUsageError`` naming the
argument, what it takes and the bad value (``"<name> must be <what>, got
<value>"``). The testing kit, whose mistakes are a test's and not a
coordinator's, passes ``error=ValueError``.
"""

from __future__ import annotations

import ipaddress
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ..errors import InvalidCoordinatorUsageError

__all__ = [
    "check_callable",
    "check_choice",
    "check_crunch_id",
    "check_flag",
    "check_host",
    "check_instance",
    "check_mapping",
    "check_non_negative_int",
    "check_port",
    "check_positive_int",
    "check_shard",
    "check_text",
    "check_timeout",
    "check_wait",
    "shown",
]

_Error = type[Exception]
_T = TypeVar("_T")

_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$")


def shown(value: object) -> str:
    """``repr(value)``, cut to 80 characters: a bad value named in an error, not pasted whole."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_timeout(name: str, value: Any, *, error: _Error = InvalidCoordinatorUsageError) -> float:
    """A positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number of seconds, got {shown(value)}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise error(f"{name} must be a positive, finite number of seconds, got {shown(value)}")
    return seconds


def check_wait(name: str, value: Any, *, error: _Error = InvalidCoordinatorUsageError) -> float:
    """How long to wait: a finite number of seconds, 0 or more (0 looks without waiting)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise error(f"{name} must be a number of seconds, 0 or more, got {shown(value)}")
    return float(value)


def check_flag(name: str, value: Any, *, error: _Error = InvalidCoordinatorUsageError) -> bool:
    """True or False, nothing that merely looks true (``"no"`` is true)."""
    if not isinstance(value, bool):
        raise error(f"{name} must be True or False, got {shown(value)}")
    return value


def check_callable(name: str, value: _T, what: str, *, error: _Error = InvalidCoordinatorUsageError) -> _T:
    """A function (or any callable); ``what`` says how it is called, e.g. ``"a function of the model runner"``."""
    if not callable(value):
        raise error(f"{name} must be {what}, got {type(value).__name__} {shown(value)}")
    return value


def check_text(
    name: str, value: _T, what: str = "a non-empty string", *, optional: bool = False,
    error: _Error = InvalidCoordinatorUsageError,
) -> _T:
    """A non-empty string (or None, if ``optional``)."""
    if value is None and optional:
        return value
    if not isinstance(value, str) or not value.strip():
        raise error(f"{name} must be {what}, got {shown(value)}")
    return value


def check_instance(
    name: str, value: _T, kind: type | tuple[type, ...], what: str, *, optional: bool = False,
    error: _Error = InvalidCoordinatorUsageError,
) -> _T:
    """An instance of ``kind`` (or None, if ``optional``); ``what`` names it for a person."""
    if (value is None and optional) or isinstance(value, kind):
        return value
    raise error(f"{name} must be {what}, got {type(value).__name__} {shown(value)}")


def check_mapping(
    name: str, value: _T, what: str = "a dict", *, optional: bool = True, error: _Error = InvalidCoordinatorUsageError
) -> _T:
    """A mapping (a dict), or None if ``optional``."""
    return check_instance(name, value, Mapping, what, optional=optional, error=error)


def check_choice(name: str, value: Any, choices: Sequence[str], *, error: _Error = InvalidCoordinatorUsageError) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise error(f"{name} must be one of {', '.join(map(repr, choices))}, got {shown(value)}")
    return value


def check_host(value: Any, *, name: str = "host", error: _Error = InvalidCoordinatorUsageError) -> str:
    """A host name or an IP address (IPv6 with or without brackets); not a URL, not ``host:port``."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{name} must be a host name or an IP address, got {shown(value)}")
    host = value.strip()
    if "://" in host or "/" in host:
        raise error(
            f"{name} must be the host only, not a URL: got {shown(value)}; "
            f"pass e.g. {name}='orchestrator.example.com', port=8000"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if ":" in host:
        raise error(
            f"{name} must be a host name or an IP address, got {shown(value)}; "
            f"pass the port separately, e.g. {name}='localhost', port=8000"
        )
    if not _HOST_NAME.match(host):
        raise error(f"{name} must be a host name or an IP address, got {shown(value)}")
    return host


def check_port(value: Any, name: str = "port", *, error: _Error = InvalidCoordinatorUsageError) -> int:
    """A TCP port, 1 to 65535; a string of digits (read from the environment) is accepted."""
    port: int | None = None
    if isinstance(value, str) and value.strip().isdigit():
        port = int(value.strip())
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        port = int(value)
    if port is None or not 1 <= port <= 65535:
        raise error(f"{name} must be a TCP port number (1 to 65535), got {shown(value)}")
    return port


def check_crunch_id(value: Any) -> str:
    """A non-empty crunch id (the whole path of the orchestrator's URL)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidCoordinatorUsageError(f"crunch_id must be the crunch's id, a non-empty string, got {value!r}")
    return value


def check_non_negative_int(name: str, value: Any, *, error: _Error = InvalidCoordinatorUsageError) -> int:
    """A count or a threshold: an integer, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise error(f"{name} must be an integer, 0 or more, got {shown(value)}")
    return int(value)


def check_positive_int(name: str, value: Any, *, error: _Error = InvalidCoordinatorUsageError) -> int:
    """A count that cannot be zero: an integer, 1 or more."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise error(f"{name} must be an integer, 1 or more, got {shown(value)}")
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
