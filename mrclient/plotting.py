"""Figures of a crunch for a notebook (public face of ``mrclient.view.figures``; the ``notebook`` extra)."""

from .view.figures import latency_figure, status_figure

__all__ = ["latency_figure", "status_figure"]
