"""mrclient: a synchronous client for CrunchDAO coordinators.

This module is the whole public surface; the modules behind it are private.
mrclient logs under the ``mrclient`` logger and its children and, as a library
should, configures no output: a ``NullHandler`` keeps its warnings off stderr
until the application configures logging (``logging.basicConfig()``).
"""

from __future__ import annotations

import logging

from ._support.hints import EmptyCrunchWarning, MrclientWarning
from .cluster.roster import Roster
from .cluster.shards import shard_of
from .cluster.table import ModelCluster
from .concurrent import (
    DynamicSubclassModelConcurrentRunner,
    ModelConcurrentRunner,
    ModelPredictResult,
    TrainInferModelConcurrentRunner,
)
from .concurrent.overview import RunnerOverview
from .concurrent.results import RoundResults
from .errors import InvalidCoordinatorUsageError, MrclientError
from .runners import DynamicSubclassModelRunner, ModelRunner, TrainInferModelRunner
from .security import GatewayCredentials, SecureCredentials
from .stats import LATENCY_BUCKETS, CallTotals, ConnectionState, MethodCounts, ModelStats, ModelStatsTable, RoundSummary
from .wire.arguments import Args
from .wire.codec import Argument, KwArgument, Variant, VariantType, decode_data, encode_data

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "Args",
    "Argument",
    "CallTotals",
    "ConnectionState",
    "decode_data",
    "DynamicSubclassModelConcurrentRunner",
    "DynamicSubclassModelRunner",
    "EmptyCrunchWarning",
    "encode_data",
    "GatewayCredentials",
    "InvalidCoordinatorUsageError",
    "KwArgument",
    "LATENCY_BUCKETS",
    "MethodCounts",
    "ModelCluster",
    "ModelConcurrentRunner",
    "ModelPredictResult",
    "ModelRunner",
    "ModelStats",
    "ModelStatsTable",
    "MrclientError",
    "MrclientWarning",
    "Roster",
    "RoundResults",
    "RoundSummary",
    "RunnerOverview",
    "SecureCredentials",
    "shard_of",
    "TrainInferModelConcurrentRunner",
    "TrainInferModelRunner",
    "Variant",
    "VariantType",
]
