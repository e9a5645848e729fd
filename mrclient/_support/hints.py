"""What ``init()`` tells a coordinator who configured nothing: an empty crunch, and a long wait.

mrclient says what it does in its log, and configures no log output (a
library must not), so a coordinator who never called ``logging.basicConfig()``
hears none of it. Two mistakes are common and silent enough to be said
another way. A misspelt crunch id: the orchestrator answers an unknown crunch
with an empty model list, so ``init()`` returns and every round returns
``{}`` at once, forever; that is an ``EmptyCrunchWarning``, which Python
shows on stderr by default, once per ``init()``, pointing at the
coordinator's own line. A wrong host or port: ``init()`` waits its whole
timeout; its ``ConnectionError`` then names the setting that bounds the wait.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

__all__ = ["EmptyCrunchWarning", "MrclientWarning", "wait_hint", "warn_empty_crunch"]


class MrclientWarning(UserWarning):
    """Base class of the warnings mrclient gives (``warnings.filterwarnings`` can pick them by it)."""


class EmptyCrunchWarning(MrclientWarning):
    """``init()`` found no model in the crunch: is the crunch id right?

    An orchestrator answers a crunch id it does not know with an empty model
    list, as it does for a crunch whose models have not started yet; rounds
    then return ``{}`` until a model joins.
    """


def warn_empty_crunch(crunch_id: str, url: str) -> None:
    """Warn, pointing at the first caller outside mrclient, that the crunch has no model."""
    message = (
        f"the orchestrator at {url} announced no model for crunch {crunch_id!r}: is the crunch id right? "
        "(rounds return {} until a model joins)"
    )
    warnings.warn(EmptyCrunchWarning(message), stacklevel=_first_frame_outside_mrclient())


def _first_frame_outside_mrclient() -> int:
    """The ``stacklevel`` (as seen from our caller's ``warnings.warn``) of the first frame outside mrclient."""
    level = 1  # our caller, which calls warnings.warn
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).partition(".")[0] == "mrclient":
        level, frame = level + 1, frame.f_back
    return level


def wait_hint(message: str, waited: float, timeout: float) -> str:
    """``message`` of ``init()``'s ``ConnectionError``, naming what bounds the wait when it lasted all of it.

    A refusal the orchestrator gave early needs no hint: its own words say what is wrong.
    """
    if waited < timeout:
        return message
    return (
        f"{message}. How long init() waits ({timeout:g}s here) is set by init_timeout= in the runner's constructor, "
        "or init(timeout=...), or --init-timeout on the mrclient command line"
    )
