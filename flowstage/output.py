"""Rendering query results for people and programs: table, json, jsonl, csv, markdown or parquet.

One helper for every command (`write_result`); terminal tables escape log content so it cannot inject markup
or control sequences.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import html
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from flowstage import console
from flowstage.errors import UsageError
from flowstage.options import OUTPUT_FORMATS

TABLE_ROW_LIMIT = 1000  # a terminal table longer than this helps nobody: use csv or parquet
BATCH_ROWS = 10_000

Result = duckdb.DuckDBPyRelation | pa.Table | pa.RecordBatchReader


def _batches(result: Result) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if isinstance(result, pa.Table):
        return result.schema, iter(result.to_batches(BATCH_ROWS))
    if isinstance(result, pa.RecordBatchReader):
        return result.schema, iter(result)
    reader = result.to_arrow_reader(BATCH_ROWS)
    return reader.schema, iter(reader)


def _plain(value: Any) -> Any:
    """A value from Arrow's to_pylist → something json.dumps can write, keeping maps as objects."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    return [_plain(row) for row in batch.to_pylist(maps_as_pydicts="lossy")]


def _cell(value: Any) -> str:
    """One value as text in a csv / markdown / terminal cell (nested values as compact JSON)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_result(result: Result, fmt: str = "table", output: str | Path | None = None) -> int:
    """Write a DuckDB relation or Arrow table/reader as `fmt` to `output` (a path) or stdout; rows written."""
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    schema, batches = _batches(result)
    if fmt == "parquet":
        return _write_parquet(schema, batches, output)
    if output is not None:
        with Path(output).open("w", encoding="utf-8", newline="") as fh:
            return _write_text(fmt, schema, batches, fh, to_terminal=False)
    out: IO[str] = _Printable(sys.stdout) if sys.stdout.isatty() else sys.stdout  # type: ignore[assignment]
    return _write_text(fmt, schema, batches, out, to_terminal=True)


class _Printable:
    """Standard output on a terminal: control characters in values are written as escapes, never obeyed."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(console.printable(text))


def _write_parquet(schema: pa.Schema, batches: Iterator[pa.RecordBatch], output: str | Path | None) -> int:
    if output is None and sys.stdout.isatty():
        raise UsageError("parquet output is binary: give --output FILE.parquet (or pipe it into a file)")
    sink: Any = str(output) if output is not None else sys.stdout.buffer
    rows = 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _write_text(fmt: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch], out: IO[str],
                to_terminal: bool) -> int:
    names = schema.names
    rows = 0
    if fmt == "table":
        return _write_table(names, batches, out, to_terminal)
    if fmt == "json":
        out.write("[")
        for batch in batches:
            for row in _rows(batch):
                out.write(("," if rows else "") + "\n" + json.dumps(row, ensure_ascii=False))
                rows += 1
        out.write("\n]\n" if rows else "]\n")
        return rows
    if fmt == "jsonl":
        for batch in batches:
            for row in _rows(batch):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                rows += 1
        return rows
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: a CR in a value is then quoted too
        writer.writerow(names)
        for batch in batches:
            for row in _rows(batch):
                writer.writerow([_cell(row[n]) for n in names])
                rows += 1
        return rows
    # markdown: a GitHub table; pipes and line breaks in values would break the row
    out.write("| " + " | ".join(_md(n) for n in names) + " |\n")
    out.write("|" + "|".join("---" for _ in names) + "|\n")
    for batch in batches:
        for row in _rows(batch):
            out.write("| " + " | ".join(_md(_cell(row[n])) for n in names) + " |\n")
            rows += 1
    return rows


_MD_SPECIAL = re.compile(r"([\\`|\[\]])")


def _md(text: str) -> str:
    """A Markdown table cell: one line, no HTML, no links or images, no code spans, no control characters."""
    text = console.printable(" ".join(text.split()))
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _write_table(names: list[str], batches: Iterator[pa.RecordBatch], out: IO[str], to_terminal: bool) -> int:
    table = Table(*[console.escape(n) for n in names], show_lines=False)
    rows = 0
    for batch in batches:
        for row in _rows(batch):
            if rows < TABLE_ROW_LIMIT:
                table.add_row(*[console.escape(_cell(row[n])) for n in names])
            rows += 1
    target = console.out if to_terminal else _file_console(out)
    target.print(table)
    if rows > TABLE_ROW_LIMIT:
        target.print(f"… {rows - TABLE_ROW_LIMIT} more rows not shown (use --format csv or --output FILE)")
    else:
        target.print(f"{rows} row{'s' if rows != 1 else ''}")
    return rows


def _file_console(out: IO[str]) -> Console:
    return Console(file=out, highlight=False, width=200, color_system=None)
