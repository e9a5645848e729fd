"""mrclient: a synchronous client for CrunchDAO coordinators.

This module is the whole public surface; the modules behind it are private.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .cluster import ModelCluster
from .codec import Argument, KwArgument, Variant, VariantType, decode_data, encode_data
from .concurrent import (
    DynamicSubclassModelConcurrentRunner,
    ModelConcurrentRunner,
    ModelPredictResult,
    TrainInferModelConcurrentRunner,
)
from .errors import InvalidCoordinatorUsageError, MrclientError
from .runners import DynamicSubclassModelRunner, ModelRunner, TrainInferModelRunner
from .security import GatewayCredentials, SecureCredentials

__all__ = [
    "__version__",
    "Argument",
    "decode_data",
    "DynamicSubclassModelConcurrentRunner",
    "DynamicSubclassModelRunner",
    "encode_data",
    "GatewayCredentials",
    "InvalidCoordinatorUsageError",
    "KwArgument",
    "ModelCluster",
    "ModelConcurrentRunner",
    "ModelPredictResult",
    "ModelRunner",
    "MrclientError",
    "SecureCredentials",
    "TrainInferModelConcurrentRunner",
    "TrainInferModelRunner",
    "Variant",
    "VariantType",
]
