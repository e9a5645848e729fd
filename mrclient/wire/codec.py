"""Python values <-> ``commons.Variant`` bytes, as the model nodes encode them.

The byte layouts are the wire contract (PROTOCOL.md, section 2). PARQUET needs
pandas and pyarrow, which are optional (the ``parquet`` extra):
they are imported only when a DataFrame is encoded or Parquet bytes decoded.
"""

from __future__ import annotations

import io
import json
import numbers
import operator
import struct
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._support.extras import install_hint
from ..errors import InvalidCoordinatorUsageError
from .proto.commons_pb2 import Argument, KwArgument, Variant, VariantType

__all__ = [
    "Argument",
    "KwArgument",
    "Variant",
    "VariantType",
    "decode_data",
    "decode_variant",
    "detect_type",
    "encode_data",
    "named_arguments",
    "named_kw_arguments",
    "named_variant",
    "to_arguments",
    "to_kw_arguments",
    "to_variant",
]

_DOUBLE = struct.Struct("<d")
_INT = struct.Struct("<q")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

# The VariantType numbers, read once: ``VariantType.JSON`` goes through protobuf's enum
# wrapper, about a microsecond a lookup, and a round decodes a thousand answers.
NONE, DOUBLE, INT, STRING, PARQUET, JSON = (
    int(VariantType.Value(name)) for name in ("NONE", "DOUBLE", "INT", "STRING", "PARQUET", "JSON")
)


def type_name(data_type: int) -> str:
    """The VariantType's name, or its number when it has none."""
    try:
        return str(VariantType.Name(data_type))
    except ValueError:
        return f"VariantType({data_type})"


def _dataframe_class() -> type | None:
    # A value can only be a DataFrame if pandas is already imported; looking in
    # sys.modules keeps type detection free of a heavy, optional import.
    pandas = sys.modules.get("pandas")
    return getattr(pandas, "DataFrame", None)


def _parquet_modules() -> tuple[Any, Any, Any]:
    try:
        import pandas
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise ImportError(f"PARQUET values need pandas and pyarrow: {install_hint('parquet')}") from error
    return pandas, pyarrow, pyarrow.parquet


