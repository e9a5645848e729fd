"""Why a secure connection or call was refused."""

from __future__ import annotations

__all__ = ["AuthError", "PLAINTEXT_NODE", "REFUSED"]

#: The node did not accept the coordinator (its certificate, or its gateway key).
REFUSED = "UNAUTHENTICATED"
#: The node speaks plain gRPC: it is not in secure mode.
PLAINTEXT_NODE = "PLAINTEXT_NODE"


class AuthError(Exception):
    """A node failed its identity check, or refused the coordinator.

    Never raised to the coordinator: it becomes the model's ``AUTH_ERROR``
    outcome. ``code`` tells the node's own fault (None: its identity does not
    check out) from what, when every node says it, is the coordinator's
    mistake: ``REFUSED`` (our certificate or key is not accepted) or
    ``PLAINTEXT_NODE`` (credentials given for nodes that are not secure).
    """

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
