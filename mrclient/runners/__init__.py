"""Per-model runners: one gRPC client per model node."""

from .base import CallOutcome, ErrorType, ModelRunner, port_speaks_tls
from .dynamic_subclass import ArgumentsType, DynamicSubclassModelRunner
from .train_infer import TrainInferModelRunner

__all__ = [
    "ArgumentsType",
    "CallOutcome",
    "DynamicSubclassModelRunner",
    "ErrorType",
    "ModelRunner",
    "TrainInferModelRunner",
    "port_speaks_tls",
]
