"""The Variant codec: round trips for every type, byte layouts, and clear errors."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from mrclient.wire.codec import (
    Argument,
    KwArgument,
    Variant,
    VariantType,
    decode_data,
    decode_variant,
    detect_type,
    encode_data,
    to_arguments,
    to_kw_arguments,
    to_variant,
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def round_trip(data_type: int, value: Any) -> Any:
    return decode_data(encode_data(data_type, value), data_type)


# -- round trips and byte layouts (PROTOCOL.md section 2) ----------------------


def test_none() -> None:
    assert encode_data(VariantType.NONE, None) == b""
    assert decode_data(b"", VariantType.NONE) is None
    assert detect_type(None) == VariantType.NONE


@pytest.mark.serial  # hypothesis' deadline: 200 ms an example, by the wall clock
@given(st.floats())
def test_double_round_trip(value: float) -> None:
    data = encode_data(VariantType.DOUBLE, value)
    assert data == struct.pack("<d", value)  # IEEE-754 float64, little-endian
    decoded = decode_data(data, VariantType.DOUBLE)
    if math.isnan(value):
        assert math.isnan(decoded)
    else:
        assert decoded == value and math.copysign(1.0, decoded) == math.copysign(1.0, value)
    assert detect_type(value) == VariantType.DOUBLE


@pytest.mark.parametrize("value", [math.inf, -math.inf, -0.0, 5e-324])
def test_double_edges(value: float) -> None:
    assert struct.pack("<d", round_trip(VariantType.DOUBLE, value)) == struct.pack("<d", value)


def test_double_nan_through_variant() -> None:
    variant = to_variant(math.nan)
    assert variant.type == VariantType.DOUBLE
    assert math.isnan(decode_variant(variant))


@pytest.mark.serial  # hypothesis' deadline: 200 ms an example, by the wall clock
@given(INT64)
def test_int_round_trip(value: int) -> None:
    data = encode_data(VariantType.INT, value)
    assert data == value.to_bytes(8, "little", signed=True)  # how the reference node decodes it
    assert decode_data(data, VariantType.INT) == value
    assert detect_type(value) == VariantType.INT


@pytest.mark.serial  # hypothesis' deadline: 200 ms an example, by the wall clock
@given(st.one_of(st.integers(max_value=-(2**63) - 1), st.integers(min_value=2**63)))
def test_int_outside_64_bits_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="type int"):
        to_variant(value)


@pytest.mark.parametrize("value", [3.7, "12", b"\x01"])
def test_int_refuses_what_is_not_an_integer(value: Any) -> None:
    with pytest.raises(ValueError, match=f"type {type(value).__name__} as INT"):
        encode_data(VariantType.INT, value)


def test_double_refuses_text() -> None:
    with pytest.raises(ValueError, match="type str as DOUBLE"):
        encode_data(VariantType.DOUBLE, "1.5")


@pytest.mark.serial  # hypothesis' deadline: 200 ms an example, by the wall clock
@given(st.text())
def test_string_round_trip(value: str) -> None:
    data = encode_data(VariantType.STRING, value)
    assert data == value.encode("utf-8")
    assert decode_data(data, VariantType.STRING) == value
    assert detect_type(value) == VariantType.STRING


def test_string_unicode_bytes() -> None:
    assert encode_data(VariantType.STRING, "é🐦") == b"\xc3\xa9\xf0\x9f\x90\xa6"


@pytest.mark.serial  # hypothesis' deadline: 200 ms an example, by the wall clock
@given(JSON_VALUES)
def test_json_round_trip(value: Any) -> None:
    data = encode_data(VariantType.JSON, value)
    assert decode_data(data, VariantType.JSON) == value
    data.decode("utf-8")  # JSON travels as UTF-8 text


@pytest.mark.serial  # hypothesis' deadline: 200 ms an example, by the wall clock
@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4))
def test_json_round_trip_through_variant(value: dict[str, Any]) -> None:
    variant = to_variant(value)
    assert variant.type == VariantType.JSON
    assert decode_variant(Variant.FromString(variant.SerializeToString())) == value


def test_json_special_values() -> None:
    assert round_trip(VariantType.JSON, [True, False, None]) == [True, False, None]
    assert round_trip(VariantType.JSON, (1, "a")) == [1, "a"]  # a tuple travels as a list
    decoded = round_trip(VariantType.JSON, [math.nan, math.inf])
    assert math.isnan(decoded[0]) and decoded[1] == math.inf


@settings(max_examples=25, deadline=None)
@given(
    data_frames(
        [
            column("i", dtype=np.int64),
            column("f", elements=st.floats(allow_nan=False), dtype=np.float64),
            column("s", elements=st.text(max_size=5), dtype=object),
        ],
        index=range_indexes(max_size=5),
    )
)
def test_parquet_round_trip(frame: pd.DataFrame) -> None:
    variant = to_variant(frame)
    assert variant.type == VariantType.PARQUET
    assert variant.value[:4] == b"PAR1"  # a Parquet file
    decoded = decode_variant(variant)
    pd.testing.assert_frame_equal(decoded, frame, check_dtype=False, check_index_type=False)
    assert list(decoded.dtypes[["i", "f"]]) == [np.int64, np.float64]


# -- detect_type and to_variant ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, VariantType.NONE),
        (True, VariantType.JSON),  # not INT: true must stay true
        (7, VariantType.INT),
        (np.int64(7), VariantType.INT),
        (1.5, VariantType.DOUBLE),
        (np.float32(1.5), VariantType.DOUBLE),
        ("s", VariantType.STRING),
        ([1], VariantType.JSON),
        ((1,), VariantType.JSON),
        ({"a": 1}, VariantType.JSON),
        (pd.DataFrame({"a": [1]}), VariantType.PARQUET),
    ],
)
def test_detect_type(value: Any, expected: int) -> None:
    assert detect_type(value) == expected


def test_none_travels_as_json_null() -> None:
    variant = to_variant(None)  # the reference node cannot decode NONE arguments
    assert (variant.type, variant.value) == (VariantType.JSON, b"null")


def test_variant_passes_through() -> None:
    variant = Variant(type=VariantType.STRING, value=b"x")
    assert to_variant(variant) is variant


@pytest.mark.parametrize("value", [b"bytes", object(), {1, 2}])
def test_unsupported_type_names_it(value: Any) -> None:
    with pytest.raises(ValueError, match=f"type {type(value).__name__}"):
        to_variant(value)


def test_json_unencodable_names_the_type() -> None:
    with pytest.raises(ValueError, match="type dict as JSON"):
        to_variant({"when": object()})
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="type list as JSON"):
        to_variant(circular)


def test_arrow_is_not_encodable() -> None:
    with pytest.raises(ValueError, match="ARROW"):
        encode_data(VariantType.ARROW, b"")


# -- undecodable bytes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "data_type", "name"),
    [
        (b"\x00" * 3, VariantType.DOUBLE, "DOUBLE"),
        (b"\x00" * 9, VariantType.DOUBLE, "DOUBLE"),
        (b"\x00" * 7, VariantType.INT, "INT"),
        (b"\xff\xfe", VariantType.STRING, "STRING"),
        (b"{", VariantType.JSON, "JSON"),
        (b"\xff", VariantType.JSON, "JSON"),
        (b"not a parquet file", VariantType.PARQUET, "PARQUET"),
        (b"x", VariantType.ARROW, "ARROW"),
        (b"x", 99, "VariantType\\(99\\)"),
    ],
)
def test_undecodable_bytes_name_the_type(data: bytes, data_type: int, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        decode_data(data, data_type)


def test_unset_variant_is_none() -> None:
    assert decode_variant(Variant()) is None


# -- arguments ----------------------------------------------------------------------------


def test_to_arguments_numbers_from_one() -> None:
    kept = Argument(position=9, data=to_variant("kept"))
    arguments = to_arguments([1, "a", None, kept])
    assert [a.position for a in arguments] == [1, 2, 3, 9]
    assert [decode_variant(a.data) for a in arguments] == [1, "a", None, "kept"]
    assert arguments[0].data.type == VariantType.INT
    assert arguments[3] is kept
    assert to_arguments(None) == [] and to_arguments(()) == []


@pytest.mark.parametrize("values", ["ab", b"ab", {"a": 1}])
def test_to_arguments_refuses_a_lone_string_or_mapping(values: Any) -> None:
    with pytest.raises(TypeError, match="list or tuple"):
        to_arguments(values)


def test_to_kw_arguments() -> None:
    arguments = to_kw_arguments({"horizon": 3, "name": "x"})
    assert {a.keyword: decode_variant(a.data) for a in arguments} == {"horizon": 3, "name": "x"}
    kept = KwArgument(keyword="k", data=to_variant(1.5))
    assert to_kw_arguments([kept]) == [kept]
    assert to_kw_arguments({"k": kept}) == [kept]
    assert to_kw_arguments(None) == []
    with pytest.raises(TypeError, match="KwArgument"):
        to_kw_arguments([("k", 1)])  # type: ignore[list-item]


# -- PARQUET is an optional extra -----------------------------------------------------------


@pytest.mark.parametrize("missing", ["pandas", "pyarrow", "pyarrow.parquet"])
def test_parquet_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    frame = pd.DataFrame({"a": [1]})
    data = encode_data(VariantType.PARQUET, frame)
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(ImportError, match=r"pip install '\.\[parquet\]' in a clone of mrclient"):
        encode_data(VariantType.PARQUET, frame)
    with pytest.raises(ImportError, match=r"pip install '\.\[parquet\]' in a clone of mrclient"):
        decode_data(data, VariantType.PARQUET)


@pytest.mark.subprocess
def test_core_import_needs_neither_pandas_nor_pyarrow() -> None:
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("pandas", "pyarrow"):
                    raise ImportError("blocked " + name)
                return None

        sys.meta_path.insert(0, Block())
        import mrclient
        from mrclient.testing import LocalModelNode
        assert mrclient.__version__
        assert mrclient.decode_data(mrclient.encode_data(mrclient.VariantType.INT, 5), mrclient.VariantType.INT) == 5
        try:
            mrclient.decode_data(b"x", mrclient.VariantType.PARQUET)
        except ImportError as error:
            assert "pip install '.[parquet]'" in str(error), error
        else:
            raise AssertionError("PARQUET decoded without pyarrow")
        loaded = sorted(name for name in sys.modules if name.partition(".")[0] in ("pandas", "pyarrow"))
        assert not loaded, loaded
        print(mrclient.__version__)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import mrclient

    assert done.stdout.strip() == mrclient.__version__


def test_an_argument_that_cannot_be_encoded_is_named() -> None:
    with pytest.raises(ValueError, match="^argument 2: cannot encode a value of type object"):
        to_arguments([1, object()])
    with pytest.raises(ValueError, match="^keyword 'metrics': cannot encode a value of type dict as JSON"):
        to_kw_arguments({"ok": 1, "metrics": {"x": object()}})
