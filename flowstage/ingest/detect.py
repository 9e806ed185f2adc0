"""Format detection: which flow-log format a file holds and how its records are framed, from its first bytes.

Follows the cheat-sheet of the formats reference (§0); `--format` overrides the format, never the framing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

FORMATS = ("felix", "elastic", "linseed", "s3", "goldmane", "whisker")
FAMILY_OF = {"felix": "enterprise", "elastic": "enterprise", "linseed": "enterprise", "s3": "enterprise",
             "goldmane": "goldmane", "whisker": "whisker"}

# Framings: `lines` (one JSON record a line), `s3` (`time<TAB>tag<TAB>json` lines), `sse` (`data: json` lines),
# `document` (JSON documents: a record, an array, a search response or list envelope; pretty-printed or not).
LINES, S3, SSE, DOCUMENT = "lines", "s3", "sse", "document"

HEAD_LIMIT = 64 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"
_S3_LINE = re.compile(rb"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^\t\n]*\t[^\t\n]+\t\{")
_ENTERPRISE_KEYS = ("start_time", "source_name_aggr", "dest_name_aggr", "source_ip", "dest_ip", "proto",
                    "reporter", "policies", "source_namespace", "dest_namespace")
_ES_KEYS = ("host", "@timestamp", "cluster", "generated_time", "tenant")


@dataclass(frozen=True)
class Detection:
    format: str | None  # None: not a flow log
    framing: str
    reason: str = ""  # why it is not a flow log
    format_would_help: bool = True  # naming the format with --format would let it be read (not so for binary data)


def record_format(record: Any) -> str | None:
    """Format of one decoded JSON record (not of an envelope), or None if it is no flow record."""
    if not isinstance(record, dict):
        return None
    if "Key" in record or isinstance(record.get("flow"), dict):
        return "goldmane"
    if "protocol" in record and isinstance(record.get("start_time"), str):
        return "whisker"
    if any(k in record for k in _ENTERPRISE_KEYS):
        return "elastic" if any(k in record for k in _ES_KEYS) else "felix"
    return None


def document_format(document: Any) -> str | None:
    """Format of a whole JSON document: a record, an array of records, a search response or a list envelope."""
    if isinstance(document, list):
        return next((f for f in map(record_format, document[:10]) if f), None)
    if not isinstance(document, dict):
        return None
    hits = document.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
        return "elastic"
    items = document.get("items")
    if isinstance(items, list):
        inner = next((f for f in map(record_format, items[:10]) if f), None)
        if inner == "whisker":
            return "whisker"
        if inner == "goldmane":
            return "goldmane"
        return "linseed" if inner or not items else None
    return record_format(document)


def _format_from_text(text: str) -> str | None:
    """Best guess from key names alone, for a document that does not parse (it will be quarantined)."""
    def has(key: str) -> bool:
        return f'"{key}"' in text

    if has("Key"):
        return "goldmane"
    if has("protocol") and has("start_time") and not has("proto"):
        return "whisker"
    if has("items") and has("source_name_aggr"):
        return "linseed"
    if has("hits") and has("_source"):
        return "elastic"
    if any(has(k) for k in _ENTERPRISE_KEYS):
        return "elastic" if any(has(k) for k in _ES_KEYS) else "felix"
    return None


def detect(head: bytes, forced: str | None = None) -> Detection:
    """Decide format and framing from the first bytes of the (decompressed) content."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        return Detection(None, LINES, "empty file", format_would_help=False)
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0].lstrip()
    if first.startswith(("data:", "event:", "id:", "retry:")) or (first.startswith(":") and len(lines) > 1):
        formats = (record_format(_loads(line[5:])) for line in lines if line.startswith("data:"))
        fmt = forced or next((f for f in formats if f), None)
        return Detection(fmt, SSE, "" if fmt else "an event stream without flow records")
    if _S3_LINE.match(head.removeprefix(_UTF8_BOM).lstrip()):
        return Detection(forced or "s3", S3)
    # One record a line: the first line that parses on its own decides (the very first may be cut short).
    complete = lines[:-1] if not text.endswith("\n") and len(lines) > 1 else lines
    for line in complete[:50]:
        fmt = record_format(_loads(line))
        if fmt:
            return Detection(forced or fmt, LINES)
    if not forced and (problem := _not_text(head, text)):
        return Detection(None, LINES, problem, format_would_help=False)
    if stripped.startswith(("{", "[")):
        # A head shorter than the limit is the whole file; a longer one is cut, and only its keys can tell.
        fmt = document_format(_loads(stripped)) if len(head) < HEAD_LIMIT else None
        fmt = fmt or _format_from_text(stripped)
        if forced or fmt:
            return Detection(forced or fmt, DOCUMENT)
        return Detection(None, DOCUMENT, "JSON without flow-log fields")
    if forced:
        return Detection(forced, LINES)
    return Detection(None, LINES, "not JSON")


def _not_text(head: bytes, text: str) -> str | None:
    """Why content that holds no record is not text a flow log could be in (another encoding, binary), or None."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32 text; convert it to UTF-8, e.g. `iconv -f UTF-32 -t UTF-8`"
    sample = head[:4096]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        len(sample) >= 2 and max(sample[0::2].count(0), sample[1::2].count(0)) * 2 >= len(sample) * 0.9
        and 0 < sample.count(0) < len(sample) * 0.6
    ):
        return "UTF-16 text; convert it to UTF-8, e.g. `iconv -f UTF-16 -t UTF-8`"
    strange = sum(1 for ch in text[:4096] if ch == "\ufffd" or (ch < " " and ch not in "\t\r\n\f"))
    if b"\x00" in sample or strange * 10 > min(len(text), 4096):
        return "binary data, not a text log"
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
