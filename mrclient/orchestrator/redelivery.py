"""Reports held across a reconnect: which to send again once the new ``init`` is in.

The real orchestrator acts on a ``report_failure`` only when its ``ip`` is,
exactly, the one it announces for the model, on its next update cycle; and a
report it cannot place (its model already stopped, say by the first copy of
a report sent twice, or moved) makes it drop the rest of that cycle, other
models' reports included. So the messages the outbox holds when a connection
ends (unconfirmed, or never sent) wait for the next connection's ``init``,
and ``redeliver`` decides, from plain data, which still go: a report only if
that init lists its model at the report's ip; the others are dropped (the
caller logs each one), since their model is gone or moved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Redelivery", "redeliver"]


@dataclass(frozen=True)
class Redelivery:
    """What to do with the messages held across a reconnect.

    ``send``: the messages to send, in order (a report message without its
    dropped items). ``dropped``: each report item left out, with why.
    """

    send: tuple[str, ...] = ()
    dropped: tuple[tuple[Mapping[str, Any], str], ...] = ()


def _listed(entries: Sequence[object]) -> dict[str, set[str]]:
    """model_id -> the ips the ``init`` entries name for it (entries it cannot read name none)."""
    listed: dict[str, set[str]] = {}
    for entry in entries:
        if isinstance(entry, Mapping):
            model_id, ip = entry.get("model_id"), entry.get("ip")
            if isinstance(model_id, str) and isinstance(ip, str):
                listed.setdefault(model_id, set()).add(ip)
    return listed


def redeliver(held: Sequence[str], init_entries: Sequence[object]) -> Redelivery:
    """Which of the ``held`` messages (JSON texts) still to send after the ``init`` with ``init_entries``.

    A ``report_failure`` item goes only if the init lists its model at its
    ip, exactly; anything else held (another kind of message, text this
    module cannot read) is sent as it is.
    """
    listed = _listed(init_entries)
    send: list[str] = []
    dropped: list[tuple[Mapping[str, Any], str]] = []
    for text in held:
        try:
            message = json.loads(text)
        except ValueError:
            send.append(text)
            continue
        items = message.get("data") if isinstance(message, dict) else None
        if not isinstance(message, dict) or message.get("event") != "report_failure" or not isinstance(items, list):
            send.append(text)
            continue
        kept = []
        for item in items:
            model_id = item.get("model_id") if isinstance(item, dict) else None
            ip = item.get("ip") if isinstance(item, dict) else None
            ips = listed.get(model_id) if isinstance(model_id, str) else None
            if isinstance(item, dict) and ips is not None and ip in ips:
                kept.append(item)
            elif isinstance(item, dict):
                dropped.append((item, _why_dropped(model_id, ip, ips)))
            else:
                kept.append(item)
        if len(kept) == len(items):
            send.append(text)
        elif kept:
            send.append(json.dumps({**message, "data": kept}))
    return Redelivery(tuple(send), tuple(dropped))


def _why_dropped(model_id: object, ip: object, ips: set[str] | None) -> str:
    if not ips:
        return f"the new init does not list model {model_id!r}"
    return f"the new init lists model {model_id!r} at {', '.join(map(repr, sorted(ips)))}, not at {ip!r}"
