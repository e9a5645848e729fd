"""Call one method on every live model at once: the concurrent runners, their rounds and results.

Layer 6, what a coordinator holds: ``base`` is what every concurrent runner
shares (the model table, rounds, penalties, ``close()``), ``dynamic_subclass``
and ``train_infer`` the two kinds of round, ``rounds`` one round on the call
pool, ``results`` what it returns, ``overview`` the runner at a glance. It may
import every layer below: ``errors``, ``_support``, ``wire``, ``security``,
``stats``, ``runners``, ``orchestrator``, ``cluster``.
"""

from .base import DEFAULT_INIT_TIMEOUT, POOL_HEADROOM, ModelConcurrentRunner
from .dynamic_subclass import DynamicSubclassModelConcurrentRunner
from .results import ModelPredictResult, RoundResults
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
