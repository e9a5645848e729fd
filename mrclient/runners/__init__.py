"""One model: ``ModelRunner`` and its two kinds, each one gRPC client of one model node.

Layer 4: a runner connects (with tenacity's retries), sets its model up,
calls it with a deadline and checks its health; it knows nothing of the
table it sits in. It may import ``errors``, ``_support``, ``wire``,
``security`` and ``stats``.
"""

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
