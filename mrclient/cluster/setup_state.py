"""Where each announced model's setup stands: ready, still setting up, or failed and why.

``ModelCluster.setup_states()`` returns one ``SetupState`` per model, a frozen
snapshot, so that a reader (``mrclient call`` showing every model the crunch
announced, a coordinator's own dashboard) can say why a model is not in
``models``. Plain data: it holds the model's runner (for its name and address)
and nothing that changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runners import ModelRunner

__all__ = ["READY", "SETTING_UP", "SETUP_FAILED", "SetupState"]

#: The model is set up and can be called (it is in ``models``).
READY = "READY"
#: The model was announced and its runner is still connecting or running ``Setup``.
SETTING_UP = "SETTING_UP"
#: The model's latest setup failed (``detail`` says why); it is not called until announced again.
SETUP_FAILED = "SETUP_FAILED"


@dataclass(frozen=True)
class SetupState:
    """One announced model: its runner, ``READY``, ``SETTING_UP`` or ``SETUP_FAILED``, and why it failed."""

    model_id: str
    runner: ModelRunner
    state: str
    detail: str | None = None

    @property
    def ready(self) -> bool:
        """True when the model can be called (it is in the cluster's ``models``)."""
        return self.state == READY
