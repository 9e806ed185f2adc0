"""The malformed flow-log corpus: hundreds of bad inputs, each with the outcome ingest must give it.

Generated at test time (nothing large is committed): `corpus()` lists the cases, `ingest_corpus(folder)` writes
them all and ingests them with the real `flowstage` command, `check(case, run)` lists how a case missed its outcome.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from flowstage.store import Store

# Outcomes of one input, as `flowstage ingest --json` reports them per file.
INGESTED, SKIPPED, ERROR = "ingested", "skipped", "error"

GOOD = {
    "start_time": 1700000000, "end_time": 1700000300, "source_ip": "10.0.0.1", "source_name": "web-7d9f-abcde",
    "source_name_aggr": "web-7d9f-*", "source_namespace": "shop", "source_port": 40000, "source_type": "wep",
    "source_labels": {"labels": ["app=web", "team=shop"]}, "dest_ip": "10.0.0.2", "dest_name": "db-0",
    "dest_name_aggr": "db-*", "dest_namespace": "shop", "dest_port": 5432, "dest_type": "wep",
    "dest_labels": {"labels": ["app=db"]}, "dest_service_namespace": "shop", "dest_service_name": "db",
    "dest_service_port": "pg", "dest_service_port_num": 5432, "proto": "tcp", "action": "allow",
    "reporter": "src", "policies": {"enforced_policies": ["0|default|shop/default.allow-db|allow|0"],
                                    "pending_policies": ["0|default|shop/default.staged:deny-db|deny|-1"]},
    "bytes_in": 100, "bytes_out": 200, "packets_in": 2, "packets_out": 3, "num_flows": 1,
    "num_flows_started": 1, "num_flows_completed": 1,
}
GOLDMANE = {
    "Key": {"source_name": "web-*", "source_namespace": "shop", "source_type": 1, "dest_name": "db-*",
            "dest_namespace": "shop", "dest_type": 1, "dest_port": 5432, "proto": "tcp", "reporter": 1, "action": 1,
            "policies": {"enforced_policies": [{"kind": 1, "name": "allow-db", "namespace": "shop", "tier": "default",
                                                "action": 1, "policy_index": 0, "rule_index": 0}]}},
    "start_time": 1700000000, "end_time": 1700000015, "source_labels": ["app=web"], "dest_labels": ["app=db"],
    "bytes_out": 60, "packets_out": 1, "num_connections_started": 1,
}
WHISKER = {
    "start_time": "2023-11-14T22:13:20Z", "end_time": "2023-11-14T22:13:35Z", "action": "Allow",
    "source_name": "web-*", "source_namespace": "shop", "source_labels": "app=web", "dest_name": "db-*",
    "dest_namespace": "shop", "dest_labels": "app=db", "protocol": "tcp", "dest_port": 5432, "reporter": "Src",
    "policies": {"enforced": [{"kind": "CalicoNetworkPolicy", "name": "allow-db", "namespace": "shop",
                               "tier": "default", "action": "Allow", "policy_index": 0, "rule_index": 0}]},
    "packets_in": 1, "packets_out": 1, "bytes_in": 10, "bytes_out": 10,
}
MB = 1024 * 1024
LONG_LINE = 11 * MB  # "lines over 10 MB"
DEEP = 100_000  # nesting levels: far beyond any recursion limit


@dataclass(frozen=True)
class Outcome:
    """What ingest must report for one input file."""

    status: str  # ingested, skipped or error
    stored: int | None = 0  # rows stored; None for corrupt streams, where only genuine rows can be promised
    quarantined: Mapping[str, int] | None = field(default_factory=dict)  # reason → records; None: as for stored
    says: str = ""  # text the file's note (errors, skips) or every quarantine detail must contain


@dataclass(frozen=True)
class Case:
    """One malformed input: its family, a short name, the file name it is written under, and its outcome."""

    family: str
    name: str
    filename: str
    make: Callable[[], bytes]
    outcome: Outcome

    @property
    def id(self) -> str:
        return f"{self.family}-{self.name}"


def line(record: object) -> bytes:
    return json.dumps(record).encode() + b"\n"


def good(n: int = 1, **changes: object) -> bytes:
    return b"".join(line({**GOOD, **changes, "bytes_in": i}) for i in range(n))


def between(bad: bytes) -> bytes:
    """A bad line between two good records: the good ones must be kept.

    The first record names the bad line's digest: files that start alike are taken for one file renamed.
    """
    return good(source_name=hashlib.sha256(bad).hexdigest()[:16]) + bad.rstrip(b"\n") + b"\n" + good()


def quarantined(reason: str, says: str = "", stored: int = 2, count: int = 1) -> Outcome:
    return Outcome(INGESTED, stored, {reason: count}, says)


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def recoverable_lines(compressed: bytes, kind: str) -> tuple[int, bool]:
    """Complete lines a reader can decompress from a cut stream, and whether a partial line follows them."""
    if kind == "gzip":
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(compressed)
    else:
        data = b"".join(_zstd_chunks(compressed))
    return data.count(b"\n"), not data.endswith(b"\n") and bool(data)


def _zstd_chunks(compressed: bytes) -> Iterator[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(compressed, read_across_frames=True)
    try:
        while chunk := reader.read(65536):
            yield chunk
    except zstandard.ZstdError:
        return


# --- the corpus ----------------------------------------------------------------------------------------------


def _invalid_json() -> Iterator[Case]:
    broken = {
        "open-brace": b"{", "close-brace": b"}", "missing-value": b'{"start_time":}',
        "single-quotes": b"{'start_time': 1700000000}",
        "missing-colon": b'{"start_time" 1700000000}', "unclosed-array": b'{"start_time": [1,',
        "bare-word": b"start_time", "half-true": b'{"a": tru}', "unterminated-string": b'{"proto": "tcp}',
        "extra-brace": b'{"start_time": 1700000000}}', "trailing-text": b'{"start_time": 1700000000} and more',
        "two-objects": b'{"start_time": 1}{"start_time": 2}', "hex-number": b'{"start_time": 0x10}',
        "plus-number": b'{"start_time": +1}', "bare-exponent": b'{"start_time": 1e}',
        "leading-dot": b'{"start_time": .5}', "bad-escape": b'{"proto": "\\x41"}',
        "raw-tab-in-string": b'{"proto": "t\tcp"}', "unquoted-key": b"{start_time: 1}",
        "key-without-value": b'{"start_time": 1, "proto"}', "lone-comma": b"{,}",
        "mismatched-bracket": b'{"a": [1, 2}', "html": b"<html><body>502 Bad Gateway</body></html>",
        "comment": b"# flows.log rotated", "key-value-text": b"start_time=1700000000 proto=tcp",
        "missing-comma": b'{"start_time": 1700000000 "proto": "tcp"}', "nul-bytes": b"\x00\x00\x00\x00",
        "control-chars": b"\x1b[31m\x07\x08", "python-repr": b"{'start_time': 1700000000, 'proto': None}",
        "truncated-unicode-escape": b'{"proto": "\\u00"}', "double-colon": b'{"start_time":: 1}',
        "accented-text": '{"source_namespace": "équipe", "dest_namespace": "café" oops'.encode() * 20,
    }
    for name, bad in broken.items():
        yield Case("invalid-json", name, "flows.log", lambda bad=bad: between(bad),
                   quarantined("invalid_json", "not valid JSON"))
    not_records = {
        "number": b"12345", "string": b'"a flow"', "null": b"null", "true": b"true", "array": b"[1, 2, 3]",
        "empty-object": b"{}", "unrelated-object": b'{"hello": "world"}', "array-of-records": b"[" + line(GOOD)[:-1] + b"]",
    }
    for name, bad in not_records.items():
        yield Case("invalid-json", f"not-a-record-{name}", "flows.log", lambda bad=bad: between(bad),
                   quarantined("not_a_flow_record", "valid JSON"))
    # DuckDB's JSON reader accepts a comma before the closing brace: the record is whole, so it is kept.
    yield Case("invalid-json", "trailing-comma-kept", "flows.log", lambda: between(line(GOOD)[:-2] + b",}"),
               Outcome(INGESTED, 3))


def _truncated() -> Iterator[Case]:
    record = line(GOOD)[:-1]
    cuts = sorted({max(1, len(record) * k // 12) for k in range(1, 12)})
    for cut in cuts:
        piece = record[:cut]
        yield Case("truncated", f"middle-at-{cut}", "flows.log", lambda piece=piece: between(piece),
                   quarantined("invalid_json", "not valid JSON"))
        yield Case("truncated", f"last-line-at-{cut}", "flows.log", lambda piece=piece: good(2) + piece,
                   quarantined("truncated_last_line", "ends in the middle of a record"))
        tail = record[cut:]
        if not tail.lstrip().startswith((b"{", b"[")):
            yield Case("truncated", f"first-line-from-{cut}", "flows.log", lambda tail=tail: tail + b"\n" + good(2),
                       quarantined("truncated_first_line", "starts in the middle of a record"))


_WRONG_VALUES: dict[str, object] = {"text": "lots", "object": {"n": 1}, "list": [1], "bool": True}


def _wrong_types() -> Iterator[Case]:
    checked = ["start_time", "end_time", "source_port", "dest_port", "dest_service_port_num", "bytes_in",
               "bytes_out", "packets_in", "packets_out", "num_flows", "num_flows_started", "num_flows_completed",
               "@timestamp"]
    for name in checked:
        for kind, value in _WRONG_VALUES.items():
            yield Case("wrong-type", f"{name}-{kind}", "flows.log",
                       lambda name=name, value=value: between(line({**GOOD, name: value})),
                       quarantined("wrong_type", f"`{name}`"))
    out_of_range = {"start_time": 10**15, "end_time": -(10**15), "dest_port": 70000, "source_port": -1,
                    "dest_service_port_num": 10**12}
    for name, value in out_of_range.items():
        yield Case("wrong-type", f"{name}-out-of-range", "flows.log",
                   lambda name=name, value=value: between(line({**GOOD, name: value})),
                   quarantined("wrong_type", f"`{name}`"))
    yield Case("wrong-type", "generated_time-not-a-time", "flows.log",
               lambda: between(line({**GOOD, "generated_time": "yesterday"})),
               quarantined("wrong_type", "`generated_time`"))
    for side in ("source_labels", "dest_labels"):
        for kind, value in {"number": 7, "list-of-numbers": [1, 2], "object-without-labels": {"app": "web"},
                            "labels-not-a-list": {"labels": "app=web"}, "labels-of-objects": {"labels": [{"a": 1}]},
                            "bool": False}.items():
            yield Case("wrong-type", f"{side}-{kind}", "flows.log",
                       lambda side=side, value=value: between(line({**GOOD, side: value})),
                       quarantined("wrong_type", f"`{side}`"))
    for kind, value in {"string": "0|default|default.p|allow|0", "number": 3, "list": ["0|t|t.p|allow|0"],
                        "trace-not-a-list": {"enforced_policies": 5},
                        "hit-not-a-string": {"enforced_policies": [5]},
                        "index-beyond-int32": {"enforced_policies": ["99999999999|default|default.p|allow|0"]},
                        "rule-beyond-int32": {"enforced_policies": ["0|default|default.p|allow|99999999999"]},
                        }.items():
        yield Case("wrong-type", f"policies-{kind}", "flows.log",
                   lambda value=value: between(line({**GOOD, "policies": value})),
                   quarantined("wrong_type", "`policies`"))
    key_text = ["source_namespace", "dest_namespace", "source_name", "dest_name", "source_name_aggr", "dest_name_aggr",
                "source_ip", "dest_ip", "source_type", "dest_type", "proto", "action", "reporter",
                "dest_service_namespace", "dest_service_name", "dest_service_port"]
    for name in key_text:
        for kind in ("object", "list"):
            yield Case("wrong-type", f"{name}-{kind}", "flows.log",
                       lambda name=name, kind=kind: between(line({**GOOD, name: _WRONG_VALUES[kind]})),
                       quarantined("wrong_type", f"`{name}` has the wrong type or range (expected text)"))
    goldmane_numbers = ["start_time", "end_time", "bytes_in", "bytes_out", "packets_in", "packets_out",
                        "num_connections_started"]
    for name in goldmane_numbers:
        yield Case("wrong-type", f"goldmane-{name}-text", "goldmane.jsonl",
                   lambda name=name: line(GOLDMANE) + line({**GOLDMANE, name: "lots"}) + line(GOLDMANE),
                   quarantined("wrong_type", f"`{name}`"))
    yield Case("wrong-type", "goldmane-dest_port-text", "goldmane.jsonl",
               lambda: line(GOLDMANE) + line({**GOLDMANE, "Key": {**GOLDMANE["Key"], "dest_port": "http"}})
               + line(GOLDMANE), quarantined("wrong_type", "dest_port"))
    yield Case("wrong-type", "goldmane-policy-index-beyond-int32", "goldmane.jsonl",
               lambda: line(GOLDMANE) + line({**GOLDMANE, "Key": {**GOLDMANE["Key"], "policies": {
                   "enforced_policies": [{"kind": 1, "name": "p", "policy_index": "999999999999999"}]}}})
               + line(GOLDMANE), quarantined("wrong_type", "`policies`"))
    for name in ("dest_port", "bytes_in", "packets_out", "start_time", "end_time"):
        yield Case("wrong-type", f"whisker-{name}-object", "whisker.jsonl",
                   lambda name=name: line(WHISKER) + line({**WHISKER, name: {"n": 1}}) + line(WHISKER),
                   quarantined("wrong_type", f"`{name}`"))


def _long_lines() -> Iterator[Case]:
    junk = b"x" * LONG_LINE
    yield Case("long-line", "junk-between-records", "flows.log", lambda: between(junk),
               quarantined("invalid_json", "not valid JSON"))
    yield Case("long-line", "huge-label-value", "flows.log",
               lambda: between(line({**GOOD, "dest_labels": {"labels": ["blob=" + "y" * LONG_LINE]}})),
               Outcome(INGESTED, 3))
    yield Case("long-line", "cut-long-record-at-end", "flows.log",
               lambda: good(2) + line({**GOOD, "dest_name": "z" * LONG_LINE})[: LONG_LINE // 2],
               quarantined("truncated_last_line", "ends in the middle of a record"))
    yield Case("long-line", "no-newline-at-all", "flows.log", lambda: b"q" * LONG_LINE,
               Outcome(ERROR, says="cannot tell which flow-log format"))
    # Detection reads the first 64 KiB: past a longer first line it cannot see a record, and says so.
    yield Case("long-line", "junk-first-line", "flows.log", lambda: junk + b"\n" + good(2),
               Outcome(ERROR, says="cannot tell which flow-log format"))


def _binary() -> Iterator[Case]:
    for seed in range(12):
        size = random.Random(seed).choice([1, 17, 4096, 65536, 300_000])
        yield Case("binary", f"random-{seed}-{size}b", "flows.log",
                   lambda seed=seed, size=size: _random_not_compressed(seed, size),
                   Outcome(ERROR, says="binary data"))
    headers = {"elf": b"\x7fELF\x02\x01\x01" + bytes(200), "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
               "parquet": b"PAR1" + bytes(64) + b"PAR1", "sqlite": b"SQLite format 3\x00" + bytes(100),
               "zeros": bytes(10_000), "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(50)}
    for name, data in headers.items():
        yield Case("binary", name, "flows.log", lambda data=data: data, Outcome(ERROR, says="binary data"))
    for seed in range(6):
        junk = _random_not_compressed(seed, 2000)
        yield Case("binary", f"junk-after-records-{seed}", "flows.log",
                   lambda junk=junk: good(3) + junk + b"\n" + good(2), Outcome(INGESTED, 5, _junk_reasons(junk)))
    yield Case("binary", "nul-inside-record", "flows.log",
               lambda: between(line(GOOD)[:20] + b"\x00" + line(GOOD)[20:]),
               quarantined("invalid_json", "not valid JSON"))


def _random_not_compressed(seed: int, size: int) -> bytes:
    data = bytearray(random.Random(seed).randbytes(size))
    if data[:1] in (b"\x1f", b"\x28"):
        data[0] = 0xFE  # not by chance a gzip or zstd magic number
    return bytes(data)


def _junk_reasons(junk: bytes) -> dict[str, int]:
    """The quarantine reasons random bytes between records earn, line by line."""
    reasons: dict[str, int] = {}
    for piece in junk.split(b"\n"):
        if not piece.strip(b" \t\r"):
            continue
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            reason = "invalid_utf8"
        else:
            try:
                json.loads(text)
                reason = "not_a_flow_record"
            except ValueError:
                reason = "invalid_json"
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def _compressed() -> Iterator[Case]:
    for kind, compress, suffix in (("gzip", _gz, "gz"), ("zstd", _zst, "zst")):
        for k in range(1, 10):
            # Each file starts differently: files with the same first 4 KiB are one file renamed, to ingest.
            whole = compress(good(2000, source_name=f"{suffix}-cut-{k}"))
            data = whole[:len(whole) * k // 10]
            lines_ok, partial = recoverable_lines(data, kind)
            yield Case("compressed", f"{suffix}-cut-at-{k}0pct", f"flows.log.{suffix}", lambda data=data: data,
                       Outcome(ERROR, lines_ok, {"truncated_last_line": 1} if partial else {}, "damaged"))
        for k in range(4):
            whole = compress(good(2000, source_name=f"{suffix}-corrupt-{k}"))
            offset = (40, len(whole) // 3, len(whole) // 2, len(whole) - 40)[k]

            def corrupt(whole: bytes = whole, offset: int = offset) -> bytes:
                return whole[:offset] + bytes(b ^ 0x5A for b in whole[offset:offset + 32]) + whole[offset + 32:]
            # Corrupt deflate data decodes to garbage until the checksum at the end: it is quarantined as unreadable.
            yield Case("compressed", f"{suffix}-corrupt-{k}", f"flows.log.{suffix}", corrupt,
                       Outcome(ERROR, None, None, "damaged"))
    yield Case("compressed", "gz-header-only", "flows.log.gz", lambda: _gz(good(50))[:10],
               Outcome(ERROR, says="damaged"))
    yield Case("compressed", "gz-magic-only", "flows.log.gz", lambda: b"\x1f\x8b", Outcome(ERROR, says="damaged"))
    yield Case("compressed", "zst-magic-only", "flows.log.zst", lambda: b"\x28\xb5\x2f\xfd",
               Outcome(ERROR, says="damaged"))
    yield Case("compressed", "gz-empty-content", "flows.log.gz", lambda: _gz(b""), Outcome(ERROR, says="empty"))
    yield Case("compressed", "zst-empty-content", "flows.log.zst", lambda: _zst(b""), Outcome(ERROR, says="empty"))
    yield Case("compressed", "gz-of-binary", "flows.log.gz", lambda: _gz(random.Random(1).randbytes(5000)),
               Outcome(ERROR, says="binary data"))
    yield Case("compressed", "gz-of-gz", "flows.log.gz", lambda: _gz(_gz(good(3))),
               Outcome(ERROR, says="binary data"))
    yield Case("compressed", "gz-two-members", "flows.log.gz", lambda: _gz(good(3)) + _gz(good(4)), Outcome(INGESTED, 7))
    yield Case("compressed", "zst-two-frames", "flows.log.zst", lambda: _zst(good(4)) + _zst(good(3)),
               Outcome(INGESTED, 7))
    yield Case("compressed", "gz-trailing-garbage", "flows.log.gz", lambda: _gz(good(3)) + b"garbage after the end",
               Outcome(ERROR, 3, {}, "damaged"))
    yield Case("compressed", "named-gz-but-plain", "flows.log.gz", lambda: good(3), Outcome(INGESTED, 3))
    yield Case("compressed", "named-plain-but-zst", "flows.log", lambda: _zst(good(3)), Outcome(INGESTED, 3))


def _empty() -> Iterator[Case]:
    empties = {"zero-bytes": b"", "newlines": b"\n" * 100, "spaces": b"   \t  \n  ", "crlf-only": b"\r\n" * 10,
               "bom-only": b"\xef\xbb\xbf", "bom-newline": b"\xef\xbb\xbf\n"}
    for name, data in empties.items():
        yield Case("empty", name, "flows.log", lambda data=data: data, Outcome(ERROR, says="empty"))


def _bom() -> Iterator[Case]:
    bom = b"\xef\xbb\xbf"
    yield Case("bom", "jsonl", "flows.log", lambda: bom + good(3), Outcome(INGESTED, 3))
    yield Case("bom", "json-array", "flows.json", lambda: bom + json.dumps([GOOD, GOOD]).encode(), Outcome(INGESTED, 2))
    yield Case("bom", "sse", "whisker.sse", lambda: bom + b"data: " + line(WHISKER) + b"\n", Outcome(INGESTED, 1))
    yield Case("bom", "s3", "flows2023111422_0", lambda: bom + b"2023-11-14T22:13:20+00:00\tflows\t" + line(GOOD),
               Outcome(INGESTED, 1))
    yield Case("bom", "in-the-middle", "flows.log", lambda: good(1) + bom + good(1) + good(1),
               quarantined("invalid_json", "not valid JSON"))
    for name, codec in (("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be"), ("utf-16", "utf-16"),
                        ("utf-32", "utf-32")):
        prefix = b"\xff\xfe" if codec == "utf-16-le" else b"\xfe\xff" if codec == "utf-16-be" else b""
        yield Case("bom", name, "flows.log", lambda codec=codec, prefix=prefix: prefix + good(2).decode().encode(codec),
                   Outcome(ERROR, says="UTF-16" if "16" in codec else "UTF-32"))


def _crlf() -> Iterator[Case]:
    def crlf(data: bytes) -> bytes:
        return data.replace(b"\n", b"\r\n")

    yield Case("crlf", "jsonl", "flows.log", lambda: crlf(good(3)), Outcome(INGESTED, 3))
    yield Case("crlf", "with-a-bad-line", "flows.log", lambda: crlf(between(b"{oops")),
               quarantined("invalid_json", "not valid JSON"))
    yield Case("crlf", "mixed-endings", "flows.log", lambda: good(1) + crlf(good(1)) + good(1), Outcome(INGESTED, 3))
    yield Case("crlf", "sse", "whisker.sse", lambda: crlf(b"data: " + line(WHISKER) + b"\n" + b"data: " + line(WHISKER)),
               Outcome(INGESTED, 2))
    yield Case("crlf", "s3", "flows2023111422_0",
               lambda: crlf(b"2023-11-14T22:13:20+00:00\tflows\t" + line(GOOD)) * 2, Outcome(INGESTED, 2))
    yield Case("crlf", "json-array", "flows.json", lambda: crlf(json.dumps([GOOD, GOOD], indent=2).encode()),
               Outcome(INGESTED, 2))
    # Lines end at a line feed: a file with carriage returns only is one line, quarantined whole.
    yield Case("crlf", "cr-only", "flows.log", lambda: good(3).replace(b"\n", b"\r"),
               quarantined("truncated_last_line", "ends in the middle of a record", stored=0))
    yield Case("crlf", "last-line-cut-after-cr", "flows.log", lambda: crlf(good(2)) + line(GOOD)[:50] + b"\r",
               quarantined("truncated_last_line", "ends in the middle of a record"))


def _invalid_utf8() -> Iterator[Case]:
    bad = {
        "lone-continuation": b"\x80", "overlong-slash": b"\xc0\xaf", "surrogate": b"\xed\xa0\x80",
        "cut-multibyte": b"\xe2\x82", "latin1-cafe": "café".encode("latin-1"), "ff": b"\xff",
        "beyond-unicode": b"\xf4\x90\x80\x80",
    }
    for name, raw in bad.items():
        yield Case("invalid-utf8", f"in-a-label-{name}", "flows.log",
                   lambda raw=raw: between(line(GOOD).replace(b"app=db", b"app=" + raw)),
                   quarantined("invalid_utf8", "not valid UTF-8"))
    yield Case("invalid-utf8", "first-line", "flows.log",
               lambda: line(GOOD).replace(b"app=db", b"app=\xff") + good(2),
               quarantined("invalid_utf8", "not valid UTF-8"))
    yield Case("invalid-utf8", "last-line-without-newline", "flows.log",
               lambda: good(2) + line(GOOD).replace(b"app=db", b"app=\xff")[:-1],
               quarantined("invalid_utf8", "not valid UTF-8"))
    yield Case("invalid-utf8", "in-a-json-document", "flows.json",
               lambda: json.dumps([GOOD, GOOD]).encode().replace(b"app=db", b"app=\xff"),
               Outcome(ERROR, says="not UTF-8"))


def _deep() -> Iterator[Case]:
    arrays = b"[" * DEEP + b"]" * DEEP
    objects = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    yield Case("deep", "array-line-between-records", "flows.log", lambda: between(arrays),
               quarantined("not_a_flow_record", "valid JSON"))
    yield Case("deep", "object-line-between-records", "flows.log", lambda: between(objects),
               quarantined("not_a_flow_record", "valid JSON"))
    yield Case("deep", "unclosed-line-between-records", "flows.log", lambda: between(b"[" * DEEP),
               quarantined("invalid_json", "not valid JSON"))
    # Detection reads the first 64 KiB: a deep first line that fits is passed over like any other non-record.
    yield Case("deep", "first-line", "flows.log", lambda: b"[" * 20_000 + b"]" * 20_000 + b"\n" + good(2),
               quarantined("not_a_flow_record", "valid JSON"))
    yield Case("deep", "labels", "flows.log",
               lambda: between(line(GOOD).replace(b'["app=db"]', b"[" * DEEP + b"]" * DEEP)),
               quarantined("wrong_type", "`dest_labels`"))
    yield Case("deep", "policies", "flows.log",
               lambda: between(line({**GOOD, "policies": {"enforced_policies": "@"}}).replace(b'"@"', arrays)),
               quarantined("wrong_type", "`policies`"))
    yield Case("deep", "json-document", "flows.json", lambda: arrays, Outcome(ERROR, says="without flow-log fields"))
    yield Case("deep", "json-document-after-records", "flows.json",
               lambda: json.dumps([GOOD, GOOD]).encode() + b"\n" + arrays,
               Outcome(INGESTED, 2, {"invalid_json": 1}, "nests too deeply"))


def _unknown_formats() -> Iterator[Case]:
    formats = {
        "csv": b"start_time,end_time,source_ip,dest_ip,proto\n1700000000,1700000300,10.0.0.1,10.0.0.2,tcp\n",
        "vpc-flow-logs": b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 "
                         b"1418530010 1418530070 ACCEPT OK\n",
        "syslog": b"Nov 14 22:13:20 node-1 calico-node[123]: felix: flow log written\n",
        "yaml": b"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p\n",
        "xml": b"<?xml version='1.0'?><flows><flow proto='tcp'/></flows>\n",
        "html": b"<!doctype html><html><head><title>Index</title></head></html>\n",
        "plain-text": b"these are not the logs you are looking for\n",
        "shell-script": b"#!/bin/sh\nrm -rf /tmp/flows\n",
        "json-unrelated": line({"kind": "Event", "reason": "Scheduled", "message": "pod scheduled"}) * 3,
        "json-array-unrelated": json.dumps([{"name": "x"}, {"name": "y"}]).encode(),
        "tar": b"flows.log" + bytes(91) + b"0000644\x00" + bytes(400),
    }
    says = {"json-unrelated": "without flow-log fields", "json-array-unrelated": "without flow-log fields",
            "tar": "binary data"}
    for name, data in formats.items():
        yield Case("unknown-format", name, f"input.{name}", lambda data=data: data,
                   Outcome(ERROR, says=says.get(name, "cannot tell which flow-log format")))
    yield Case("unknown-format", "hubble-flows", "hubble.jsonl",
               lambda: line({"flow": {"source": {"namespace": "a"}, "verdict": "FORWARDED"}, "node_name": "n1"}) * 2,
               Outcome(INGESTED, 0, {"not_a_flow_record": 2}, "none of the fields"))


def _framings() -> Iterator[Case]:
    s3 = b"2023-11-14T22:13:20+00:00\tflows\t"
    yield Case("framing", "s3-broken-json", "flows2023111422_0", lambda: s3 + line(GOOD) + s3 + b"{oops\n" + s3 + line(GOOD),
               quarantined("invalid_json", "not valid JSON"))
    yield Case("framing", "s3-missing-tab", "flows2023111422_0",
               lambda: s3 + line(GOOD) + b"2023-11-14T22:13:20+00:00 flows " + line(GOOD) + s3 + line(GOOD),
               quarantined("invalid_json", "not valid JSON"))
    yield Case("framing", "sse-broken-data", "whisker.sse",
               lambda: b"data: " + line(WHISKER) + b"\ndata: {oops\n\ndata: " + line(WHISKER),
               quarantined("invalid_json", "not valid JSON"))
    yield Case("framing", "sse-error-event", "whisker.sse",
               lambda: b"data: " + line(WHISKER) + b"\nerror: upstream closed\n\ndata: " + line(WHISKER),
               quarantined("stream_error", "upstream closed"))
    yield Case("framing", "sse-without-records", "whisker.sse", lambda: b"event: ping\ndata: {}\n\n" * 3,
               Outcome(ERROR, says="event stream without flow records"))
    yield Case("framing", "array-cut-short", "flows.json",
               lambda: json.dumps([GOOD, GOOD, GOOD]).encode()[:-40],
               Outcome(INGESTED, 0, {"invalid_json": 1}, "invalid JSON"))
    yield Case("framing", "array-with-non-records", "flows.json",
               lambda: json.dumps([GOOD, 5, "x", None, {"hello": 1}, GOOD]).encode(),
               Outcome(INGESTED, 2, {"not_a_flow_record": 4}, "valid JSON"))
    yield Case("framing", "search-response-cut", "search.json",
               lambda: json.dumps({"hits": {"hits": [{"_id": "1", "_source": {**GOOD, "host": "n1"}}] * 3}},
                                  indent=1).encode()[:-100],
               Outcome(INGESTED, 0, {"invalid_json": 1}, "invalid JSON"))
    yield Case("framing", "search-response-bad-hit", "search.json",
               lambda: json.dumps({"hits": {"hits": [{"_id": "1", "_source": {**GOOD, "host": "n1"}}, {"_id": "2"},
                                                     {"_source": "x"}]}}).encode(),
               Outcome(INGESTED, 1, {"not_a_flow_record": 2}, "valid JSON"))
    yield Case("framing", "list-envelope-bad-items", "linseed.json",
               lambda: json.dumps({"total": 3, "items": [GOOD, [], {"start_time": "noon"}]}).encode(),
               Outcome(INGESTED, 1, {"not_a_flow_record": 1, "wrong_type": 1}))
    yield Case("framing", "pretty-record-then-garbage", "flows.json",
               lambda: json.dumps(GOOD, indent=2).encode() + b"\n}}} trailing",
               Outcome(INGESTED, 1, {"invalid_json": 1}, "invalid JSON"))
    yield Case("framing", "documents-one-after-another", "flows.json",
               lambda: json.dumps(GOOD, indent=2).encode() + b"\n" + json.dumps([GOOD, GOOD]).encode(),
               Outcome(INGESTED, 3))


FAMILIES = (_invalid_json, _truncated, _wrong_types, _long_lines, _binary, _compressed, _empty, _bom, _crlf,
            _invalid_utf8, _deep, _unknown_formats, _framings)


def corpus() -> list[Case]:
    """Every malformed input, in a stable order."""
    return [case for family in FAMILIES for case in family()]


def write(case: Case, folder: Path) -> Path:
    """Write one case as `folder/<case id>/<file name>` and return the path."""
    path = folder / case.id / case.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.make())
    return path


# --- running the corpus ----------------------------------------------------------------------------------------

TIMEOUT = 600  # seconds for ingesting the whole corpus; running out of it is a hang


def flowstage(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process; wide columns so messages are never wrapped."""
    return subprocess.run([sys.executable, "-m", "flowstage", "--quiet", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "COLUMNS": "100000"})


