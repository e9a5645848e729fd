"""mrclient: a synchronous client for CrunchDAO coordinators.

This module is the whole public surface; everything else is private.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .codec import Argument, KwArgument, Variant, VariantType, decode_data, encode_data
from .errors import InvalidCoordinatorUsageError, MrclientError

__all__ = [
    "Argument",
    "InvalidCoordinatorUsageError",
    "KwArgument",
    "MrclientError",
    "Variant",
    "VariantType",
    "__version__",
    "decode_data",
    "encode_data",
]
