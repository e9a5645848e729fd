"""Prometheus metrics of concurrent runners (public face of ``mrclient.view.metrics``; the ``metrics`` extra)."""

from .view.metrics import MrclientCollector, register_metrics

__all__ = ["MrclientCollector", "register_metrics"]
