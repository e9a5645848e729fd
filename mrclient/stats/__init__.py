"""What a crunch did: per-model counters, round summaries, totals, the connection's state.

Layer 3: ``recording`` keeps the numbers (a few counters per call, one lock),
``snapshots`` the frozen copies readers get, which show themselves as tables,
``departed`` the models that left, kept for ``stats()``.
It may import ``errors`` and ``_support``. The public snapshot types are also
exported by ``mrclient``.
"""

from .departed import LEFT_MODELS_KEPT, LeftModels
from .recording import LATENCY_WINDOW, RECENT_ROUNDS, ModelCounters, StatsBook, summarize
from .snapshots import (
    LATENCY_BUCKETS,
    STATUSES,
    CallTotals,
    ConnectionState,
    MethodCounts,
    ModelStats,
    ModelStatsTable,
    RoundSummary,
    bucket_label,
    state_label,
)

__all__ = [
    "CallTotals",
    "ConnectionState",
    "LATENCY_BUCKETS",
    "LATENCY_WINDOW",
    "LEFT_MODELS_KEPT",
    "LeftModels",
    "MethodCounts",
    "ModelCounters",
    "ModelStats",
    "ModelStatsTable",
    "RECENT_ROUNDS",
    "RoundSummary",
    "STATUSES",
    "StatsBook",
    "bucket_label",
    "state_label",
    "summarize",
]
