"""``host:port`` as gRPC targets and WebSocket URLs want it: an IPv6 address in brackets.

Every place that names a peer (a model node's target, the orchestrator's URL,
the address ``mrclient watch`` shows, the local test servers' bind address)
writes it by this one rule, so an IPv6 peer reads the same everywhere.
"""

from __future__ import annotations

__all__ = ["host_port"]


def host_port(host: str, port: int | str) -> str:
    """``host:port``, with ``host`` in brackets when it is an IPv6 address (it holds a colon)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
