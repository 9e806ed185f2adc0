"""Arrow arrays from Python values, and numpy views of Arrow arrays, built from buffers.

pyarrow imports pandas the first time it converts a Python value (`pa.array`, `pa.scalar`, a Python scalar
passed to a compute function) or hands an array to numpy (`to_numpy`): about a third of a second, paid on the
critical path of every command that does. The ingest and replay paths build their arrays here instead.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def _validity(values: Sequence[object]) -> pa.Buffer | None:
    if None not in values:
        return None
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def strings(values: Sequence[str | None]) -> pa.Array:
    """Python strings (None for NULL) as an Arrow string array."""
    encoded = [v.encode("utf-8") if v is not None else b"" for v in values]
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    array = pa.Array.from_buffers(pa.large_string(), len(values),
                                  [_validity(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    return array.cast(pa.string())


def integers(values: Sequence[int | None], type_: pa.DataType | None = None) -> pa.Array:
    """Python ints (None for NULL) as an Arrow integer array of `type_` (int64 by default)."""
    type_ = type_ or pa.int64()
    dtype = type_.to_pandas_dtype()
    if None in values:
        data = np.fromiter((0 if v is None else v for v in values), dtype=dtype, count=len(values))
    else:
        data = np.array(values, dtype=dtype)
    return pa.Array.from_buffers(type_, len(values), [_validity(values), pa.py_buffer(data)])


def booleans(values: Sequence[bool | None]) -> pa.Array:
    """Python bools (None for NULL) as an Arrow boolean array."""
    data = np.array([bool(v) for v in values] if None in values else values, dtype=bool)
    return mask(data, _validity(values))


def mask(values: np.ndarray, validity: pa.Buffer | None = None) -> pa.Array:
    """numpy bools as an Arrow boolean array."""
    return pa.Array.from_buffers(pa.bool_(), len(values),
                                 [validity, pa.py_buffer(np.packbits(values, bitorder="little"))])


def int64s(values: np.ndarray) -> pa.Array:
    """numpy integers as an Arrow int64 array (no copy when they already are contiguous int64)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def of_type(values: Sequence[object], type_: pa.DataType) -> pa.Array:
    """Python values as an Arrow array of a string, integer or boolean type."""
    if pa.types.is_string(type_):
        return strings(values)  # type: ignore[arg-type]
    if pa.types.is_integer(type_):
        return integers(values, type_)  # type: ignore[arg-type]
    if pa.types.is_boolean(type_):
        return booleans(values)  # type: ignore[arg-type]
    raise TypeError(f"no buffer-built array of {type_}")


def string_scalar(value: str) -> pa.Scalar:
    data = value.encode("utf-8")
    return pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(struct.pack("<ii", 0, len(data))),
                                                  pa.py_buffer(data)])[0]


def numbers(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-width numeric array without NULLs as numpy values (a view of its buffer where it can be)."""
    if isinstance(array, pa.ChunkedArray):
        chunks = [numbers(c) for c in array.chunks]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=array.type.to_pandas_dtype())
    if array.null_count:
        raise ValueError("numbers() takes an array without NULLs")
    dtype = np.dtype(array.type.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def flags(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean array as numpy bools, NULL counting as False."""
    if isinstance(array, pa.ChunkedArray):
        chunks = [flags(c) for c in array.chunks]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=bool)
    n, offset = len(array), array.offset
    validity, data = array.buffers()[0], array.buffers()[1]
    values = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little", count=offset + n)[offset:]
    if validity is not None and array.null_count:
        values &= np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little", count=offset + n)[offset:]
    return values.astype(bool)


def table(rows: Sequence[dict[str, object]], schema: pa.Schema) -> pa.Table:
    """Rows of Python values (str, int, float, bool, None, datetime, nested lists and dicts) as a table of
    `schema`, read by Arrow's JSON reader: `Table.from_pylist` converts through `pa.array`."""
    import io
    import json
    from datetime import datetime

    from pyarrow import json as arrow_json

    if not rows:
        return schema.empty_table()

    def value(v: object) -> str:
        if isinstance(v, datetime):
            return v.isoformat()
        raise TypeError(f"no JSON spelling for {type(v).__name__}")

    text = "\n".join(json.dumps(row, default=value, allow_nan=False) for row in rows).encode("utf-8")
    options = arrow_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    return arrow_json.read_json(io.BytesIO(text), parse_options=options).select(schema.names).cast(schema)
