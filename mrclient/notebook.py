"""A live view of a runner in a Jupyter notebook: ``show(runner)`` (public face of ``mrclient.view.live``)."""

from .view.live import LiveView, show

__all__ = ["LiveView", "show"]
