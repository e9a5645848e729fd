"""Call one method on every live model at once: the concurrent runners.

One module per kind, as in ``runners/``: ``base`` holds what every concurrent
runner shares (the model table, rounds, penalties, ``close()``),
``dynamic_subclass`` and ``train_infer`` the two kinds of round. The result
types live in ``mrclient.results``.
"""

from ..results import ModelPredictResult, RoundResults
from .base import DEFAULT_INIT_TIMEOUT, POOL_HEADROOM, ModelConcurrentRunner
from .dynamic_subclass import DynamicSubclassModelConcurrentRunner
from .train_infer import TrainInferModelConcurrentRunner

__all__ = [
    "DEFAULT_INIT_TIMEOUT",
    "POOL_HEADROOM",
    "DynamicSubclassModelConcurrentRunner",
    "ModelConcurrentRunner",
    "ModelPredictResult",
    "RoundResults",
    "TrainInferModelConcurrentRunner",
]
