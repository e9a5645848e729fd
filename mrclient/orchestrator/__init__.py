"""The orchestrator's WebSocket: one connection thread, its outbox of reports, their redelivery.

Layer 4, beside ``runners``: it turns frames into events for whoever listens
(the cluster, ``mrclient watch``) and carries failure reports out. It may
import ``errors``, ``_support``, ``wire``, ``security`` and ``stats``; it knows
nothing of model runners.
"""

from .connection import OrchestratorConnection, OrchestratorSettings

__all__ = ["OrchestratorConnection", "OrchestratorSettings"]
