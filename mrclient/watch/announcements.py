"""What the orchestrator announces about a crunch's models, kept as plain data.

``mrclient watch`` shows the crunch as the orchestrator tells it, without
touching any model node: which models run where, under which deployment, for
which cruncher, since when, and who left and when. ``apply_frame`` is the rule
that turns one ``init`` or ``update`` frame into the next table of
``Announcement``: a pure function (no IO, no clock, no lock) over the entry
rules of ``wire.entries.parse_entry``, tested with plain data. Unlike the
model table of a runner, it keeps the models that left, in state ``STOPPED``
or ``GONE`` (absent from a later ``init``), with the time they left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..wire.entries import RUNNING, Rejected, parse_entry

__all__ = ["GONE", "LEFT_STATES", "Announcement", "FrameChange", "apply_frame", "prune_left"]

#: A model the table knew that a later ``init`` no longer lists: it left while nobody watched.
GONE = "GONE"
#: States of a model that left; kept a while so an operator sees who left and when.
LEFT_STATES = frozenset({"STOPPED", GONE})


@dataclass(frozen=True)
class Announcement:
    """One model as the orchestrator last announced it, and since when (``time.time()``) it is so.

    ``since`` is when this watcher saw the model enter its state (for the
    models of the first ``init``, when the watcher connected: the orchestrator
    does not say when a model started). ``ip`` and ``port`` are the last
    address announced, kept when the model stops.
    """

    model_id: str
    deployment_id: str
    state: str
    since: float
    ip: str | None = None
    port: int | None = None
    infos: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        name = self.infos.get("model_name")
        return name if isinstance(name, str) else ""

    @property
    def cruncher(self) -> str:
        """The cruncher's name, or its id when the orchestrator gives no name."""
        for key in ("cruncher_name", "cruncher_id"):
            value = self.infos.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    @property
    def address(self) -> str:
        """``ip:port`` (an IPv6 address in brackets), or empty when never announced."""
        if not self.ip or not self.port:
            return ""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def left(self) -> bool:
        return self.state in LEFT_STATES


@dataclass(frozen=True)
class FrameChange:
    """A frame applied: the new table, the models whose state, deployment or address changed, what was skipped."""

    table: dict[str, Announcement]
    changed: tuple[Announcement, ...] = ()
    problems: tuple[str, ...] = ()


def _same_place(a: Announcement, b: Announcement) -> bool:
    return (a.state, a.deployment_id, a.ip, a.port) == (b.state, b.deployment_id, b.ip, b.port)


def apply_frame(table: Mapping[str, Announcement], event: str, entries: Sequence[object], now: float) -> FrameChange:
    """The table after one frame (``event`` is ``init`` or ``update``); ``table`` is left as it was.

    Entries apply in order. A RUNNING entry sets the model's state, deployment
    and address. A STOPPED or RECOVERING entry for the deployment shown, or for
    a model not shown, sets that state (keeping the last address: the second
    STOPPED frame of a stop has none); one for another deployment of a model
    shown RUNNING is an old run's teardown after a redeploy, and changes
    nothing. An ``init`` lists the running models: a model it leaves out that
    had not left is ``GONE``. ``since`` moves only when the state, deployment
    or address changes.
    """
    new = dict(table)
    changed: dict[str, Announcement] = {}
    problems: list[str] = []
    mentioned: set[str] = set()
    for index, raw in enumerate(entries):
        entry = parse_entry(raw)
        if isinstance(entry, Rejected):
            if entry.model_id is not None:
                mentioned.add(entry.model_id)
            about = "" if entry.model_id is None else f" (model {entry.model_id!r})"
            problems.append(f"entry {index}{about} skipped: {entry.reason}")
            continue
        mentioned.add(entry.model_id)
        known = new.get(entry.model_id)
        if entry.state == RUNNING:
            shown = Announcement(entry.model_id, entry.deployment_id, RUNNING, now, entry.ip, entry.port, entry.infos)
        elif known is not None and known.running and known.deployment_id != entry.deployment_id:
            continue  # the teardown of a deployment that a newer one already replaced
        else:
            ip = entry.ip or (known.ip if known else None)
            port = entry.port or (known.port if known else None)
            infos = entry.infos or (known.infos if known else {})
            shown = Announcement(entry.model_id, entry.deployment_id, entry.state, now, ip, port, infos)
        if known is not None and _same_place(known, shown):
            new[entry.model_id] = replace(shown, since=known.since)  # newest infos, same since
            continue
        new[entry.model_id] = changed[entry.model_id] = shown
    if event == "init":
        for model_id, known in table.items():
            if model_id not in mentioned and not known.left:
                new[model_id] = changed[model_id] = replace(known, state=GONE, since=now)
    return FrameChange(new, tuple(changed.values()), tuple(problems))


def prune_left(table: Mapping[str, Announcement], now: float, keep_s: float) -> dict[str, Announcement]:
    """The table without the models that left more than ``keep_s`` seconds ago."""
    return {model_id: shown for model_id, shown in table.items() if not (shown.left and now - shown.since > keep_s)}
