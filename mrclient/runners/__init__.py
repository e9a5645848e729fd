"""Per-model runners: one gRPC client per model node."""

from .base import CLOSED_OUTCOME, MODEL_LEFT, CallOutcome, ErrorType, ModelRunner, port_speaks_tls
from .dynamic_subclass import ArgumentsType, DynamicSubclassModelRunner, node_lost_setup
from .train_infer import TrainInferModelRunner

__all__ = [
    "CLOSED_OUTCOME",
    "MODEL_LEFT",
    "ArgumentsType",
    "CallOutcome",
    "DynamicSubclassModelRunner",
    "ErrorType",
    "ModelRunner",
    "TrainInferModelRunner",
    "node_lost_setup",
    "port_speaks_tls",
]
