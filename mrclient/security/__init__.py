"""Credentials for model nodes in secure mode (PROTOCOL.md, section 4)."""

from .credentials import GatewayCredentials, SecureCredentials

__all__ = ["GatewayCredentials", "SecureCredentials"]
