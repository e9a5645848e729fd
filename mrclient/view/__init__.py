"""Views of a whole runner: the notebook's live view, figures, Prometheus metrics.

Layer 7: each reads a concurrent runner's snapshots and never calls a
model. It may import every layer below, up to ``concurrent``. The public
faces are ``mrclient.notebook``, ``mrclient.plotting`` and ``mrclient.metrics``.
"""