@dataclass
class CorpusRun:
    """One `flowstage ingest --json` of every case, and what the store holds afterwards, by file."""

    paths: dict[str, Path]  # case id → file
    files: dict[str, dict[str, Any]]  # file → its entry in the --json summary
    stderr: str
    returncode: int
    store: Path
    stored: dict[str, tuple[int, int, int]]  # file → rows, distinct lines, rows unlike the record at their line
    quarantined: dict[str, list[tuple[int, str, str, str]]]  # file → (line, reason, detail, raw)


def ingest_corpus(folder: Path, cases: list[Case] | None = None) -> CorpusRun:
    cases = corpus() if cases is None else cases
    paths = {case.id: write(case, folder / "in") for case in cases}
    store = folder / "store"
    result = flowstage("ingest", *map(str, paths.values()), "--store", str(store), "--json")
    summary = json.loads(result.stdout) if result.stdout.strip() else {"by_file": []}
    con = Store.open(store).connect()
    # `good(n)` records carry their index in bytes_in: a row unlike its line's record came out of damaged data.
    stored = {f: (n, lines, unlike) for f, n, lines, unlike in con.execute(
        "SELECT source_file, count(*), count(DISTINCT source_line), count(*) FILTER (bytes_in <> source_line - 1) "
        "FROM flows GROUP BY ALL").fetchall()}
    quarantined: dict[str, list[tuple[int, str, str, str]]] = {}
    for f, *row in con.execute("SELECT source_file, source_line, reason, detail, raw FROM quarantine").fetchall():
        quarantined.setdefault(f, []).append(tuple(row))
    return CorpusRun(paths, {f["source"]: f for f in summary["by_file"]}, result.stderr, result.returncode, store,
                     stored, quarantined)


