"""Secure mode (PROTOCOL.md section 4, SECURE-MODE.md): credentials, the TLS probe, identity checks.

Layer 2, beside ``wire``: how one connection to a model node is secured. It
may import ``errors`` and ``_support``.

Only ``credentials`` is imported with the package; the rest needs the
``secure`` extra and is imported when a runner connects in secure mode.
"""

from .credentials import GatewayCredentials, SecureCredentials
from .errors import PLAINTEXT_NODE, REFUSED, AuthError

__all__ = ["AuthError", "GatewayCredentials", "PLAINTEXT_NODE", "REFUSED", "SecureCredentials"]
