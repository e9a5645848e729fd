"""What an orchestrator event does to the model table, decided without doing it.

The rules of PROTOCOL.md ("How the client applies events") live here as a pure
function: it reads the table, never changes it, performs no IO, and returns a
``Plan`` (runners to close, runners to start, runners whose infos to refresh,
and what was wrong with the entries it skipped). ``ModelCluster`` carries the
plan out. Keeping the rules free of sockets and threads lets them be tested
with plain data, thousands of cases at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..wire.entries import RUNNING, ModelEntry, read_entries

__all__ = ["GONE", "Placement", "Plan", "plan_event"]

#: Why a model is closed when the orchestrator's snapshot no longer lists it.
GONE = "gone"
#: Why a model is closed when its entry names a new deployment, or a new address for the same one.
REDEPLOYED, MOVED = "redeployed", "moved"


class Placement(Protocol):
    """What the rules need to know about a model already in the table: a runner, or a running entry.

    A sharded cluster follows the other shards' models as their ``ModelEntry``
    (whose ``ip`` and ``port`` are set when it runs), so it reads ``Optional``.
    """

    @property
    def deployment_id(self) -> str: ...

    @property
    def ip(self) -> str | None: ...

    @property
    def port(self) -> int | None: ...


@dataclass(frozen=True)
class Plan:
    """What to do to the table, in this order: close, start, refresh.

    ``close`` names the models whose current runner must be closed and dropped;
    ``start`` holds at most one entry per model, each to become a new runner
    (replacing the runner named in ``close`` for that model, if any);
    ``refresh`` holds entries whose infos and model name update a runner that
    stays. ``problems`` describes each skipped entry once. ``reasons`` says
    why each model of ``close`` is closed (``stopped``, ``recovering``,
    ``redeployed``, ``moved`` or ``gone``), for its statistics; it is not
    part of a plan's equality.
    """

    close: tuple[str, ...] = ()
    start: tuple[ModelEntry, ...] = ()
    refresh: tuple[ModelEntry, ...] = ()
    problems: tuple[str, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass
class _Slot:
    """One model's fate while a frame is applied.

    ``original``: the runner already in the table stays, and ``entry`` (if any)
    refreshes it. Otherwise ``entry`` is the runner to start, or None when the
    model ends the frame with no runner.
    """

    original: bool
    entry: ModelEntry | None = None
    #: The state (lowercase) of the entry that last stopped the model in this frame.
    stopped: str | None = None


def _where(slot: _Slot, known: Placement | None) -> tuple[str, str | None, int | None] | None:
    """(deployment, ip, port) of the runner the slot holds at this point of the frame."""
    if slot.original:
        assert known is not None
        return known.deployment_id, known.ip, known.port
    if slot.entry is None:
        return None
    return slot.entry.deployment_id, slot.entry.ip, slot.entry.port


def _apply(slot: _Slot, known: Placement | None, entry: ModelEntry) -> _Slot:
    """The PROTOCOL.md rule for one entry, applied to one model's slot."""
    where = _where(slot, known)
    matching = where is not None and where[0] == entry.deployment_id
    if entry.state != RUNNING:  # STOPPED or RECOVERING
        return _Slot(original=False, stopped=entry.state.lower()) if matching else slot
    if matching and where == (entry.deployment_id, entry.ip, entry.port):
        return _Slot(slot.original, entry)  # keep the runner; newest infos win
    return _Slot(original=False, entry=entry)  # new model, new deployment or moved


def plan_event(known: Mapping[str, Placement], entries: Sequence[object], *, snapshot: bool) -> Plan:
    """Decide what a frame's entries do to the table ``known`` (model_id -> runner).

    Entries apply in order, as if one by one, but only the net effect is
    planned: a runner created and replaced within the same frame is never
    started. ``snapshot`` marks an ``init``: models of the table it does not
    mention are closed. An entry that names its model but is otherwise invalid
    still counts as a mention, so a malformed entry never tears a model down.
    """
    read = read_entries(entries)
    slots: dict[str, _Slot] = {}
    for entry in read.valid:
        model_id = entry.model_id
        slot = slots.get(model_id) or _Slot(original=model_id in known)
        slots[model_id] = _apply(slot, known.get(model_id), entry)

    close: list[str] = []
    start: list[ModelEntry] = []
    refresh: list[ModelEntry] = []
    reasons: dict[str, str] = {}
    for model_id, slot in slots.items():
        if slot.original:
            if slot.entry is not None:
                refresh.append(slot.entry)
            continue
        if model_id in known:
            close.append(model_id)
            if slot.entry is None:
                reasons[model_id] = slot.stopped or GONE
            else:
                same = slot.entry.deployment_id == known[model_id].deployment_id
                reasons[model_id] = MOVED if same else REDEPLOYED
        if slot.entry is not None:
            start.append(slot.entry)
    if snapshot:
        gone = [model_id for model_id in known if model_id not in read.mentioned]
        close.extend(gone)
        reasons.update(dict.fromkeys(gone, GONE))
    return Plan(tuple(close), tuple(start), tuple(refresh), read.problems, reasons)
