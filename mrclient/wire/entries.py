"""One MODEL entry of the orchestrator's frames, read: a raw object in, a ``ModelEntry`` or why not out.

PROTOCOL.md section 1 says what an entry holds; the real peers stretch it
(a port as a numeric string from the Docker backend, an empty ip in the second
``STOPPED`` frame of a stop). ``parse_entry`` is a pure function that accepts
exactly that and names every problem of an entry it rejects, so both readers
of the table (the cluster's plan and ``mrclient watch``) apply the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KNOWN_STATES", "RECOVERING", "RUNNING", "STOPPED", "ModelEntry", "Rejected", "parse_entry"]

RUNNING = "RUNNING"
STOPPED = "STOPPED"
RECOVERING = "RECOVERING"
KNOWN_STATES = frozenset({RUNNING, STOPPED, RECOVERING})

_MAX_PORT = 65535
_MAX_PORT_DIGITS = 10  # longer digit strings are out of range without being converted


@dataclass(frozen=True)
class ModelEntry:
    """One valid MODEL entry of an ``init`` or ``update`` frame.

    ``ip`` and ``port`` are always set for RUNNING entries: ``ip`` verbatim (a
    dotted address or a host name such as ``localhost``: failure reports must
    carry it unchanged), ``port`` a number even when announced as a numeric
    string. A STOPPED or RECOVERING entry only needs its ids: its address is
    not read (the second STOPPED frame of a stop has ``port: 0`` and may have
    an empty or null ``ip``).
    """

    model_id: str
    deployment_id: str
    state: str
    ip: str | None = None
    port: int | None = None
    infos: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str | None:
        name = self.infos.get("model_name")
        return name if isinstance(name, str) else None


@dataclass(frozen=True)
class Rejected:
    """An entry that cannot be applied, and why; ``model_id`` when it was readable."""

    model_id: str | None
    reason: str


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text_field(raw: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    if key not in raw:
        problems.append(f"{key} is missing")
        return None
    value = raw[key]
    if not isinstance(value, str) or not value:
        problems.append(f"{key} is {_show(value)} ({_type_name(value)}), not a non-empty string")
        return None
    return value


def _port_field(raw: Mapping[str, Any], problems: list[str]) -> int | None:
    """An int, or a string of ASCII digits (the Docker backend announces Docker's host-port mapping so)."""
    if "port" not in raw:
        problems.append("port is missing")
        return None
    port = raw["port"]
    if isinstance(port, str) and port.isascii() and port.isdigit():
        number = int(port) if len(port) <= _MAX_PORT_DIGITS else _MAX_PORT + 1
    elif isinstance(port, int) and not isinstance(port, bool):
        number = port
    else:
        problems.append(f"port is {_show(port)} ({_type_name(port)}), not a number")
        return None
    if not 0 < number <= _MAX_PORT:
        problems.append(f"port {_show(port) if isinstance(port, str) else port} is out of range")
        return None
    return number


def parse_entry(raw: object) -> ModelEntry | Rejected:
    """Validate one MODEL entry; every problem found is named in the rejection."""
    if not isinstance(raw, Mapping):
        return Rejected(None, f"not an object but {_type_name(raw)} {_show(raw)}")
    problems: list[str] = []
    model_id = _text_field(raw, "model_id", problems)
    deployment_id = _text_field(raw, "deployment_id", problems)
    state = _text_field(raw, "state", problems)
    if state is not None and state not in KNOWN_STATES:
        problems.append(f"unknown state {_show(state)}")
    infos = raw.get("infos")
    if infos is None:
        infos = {}
    elif not isinstance(infos, Mapping):
        problems.append(f"infos is {_type_name(infos)}, not an object")
    ip = port = None
    if state == RUNNING:
        ip = _text_field(raw, "ip", problems)
        port = _port_field(raw, problems)
    if problems or model_id is None or deployment_id is None or state is None:
        return Rejected(model_id, "; ".join(problems))
    return ModelEntry(model_id, deployment_id, state, ip, port, dict(infos))
