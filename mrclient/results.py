"""A round's results (public face of ``mrclient.concurrent.results``, the import path of mrclient 0.1)."""

from .concurrent.results import ModelPredictResult, RoundResults

__all__ = ["ModelPredictResult", "RoundResults"]
