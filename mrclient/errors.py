"""The exceptions mrclient raises: one base class a coordinator can catch."""

from __future__ import annotations


class MrclientError(Exception):
    """Base class of every error raised by mrclient."""


class InvalidCoordinatorUsageError(MrclientError):
    """The coordinator misused the API or the call contract.

    Raised, never reported to the orchestrator: the fault is the coordinator's,
    so the participants' models must not be stopped for it.
    """

    def __init__(
        self,
        message: str = "the coordinator did not use mrclient correctly; check the call contract",
    ) -> None:
        super().__init__(message)
