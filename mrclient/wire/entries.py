"""The MODEL entries of the orchestrator's frames, read: raw objects in, ``ModelEntry`` or why not out.

PROTOCOL.md section 1 says what an entry holds; the real peers stretch it
(a port as a numeric string from the Docker backend, an empty ip in the second
``STOPPED`` frame of a stop). ``parse_entry`` is a pure function that accepts
exactly that and names every problem of an entry it rejects; ``read_entries``
reads a whole frame's list by it. Both readers of the table (the cluster's
plan and ``mrclient watch``) read frames through ``read_entries`` only, so they
apply the same rules, skip the same entries with the same words, and count the
same models as mentioned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._support.addresses import host_port

__all__ = [
    "KNOWN_STATES",
    "RECOVERING",
    "RUNNING",
    "STOPPED",
    "FrameEntries",
    "ModelEntry",
    "Rejected",
    "cruncher_of",
    "parse_entry",
    "read_entries",
]

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
        """``infos["model_name"]`` when it is a string."""
        name = self.infos.get("model_name")
        return name if isinstance(name, str) else None

    @property
    def cruncher(self) -> str | None:
        """The cruncher's name, or its id when the orchestrator gives no name (see ``cruncher_of``)."""
        return cruncher_of(self.infos)

    @property
    def address(self) -> str:
        """``ip:port`` (an IPv6 address in brackets), or empty when the entry has none."""
        return host_port(self.ip, self.port) if self.ip and self.port else ""

    @property
    def running(self) -> bool:
        """Whether the entry says the model runs (state ``RUNNING``)."""
        return self.state == RUNNING


def cruncher_of(infos: Mapping[str, Any]) -> str | None:
    """Who runs a model: ``infos``' cruncher name, else its cruncher id (each only as a non-empty string)."""
    for key in ("cruncher_name", "cruncher_id"):
        value = infos.get(key)
        if isinstance(value, str) and value:
            return value
    return None


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


@dataclass(frozen=True)
class FrameEntries:
    """A frame's entries read: the valid ones in order, every model mentioned, and each entry skipped.

    ``mentioned`` counts a rejected entry that names its model, so a malformed
    entry never makes a snapshot tear that model down. ``problems`` reads
    ``entry 3 (model 'm1') skipped: port is missing``, one line per entry skipped.
    """

    valid: tuple[ModelEntry, ...]
    mentioned: frozenset[str]
    problems: tuple[str, ...]


def read_entries(entries: Sequence[object]) -> FrameEntries:
    """Read every entry of an ``init`` or ``update`` frame by ``parse_entry``."""
    valid: list[ModelEntry] = []
    mentioned: set[str] = set()
    problems: list[str] = []
    for index, raw in enumerate(entries):
        entry = parse_entry(raw)
        if isinstance(entry, Rejected):
            if entry.model_id is not None:
                mentioned.add(entry.model_id)
            about = "" if entry.model_id is None else f" (model {entry.model_id!r})"
            problems.append(f"entry {index}{about} skipped: {entry.reason}")
            continue
        mentioned.add(entry.model_id)
        valid.append(entry)
    return FrameEntries(tuple(valid), frozenset(mentioned), tuple(problems))