def detect_type(value: Any) -> int:
    """The VariantType a node would use for ``value``; ValueError if none fits."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return JSON  # keep true/false; INT would turn them into 1/0
    if isinstance(value, numbers.Integral):
        return INT
    if isinstance(value, numbers.Real):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, (dict, list, tuple)):
        return JSON
    dataframe = _dataframe_class()
    if dataframe is not None and isinstance(value, dataframe):
        return PARQUET
    raise ValueError(f"cannot encode a value of type {type(value).__name__}")


def _check_data_type(data_type: Any) -> None:
    """``data_type`` is a VariantType number (``VariantType.JSON``); else ValueError naming it."""
    if isinstance(data_type, bool) or not isinstance(data_type, int):
        raise ValueError(
            f"data_type must be a VariantType (VariantType.JSON, VariantType.DOUBLE, ...), got {data_type!r:.80}"
        )


def encode_data(data_type: int, value: Any) -> bytes:
    """Encode ``value`` as the bytes of a Variant of ``data_type``; ``ValueError`` names what is wrong."""
    _check_data_type(data_type)
    try:
        if data_type == NONE:
            return b""
        if data_type == DOUBLE:
            if isinstance(value, (str, bytes, bytearray)):
                raise TypeError("expected a number")  # float("1.5") would accept text
            return _DOUBLE.pack(float(value))
        if data_type == INT:
            number = operator.index(value)  # int() would truncate 3.7 to 3 and parse "12"
            if not _INT_MIN <= number <= _INT_MAX:
                raise ValueError("outside the signed 64-bit range")
            return _INT.pack(number)
        if data_type == STRING:
            if not isinstance(value, str):
                raise TypeError("expected str")
            return value.encode("utf-8")
        if data_type == JSON:
            return json.dumps(value, separators=(",", ":")).encode("utf-8")
        if data_type == PARQUET:
            return _encode_parquet(value)
    except ImportError:
        raise
    except (TypeError, ValueError, OverflowError, struct.error, RecursionError) as error:
        raise ValueError(
            f"cannot encode a value of type {type(value).__name__} as {type_name(data_type)}: {error}"
        ) from error
    raise ValueError(f"cannot encode data_type {type_name(data_type)}: not supported by the model nodes")


def _encode_parquet(value: Any) -> bytes:
    pandas, pyarrow, parquet = _parquet_modules()
    if isinstance(value, pandas.DataFrame):
        value = pyarrow.Table.from_pandas(value)
    if not isinstance(value, pyarrow.Table):
        raise TypeError("expected a pandas DataFrame or a pyarrow Table")
    sink = io.BytesIO()
    parquet.write_table(value, sink)
    return sink.getvalue()


def _decode_parquet(data: bytes) -> Any:
    _, pyarrow, parquet = _parquet_modules()
    return parquet.read_table(pyarrow.BufferReader(data)).to_pandas()


#: How the bytes of each VariantType the nodes send become a Python value.
_DECODERS: dict[int, Callable[[bytes], Any]] = {
    NONE: lambda _: None,
    DOUBLE: lambda data: _DOUBLE.unpack(data)[0],
    INT: lambda data: _INT.unpack(data)[0],
    STRING: lambda data: data.decode("utf-8"),
    JSON: lambda data: json.loads(data.decode("utf-8")),
    PARQUET: _decode_parquet,
}


def decode_data(data: bytes, data_type: int) -> Any:
    """Decode the bytes of a Variant of ``data_type`` into a Python value; ``ValueError`` names what is wrong."""
    _check_data_type(data_type)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes (a Variant's value), got {type(data).__name__} {data!r:.80}")
    decoder = _DECODERS.get(data_type)
    if decoder is None:
        raise ValueError(f"cannot decode data_type {type_name(data_type)}: not supported by the model nodes")
    try:
        return decoder(data)
    except ImportError:
        raise
    except Exception as error:  # any malformed payload: struct, unicode, json, arrow errors
        raise ValueError(f"cannot decode {len(data)} bytes as {type_name(data_type)}: {error}") from error


def to_variant(value: Any) -> Variant:
    """Wrap a plain value in a Variant of the detected type.

    ``None`` travels as JSON ``null``: the reference model node cannot decode
    NONE arguments, while every node decodes JSON.
    """
    if isinstance(value, Variant):
        return value
    data_type = detect_type(value)
    if data_type == NONE:
        data_type = JSON
    return Variant(type=data_type, value=encode_data(data_type, value))  # type: ignore[arg-type]


def decode_variant(variant: Variant) -> Any:
    """The Python value a Variant holds (an unset Variant holds ``None``)."""
    return decode_data(variant.value, variant.type)


def to_arguments(values: Iterable[Any] | None) -> list[Argument]:
    """Positional arguments, numbered from 1; Argument items are kept as they are."""
    if values is None:
        return []
    if isinstance(values, (str, bytes, bytearray, Mapping)) or not isinstance(values, Iterable):
        # iterating would silently make one argument per character or key
        raise TypeError(f"positional arguments must be a list or tuple, got {type(values).__name__}")
    return [
        value
        if isinstance(value, Argument)
        else Argument(position=position, data=_encoded(value, f"argument {position}"))
        for position, value in enumerate(values, start=1)
    ]


def to_kw_arguments(values: Mapping[str, Any] | Iterable[KwArgument] | None) -> list[KwArgument]:
    """Keyword arguments from a mapping (or a list of KwArgument, kept as is)."""
    if values is None:
        return []
    if isinstance(values, Mapping):
        return [
            value
            if isinstance(value, KwArgument)
            else KwArgument(keyword=key, data=_encoded(value, f"keyword {key!r}"))
            for key, value in values.items()
        ]
    if isinstance(values, (str, bytes, bytearray)) or not isinstance(values, Iterable):
        raise TypeError(f"keyword arguments must be a mapping or KwArgument items, got {type(values).__name__}")
    return [_require_kw_argument(value) for value in values]


def named_variant(name: str, value: Any) -> Variant:
    """``to_variant(value)`` for the parameter ``name``: an error is the coordinator's, and names it."""
    try:
        return to_variant(value)
    except (TypeError, ValueError) as error:
        raise InvalidCoordinatorUsageError(f"{name}: {error}") from error


def named_arguments(name: str, values: Any) -> list[Argument]:
    """``to_arguments(values)`` for the parameter ``name``: an error is the coordinator's, and names it."""
    try:
        return to_arguments(values)
    except (TypeError, ValueError) as error:
        raise InvalidCoordinatorUsageError(f"{name}: {error}") from error


def named_kw_arguments(name: str, values: Any) -> list[KwArgument]:
    """``to_kw_arguments(values)`` for the parameter ``name``: an error is the coordinator's, and names it."""
    try:
        return to_kw_arguments(values)
    except (TypeError, ValueError) as error:
        raise InvalidCoordinatorUsageError(f"{name}: {error}") from error


def _encoded(value: Any, name: str) -> Variant:
    """``to_variant(value)``, with the argument's name in the error when it cannot be encoded."""
    try:
        return to_variant(value)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def _require_kw_argument(value: Any) -> KwArgument:
    if not isinstance(value, KwArgument):
        raise TypeError(f"keyword arguments must be a mapping or KwArgument items, got {type(value).__name__}")
    return value
