"""What the orchestrator announces about a crunch's models, kept as plain data.

``mrclient watch`` shows the crunch as the orchestrator tells it, without
touching any model node: which models run where, under which deployment, for
which cruncher, since when, and who left and when. ``apply_frame`` is the rule
that turns one ``init`` or ``update`` frame into the next table of
``Announcement``: a pure function (no IO, no clock, no lock) that reads the
frame by ``mrclient.wire.entries.read_entries``, as the cluster's plan does,
tested with plain data. Unlike the model table of a runner, it keeps the
models that left, in state ``STOPPED`` or ``GONE`` (absent from a later
``init``), with the time they left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

from ..wire.entries import ModelEntry, read_entries

__all__ = ["GONE", "LEFT_STATES", "Announcement", "FrameChange", "apply_frame", "prune_left"]

#: A model the table knew that a later ``init`` no longer lists: it left while nobody watched.
GONE = "GONE"
#: States of a model that left; kept a while so an operator sees who left and when.
LEFT_STATES = frozenset({"STOPPED", GONE})


@dataclass(frozen=True, kw_only=True)
class Announcement(ModelEntry):
    """One model as the orchestrator last announced it (its entry), and since when (``time.time()``) it is so.

    ``since`` is when this watcher saw the model enter its state (for the
    models of the first ``init``, when the watcher connected: the orchestrator
    does not say when a model started). ``ip`` and ``port`` are the last
    address announced, kept when the model stops. The entry's own reading
    (``model_name``, ``cruncher``, ``address``, ``running``) is ``ModelEntry``'s.
    """

    since: float

    @classmethod
    def of(cls, entry: ModelEntry, since: float) -> Announcement:
        """``entry`` as announced ``since`` then."""
        return cls(**{each.name: getattr(entry, each.name) for each in fields(ModelEntry)}, since=since)

    @property
    def left(self) -> bool:
        """Whether the model left: ``STOPPED``, or ``GONE`` from a later ``init``."""
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
    read = read_entries(entries)
    for entry in read.valid:
        known = new.get(entry.model_id)
        if known is not None and not entry.running:
            if known.running and known.deployment_id != entry.deployment_id:
                continue  # the teardown of a deployment that a newer one already replaced
            # a stop or a recovery: the last address and infos stay shown
            ip, port, infos = entry.ip or known.ip, entry.port or known.port, entry.infos or known.infos
            entry = replace(entry, ip=ip, port=port, infos=infos)
        shown = Announcement.of(entry, now)
        if known is not None and _same_place(known, shown):
            new[entry.model_id] = replace(shown, since=known.since)  # newest infos, same since
            continue
        new[entry.model_id] = changed[entry.model_id] = shown
    if event == "init":
        for model_id, known in table.items():
            if model_id not in read.mentioned and not known.left:
                new[model_id] = changed[model_id] = replace(known, state=GONE, since=now)
    return FrameChange(new, tuple(changed.values()), read.problems)


def prune_left(table: Mapping[str, Announcement], now: float, keep_s: float) -> dict[str, Announcement]:
    """The table without the models that left more than ``keep_s`` seconds ago."""
    return {model_id: shown for model_id, shown in table.items() if not (shown.left and now - shown.since > keep_s)}
