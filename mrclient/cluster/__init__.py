"""The crunch's model table: ``ModelCluster``, the pure rules it applies, and what it decides with.

Layer 5: the table under one lock (``table``), fed by the orchestrator
connection and carried out on the runners; the rules that decide without
doing (``plan``, ``roster``, ``misuse``, ``penalties``, ``reports``); the
setup states, the listener thread and the setup pool. It may import every
layer below: ``errors``, ``_support``, ``wire``, ``security``, ``stats``,
``runners``, ``orchestrator``.
"""

from .table import ModelCluster

__all__ = ["ModelCluster"]