def check(case: Case, run: CorpusRun) -> list[str]:
    """How the ingest of `case` missed its outcome; empty when it got it exactly."""
    path = str(run.paths[case.id])
    entry = run.files.get(path)
    if entry is None:
        return [f"{case.id}: not in the ingest summary"]
    expected = case.outcome
    problems = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{case.id}: {what} ({entry})")

    expect("continues" not in entry["note"], "two corpus files start alike: give one a distinct first record")
    expect(entry["status"] == expected.status, f"status {entry['status']}, expected {expected.status}")
    expect(entry["records_read"] == entry["stored"] + sum(entry["quarantined"].values()),
           "records read ≠ stored + quarantined")
    expect(expected.stored is None or entry["stored"] == expected.stored, f"expected {expected.stored} stored")
    expect(expected.quarantined is None or entry["quarantined"] == dict(expected.quarantined),
           f"expected quarantined {expected.quarantined}")
    stored, lines, unlike = run.stored.get(path, (0, 0, 0))
    expect(stored == lines == entry["stored"], f"the store holds {stored} rows of {lines} lines")
    rows = run.quarantined.get(path, [])
    expect(Counter(reason for _, reason, _, _ in rows) == Counter(entry["quarantined"]),
           f"the quarantine holds {Counter(reason for _, reason, _, _ in rows)}")
    expect(all(line >= 1 and detail and raw is not None for line, _, detail, raw in rows),
           "a quarantine entry lacks its line, detail or text")
    if expected.status == INGESTED:
        expect(all(expected.says in detail for _, _, detail, _ in rows), f"a quarantine detail lacks {expected.says!r}")
    else:
        expect(expected.says in entry["note"], f"the note lacks {expected.says!r}")
    if expected.status == ERROR:
        expect(f"error: {path}: {entry['note']}" in run.stderr, "the error is not printed with the file name")
    if case.family == "compressed" and ("-cut-" in case.name or "-corrupt-" in case.name):
        # What comes out of a damaged stream is either the record the file holds at that line, or quarantined.
        expect(unlike == 0, f"{unlike} stored rows differ from the records at their lines")
    return problems


@dataclass
class CorpusReport:
    inputs: int
    families: int
    failed: int  # inputs that missed their outcome
    tracebacks: int
    read: int
    stored: int
    quarantined: int
    problems: list[str]


def run_corpus(folder: Path) -> CorpusReport:
    """Ingest the whole corpus once and check every case: the figures `python -m tests.reliability` prints."""
    cases = corpus()
    run = ingest_corpus(folder, cases)
    problems = [problem for case in cases for problem in check(case, run)]
    failed = len({problem.split(":", 1)[0] for problem in problems})
    tracebacks = run.stderr.count("Traceback")
    if tracebacks or run.returncode != 0:
        problems.append(f"the ingest exited {run.returncode}: {run.stderr[-2000:]}")
    files = run.files.values()
    return CorpusReport(len(cases), len({case.family for case in cases}), failed, tracebacks,
                        sum(f["records_read"] for f in files), sum(f["stored"] for f in files),
                        sum(sum(f["quarantined"].values()) for f in files), problems)
