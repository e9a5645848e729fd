"""Enough open files for the model table: the soft ``RLIMIT_NOFILE`` raised as the table grows.

Each model costs the client one socket for its channel, and a second while its
health is checked. With the common soft limit of 1024, a crunch of 1,500
models would otherwise fail past the 1,000th with "Too many open files", and
those models would look unreachable. The soft limit may be raised up to the
hard one by any process: ``ensure_open_files`` does so when the table needs it
and says so; when even the hard limit is too low it logs one error with the
numbers and the fix, since only the coordinator's operator can raise that.
"""

from __future__ import annotations

import logging
import threading

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows, where there is no such limit to raise
    resource = None  # type: ignore[assignment]

__all__ = ["OPEN_FILES_EXHAUSTED", "ensure_open_files", "files_needed", "is_out_of_files"]

logger = logging.getLogger(__name__)

#: Descriptors beyond the models' own: the orchestrator socket, the wake-up pair, logs, gRPC's pollers.
HEADROOM = 128
#: The code of a setup that failed because this process ran out of file descriptors.
OPEN_FILES_EXHAUSTED = "OPEN_FILES_EXHAUSTED"

_lock = threading.Lock()
_warned_for = 0  # the most models the "hard limit too low" error was logged for


def files_needed(models: int) -> int:
    """Descriptors ``models`` need at worst: a channel each and a health channel each, plus headroom."""
    return 2 * models + HEADROOM


def ensure_open_files(models: int) -> int:
    """Raise the soft open-file limit for ``models`` models if needed; the soft limit in force after.

    Logs at INFO when it raises the limit, and an ERROR when the hard limit
    is too low to raise it far enough (again only if the table grows by a
    tenth).
    """
    global _warned_for
    if resource is None:
        return -1
    needed = files_needed(models)
    with _lock:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft >= needed:
            return soft
        target = hard if hard == resource.RLIM_INFINITY else max(soft, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError) as error:
                logger.warning("could not raise the open-file limit from %d to %d: %s", soft, target, error)
            else:
                logger.info("raised the open-file limit from %d to %d for %d models", soft, target, models)
                soft = target
        if (soft == resource.RLIM_INFINITY or soft >= needed) or models <= _warned_for * 1.1:
            return soft  # enough, or already said for about as many models
        _warned_for = models
    logger.error(
        "%d models need up to %d open files (a connection each, two while a model's health is checked), but this "
        "process may open %d (hard limit %d): models past that fail to connect and are not reported. Raise the "
        "limit before starting the coordinator, e.g. `ulimit -n %d` (or LimitNOFILE=%d in a systemd unit).",
        models, needed, soft, hard, needed, needed,
    )
    return soft


def is_out_of_files(detail: str | None) -> bool:
    """Whether an error's text says this process ran out of file descriptors (EMFILE)."""
    return detail is not None and "Too many open files" in detail
