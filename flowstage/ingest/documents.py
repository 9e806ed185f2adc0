"""Single-document inputs: search responses, Linseed and Whisker list envelopes, arrays, pretty-printed records.

A file may hold several documents one after another; each record becomes one line of JSON text, numbered
1, 2, … in file order, and then goes through the same SQL as line formats.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from flowstage import arrays
from flowstage.ingest.lines import line_table

_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class Unreadable:
    """A document that is not valid JSON: everything from its start on, for the quarantine."""

    record_no: int
    text: str
    detail: str


def _records(document: Any) -> Iterator[Any]:
    """The flow records inside one document, whatever the envelope."""
    if isinstance(document, list):
        yield from document
        return
    if isinstance(document, dict):
        hits = document.get("hits")
        if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            for hit in hits["hits"]:
                if isinstance(hit, dict) and isinstance(hit.get("_source"), dict):
                    record = dict(hit["_source"])
                    if "_id" in hit:
                        record.setdefault("id", hit["_id"])
                    yield record
                else:
                    yield hit
            return
        if isinstance(document.get("items"), list):
            yield from document["items"]
            return
    yield document


def document_records(text: str) -> tuple[pa.Table, Unreadable | None]:
    """All records of `text` (one or more JSON documents) as a line table, and the unreadable rest if any."""
    numbers: list[int] = []
    texts: list[str] = []
    position = 0
    length = len(text)
    while True:
        while position < length and text[position] in " \t\r\n\ufeff":
            position += 1
        if position >= length:
            break
        try:
            document, position = _decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            line = text.count("\n", 0, exc.pos) + 1
            return _table(numbers, texts), Unreadable(len(numbers) + 1, text[position:].rstrip(),
                                                      f"invalid JSON at line {line}: {exc.msg}")
        except RecursionError:
            line = text.count("\n", 0, position) + 1
            return _table(numbers, texts), Unreadable(len(numbers) + 1, text[position:].rstrip(),
                                                      f"the JSON document at line {line} nests too deeply to read")
        for record in _records(document):
            numbers.append(len(numbers) + 1)
            texts.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    return _table(numbers, texts), None


def _table(numbers: list[int], texts: list[str]) -> pa.Table:
    return line_table(arrays.int64s(np.array(numbers, dtype=np.int64)), arrays.strings(texts),
                      pa.nulls(len(numbers), pa.string()))
