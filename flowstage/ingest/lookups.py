"""Labels and policy traces decoded once per distinct logged value, kept as Arrow arrays across batches.

Rows carry the JSON text of their labels and traces; a lookup turns those texts into the schema's MAP and
LIST<STRUCT> columns by gathering decoded values by index, so Python work follows distinct values, not rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowstage import arrays, schema
from flowstage.ingest.labels import LabelsError, decode_labels
from flowstage.ingest.policy_hits import TRACE_COLUMNS, TraceError, decode_policies

TOO_DEEP = "it nests too deeply to read (more than about a thousand levels)"

# One decoded value as JSON text per output column (None for NULL); raises ValueError for an unreadable value.
Decoder = Callable[[Any], dict[str, str | None]]


def _from_json(sql: str, t: pa.DataType) -> str:
    """SQL reading a decoded value of type `t` (a map as its entries, or a list of structs) from its JSON text."""
    if pa.types.is_map(t):
        entries = json.dumps([{"key": schema.duckdb_type(t.key_type), "value": schema.duckdb_type(t.item_type)}])
        return f"CAST(map_from_entries(json_transform({sql}, {_quote(entries)})) AS {schema.duckdb_type(t)})"
    hits = json.dumps([{f.name: schema.duckdb_type(f.type) for f in t.value_type}])
    return f"CAST(json_transform({sql}, {_quote(hits)}) AS {schema.duckdb_type(t)})"


class Lookup:
    """Distinct JSON texts of one field → decoded Arrow values (one array per output column), or an error."""

    def __init__(self, con: duckdb.DuckDBPyConnection, columns: dict[str, pa.DataType], decode: Decoder) -> None:
        self.con = con
        self.columns = columns
        self.decode = decode
        self.index: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self._chunks: dict[str, list[pa.Array]] = {c: [] for c in columns}
        self._values: dict[str, pa.Array] = {}
        self._keys: pa.Array = arrays.strings([])

    def learn(self, texts: pa.ChunkedArray | pa.Array) -> None:
        """Decode the distinct texts not seen in an earlier batch."""
        new = [t for t in pc.unique(texts).to_pylist() if t is not None and t not in self.index and t not in self.errors]
        decoded: list[str] = []
        rows: dict[str, list[str | None]] = {c: [] for c in self.columns}
        for text in new:
            try:
                values = self.decode(json.loads(text))
            except RecursionError:
                self.errors[text] = TOO_DEEP
                continue
            except ValueError as exc:
                self.errors[text] = str(exc)
                continue
            decoded.append(text)
            for column in self.columns:
                rows[column].append(values[column])
        if not decoded:
            return
        # DuckDB reads the decoded JSON into the schema's nested types; Python builds no Arrow object per value.
        selects = ", ".join(f'{_from_json(f"unnest(${i}::VARCHAR[])", t)} AS "{c}"'
                            for i, (c, t) in enumerate(self.columns.items(), start=1))
        table = self.con.sql(f"SELECT {selects}", params=[rows[c] for c in self.columns]).to_arrow_table()
        for column, t in self.columns.items():
            self._chunks[column].append(table.column(column).combine_chunks())
            self._values[column] = pa.concat_arrays(self._chunks[column]).cast(t)
        for text in decoded:
            self.index[text] = len(self.index)
        self._keys = arrays.strings(list(self.index))

    def failing(self, texts: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array | None:
        """Per row: is its text one that could not be decoded? None when no row's is."""
        if not self.errors:
            return None
        mask = pc.is_in(texts, value_set=arrays.strings(list(self.errors)))
        return mask if pc.any(mask).as_py() else None

    def gather(self, texts: pa.ChunkedArray | pa.Array) -> dict[str, pa.ChunkedArray | pa.Array]:
        """Each row's decoded value per output column (NULL where the text is NULL)."""
        positions = pc.index_in(texts, value_set=self._keys)
        return {c: self._values[c].take(positions) if c in self._values else pa.nulls(len(texts), t)
                for c, t in self.columns.items()}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _labels(value: Any) -> dict[str, str | None]:
    try:
        pairs = decode_labels(value)
    except LabelsError as exc:
        raise ValueError(str(exc)) from None
    return {"labels": None if pairs is None else json.dumps([{"key": k, "value": v} for k, v in pairs])}


def _traces(value: Any) -> dict[str, str | None]:
    try:
        traces = decode_policies(value)
    except (TraceError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return {c: None if hits is None else json.dumps(hits) for c, hits in traces.items()}


def label_lookup(con: duckdb.DuckDBPyConnection) -> Lookup:
    return Lookup(con, {"labels": schema.LABELS}, _labels)


def trace_lookup(con: duckdb.DuckDBPyConnection) -> Lookup:
    return Lookup(con, dict.fromkeys(TRACE_COLUMNS, schema.POLICY_HITS), _traces)
