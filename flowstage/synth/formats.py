"""The byte-exact shapes of every flow-log format flowstage reads, written from `FlowRecord`s.

felix `flows.log` lines, Elasticsearch `_source` documents (as Linseed stores them), Goldmane emitter NDJSON (Go
encoding/json) and the Whisker `/flows` list; plain, `.gz` or `.zst` by file suffix; felix's rotated file names.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from flowstage.errors import UsageError
from flowstage.synth.records import (
    GOLDMANE_ACTIONS,
    GOLDMANE_ENDPOINT_TYPES,
    GOLDMANE_REPORTERS,
    FlowKey,
    FlowRecord,
    LoggedEndpoint,
    PolicyHit,
)

FORMATS = ("felix", "elastic", "goldmane", "whisker")
TCP_STATS = (
    "tcp_mean_send_congestion_window",
    "tcp_min_send_congestion_window",
    "tcp_mean_smooth_rtt",
    "tcp_max_smooth_rtt",
    "tcp_mean_min_rtt",
    "tcp_max_min_rtt",
    "tcp_mean_mss",
    "tcp_min_mss",
    "tcp_total_retransmissions",
    "tcp_lost_packets",
    "tcp_unrecovered_to",
)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_GO_ESCAPED = re.compile("[<>&\u2028\u2029]")
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> str:
    """JSON text as Go's encoding/json writes it: compact, UTF-8, with `<`, `>`, `&`, U+2028/9 escaped."""
    text = _ENCODER.encode(value)
    if _GO_ESCAPED.search(text):
        text = _GO_ESCAPED.sub(lambda m: _GO_ESCAPES[m.group()], text)
    return text


def rfc3339(seconds: int, nanos: int = 0) -> str:
    """Go's time.Time JSON form in UTC (RFC 3339 with nanoseconds, trailing zeros trimmed)."""
    base = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{base}{fraction}Z"


# --- compiling a record layout -------------------------------------------------------------------------------
#
# A layout is the ordered list of a format's fields. Fields that depend only on the key are rendered once per key
# into one text fragment; the few that change per window (times, counters) are rendered per record. This keeps
# the per-record cost to a handful of string joins, which is what lets hundreds of MB be written in seconds.

RowPiece = Callable[[FlowRecord], "str | None"]


@dataclass(frozen=True)
class _Field:
    name: str
    of_key: Callable[[FlowKey], Any] | None = None
    of_row: RowPiece | None = None
    omit_empty: bool = False  # Go's `omitempty`: leave the key out when the value is zero, empty or null
    constant: bool = False  # the same for every key: rendered once per layout


def _key(name: str, fn: Callable[[FlowKey], Any], omit_empty: bool = False) -> _Field:
    return _Field(name, of_key=fn, omit_empty=omit_empty)


def _const(name: str, value: Any) -> _Field:
    return _Field(name, of_key=lambda _k: value, constant=True)


def _row_int(name: str, attr: str, omit_zero: bool = False) -> _Field:
    prefix = f'"{name}":'
    if omit_zero:
        return _Field(name, of_row=lambda r: (prefix + str(v)) if (v := getattr(r, attr)) else None)
    return _Field(name, of_row=lambda r: prefix + str(getattr(r, attr)))


def _row(name: str, fn: Callable[[FlowRecord], Any]) -> _Field:
    prefix = f'"{name}":'
    return _Field(name, of_row=lambda r: prefix + go_json(fn(r)))


class _Layout:
    def __init__(self, fields: list[_Field]) -> None:
        self.fields = fields
        self._compiled: dict[int, tuple[FlowKey, list[str | RowPiece]]] = {}
        self._constant_text = {f.name: f'"{f.name}":{go_json(f.of_key(None))}' for f in fields if f.constant and f.of_key}  # type: ignore[arg-type]

    def parts(self, key: FlowKey) -> list[str | RowPiece]:
        # Keys are long-lived objects (one per flow); identity is far cheaper than hashing the nested dataclass.
        hit = self._compiled.get(id(key))
        if hit is not None and hit[0] is key:
            return hit[1]
        parts: list[str | RowPiece] = []
        static: list[str] = []
        for f in self.fields:
            if f.constant:
                static.append(self._constant_text[f.name])
            elif f.of_key is not None:
                value = f.of_key(key)
                if not (f.omit_empty and not value):
                    static.append(f'"{f.name}":{go_json(value)}')
            else:
                if static:
                    parts.append(",".join(static))
                    static = []
                assert f.of_row is not None
                parts.append(f.of_row)
        if static:
            parts.append(",".join(static))
        self._compiled[id(key)] = (key, parts)
        return parts

    def render(self, record: FlowRecord) -> str:
        pieces = [p if p.__class__ is str else p(record) for p in self.parts(record.key)]  # type: ignore[operator]
        return "{" + ",".join([p for p in pieces if p]) + "}"


def _dash(value: str | None) -> str:
    return value if value else "-"


def _labels(endpoint: LoggedEndpoint) -> dict | None:
    return None if endpoint.labels is None else {"labels": list(endpoint.labels)}


def _trace(hits: tuple[PolicyHit, ...] | None) -> list[str] | None:
    return [h.flow_log(i) for i, h in enumerate(hits)] if hits else None


def _dest_port(key: FlowKey) -> int | None:
    return None if key.proto in ("icmp", "1") else key.dest_port


def _endpoint_fields(prefix: str, get: Callable[[FlowKey], LoggedEndpoint], with_nat: bool) -> list[_Field]:
    fields = [
        _key(f"{prefix}_ip", lambda k: get(k).ip),
        _key(f"{prefix}_name", lambda k: _dash(get(k).name)),
        _key(f"{prefix}_name_aggr", lambda k: get(k).name_aggr),
        _key(f"{prefix}_namespace", lambda k: _dash(get(k).namespace)),
    ]
    if with_nat:
        fields.append(_row("nat_outgoing_ports", lambda r: list(r.nat_outgoing_ports) if r.nat_outgoing_ports else None))
        fields.append(_row("source_port", lambda r: r.source_port))
    else:
        fields.append(_key("dest_port", _dest_port))
    fields += [_key(f"{prefix}_type", lambda k: get(k).type), _key(f"{prefix}_labels", lambda k: _labels(get(k)))]
    return fields


def _service_fields() -> list[_Field]:
    return [
        _key("dest_service_namespace", lambda k: _dash(k.service.namespace if k.service else None)),
        _key("dest_service_name", lambda k: _dash(k.service.name if k.service else None)),
        _key(
            "dest_service_port",
            lambda k: _dash(k.service.port_name if k.service and not k.aggregated_service_port else None),
        ),
        _key("dest_service_port_num", lambda k: k.service.port if k.service else None),
        _key("dest_domains", lambda k: list(k.dest_domains) if k.dest_domains else None),
        _key("proto", lambda k: k.proto),
        _key("action", lambda k: k.action),
        _key("reporter", lambda k: k.reporter),
    ]


_PROCESS_NOT_COLLECTED = [
    _const("process_name", "-"),
    _const("num_process_names", 0),
    _const("process_id", "-"),
    _const("num_process_ids", 0),
    _const("process_args", ["-"]),
    _const("num_process_args", 0),
    _const("original_source_ips", None),
    _const("num_original_source_ips", 0),
    *[_const(name, 0) for name in TCP_STATS],
]


def _felix_policies(k: FlowKey) -> dict:
    policies: dict[str, Any] = {}
    if k.all_policies is not None:
        policies["all_policies"] = _trace(k.all_policies)
    policies.update(enforced_policies=_trace(k.enforced), pending_policies=_trace(k.pending), transit_policies=None)
    return policies


def _linseed_policies(k: FlowKey) -> dict:
    return {
        "all_policies": _trace(k.all_policies),
        "enforced_policies": _trace(k.enforced),
        "pending_policies": _trace(k.pending),
        "transit_policies": None,
    }


_source = (lambda k: k.source)  # noqa: E731
_dest = (lambda k: k.dest)  # noqa: E731

# felix's JSONOutput struct order (Enterprise felix/collector/flowlog/json_serializer.go, 2026).
FELIX_FIELDS: list[_Field] = [
    _row_int("start_time", "start_time"),
    _row_int("end_time", "end_time"),
    *_endpoint_fields("source", _source, with_nat=True),
    *_endpoint_fields("dest", _dest, with_nat=False),
    *_service_fields(),
    _key("policies", _felix_policies),
    _row_int("bytes_in", "bytes_in"),
    _row_int("bytes_out", "bytes_out"),
    _row_int("num_flows", "num_flows"),
    _row_int("num_flows_started", "num_flows_started"),
    _row_int("num_flows_completed", "num_flows_completed"),
    _row_int("packets_in", "packets_in"),
    _row_int("packets_out", "packets_out"),
    _const("transit_bytes_in", 0),
    _const("transit_bytes_out", 0),
    _const("transit_packets_in", 0),
    _const("transit_packets_out", 0),
    _const("http_requests_allowed_in", 0),
    _const("http_requests_denied_in", 0),
    *_PROCESS_NOT_COLLECTED,
]


def _generated_time(r: FlowRecord) -> str:
    # Linseed stamps ingestion time: some seconds after felix flushed the window (fluentd batching).
    jitter = zlib.crc32(f"{r.key.host}/{r.end_time}".encode())
    return rfc3339(r.end_time + 12 + jitter % 40, (jitter * 7919) % 1_000_000_000)


def _linseed_fields(cluster: str) -> list[_Field]:
    # Linseed's v1.FlowLog struct order: what it writes to Elasticsearch, so what `_source` holds.
    return [
        _row_int("start_time", "start_time"),
        _row_int("end_time", "end_time"),
        *_endpoint_fields("source", _source, with_nat=True),
        *_endpoint_fields("dest", _dest, with_nat=False),
        *_service_fields(),
        _key("policies", _linseed_policies),
        _row_int("bytes_in", "bytes_in"),
        _row_int("bytes_out", "bytes_out"),
        _const("transit_bytes_in", 0),
        _const("transit_bytes_out", 0),
        _row_int("num_flows", "num_flows"),
        _row_int("num_flows_started", "num_flows_started"),
        _row_int("num_flows_completed", "num_flows_completed"),
        _row_int("packets_in", "packets_in"),
        _row_int("packets_out", "packets_out"),
        _const("transit_packets_in", 0),
        _const("transit_packets_out", 0),
        _const("http_requests_allowed_in", 0),
        _const("http_requests_denied_in", 0),
        *_PROCESS_NOT_COLLECTED,
        _key("host", lambda k: k.host),
        _row("@timestamp", lambda r: r.end_time * 1000),
        _const("cluster", cluster),
        _row("generated_time", _generated_time),
    ]


def _goldmane_key(k: FlowKey) -> dict:
    src, dst = k.source, k.dest
    key = {
        "source_name": src.name_aggr,
        "source_namespace": _dash(src.namespace),
        "source_type": GOLDMANE_ENDPOINT_TYPES[src.type],
        "dest_name": dst.name_aggr,
        "dest_namespace": _dash(dst.namespace),
        "dest_type": GOLDMANE_ENDPOINT_TYPES[dst.type],
        "dest_port": k.dest_port or 0,
        "dest_service_name": _dash(k.service.name if k.service else None),
        "dest_service_namespace": _dash(k.service.namespace if k.service else None),
        "dest_service_port_name": _dash(k.service.port_name if k.service else None),
        "dest_service_port": k.service.port if k.service else 0,
        "proto": k.proto,
        "reporter": GOLDMANE_REPORTERS[k.reporter][0],
        "action": GOLDMANE_ACTIONS[k.action][0],
        "policies": _omit_empty_values(
            {
                "enforced_policies": [h.goldmane(i) for i, h in enumerate(k.enforced)],
                "pending_policies": [h.goldmane(i) for i, h in enumerate(k.pending)],
            }
        ),
    }
    return _omit_empty_values(key)


def _omit_empty_values(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if value or value is False}


def _goldmane_labels(endpoint: LoggedEndpoint) -> list[str] | None:
    return list(endpoint.labels) if endpoint.labels else None


# Goldmane's generated proto.Flow struct, as Go's encoding/json writes it (`omitempty` on every field).
GOLDMANE_FIELDS: list[_Field] = [
    _key("Key", _goldmane_key),
    _row_int("start_time", "start_time", omit_zero=True),
    _row_int("end_time", "end_time", omit_zero=True),
    _key("source_labels", lambda k: _goldmane_labels(k.source), omit_empty=True),
    _key("dest_labels", lambda k: _goldmane_labels(k.dest), omit_empty=True),
    _row_int("packets_in", "packets_in", omit_zero=True),
    _row_int("packets_out", "packets_out", omit_zero=True),
    _row_int("bytes_in", "bytes_in", omit_zero=True),
    _row_int("bytes_out", "bytes_out", omit_zero=True),
    _row_int("num_connections_started", "num_flows_started", omit_zero=True),
    _row_int("num_connections_completed", "num_flows_completed", omit_zero=True),
    _row_int("num_connections_live", "num_flows", omit_zero=True),
]


_WHISKER_NETS = {"pub": "PUBLIC NETWORK", "pvt": "PRIVATE NETWORK"}


def _whisker_name(endpoint: LoggedEndpoint) -> str:
    return _WHISKER_NETS.get(endpoint.name_aggr, endpoint.name_aggr) if endpoint.type == "net" else endpoint.name_aggr


# whisker-backend's FlowResponse (whisker-backend/pkg/apis/v1/flows.go): every key always present.
WHISKER_FIELDS: list[_Field] = [
    _row("start_time", lambda r: rfc3339(r.start_time)),
    _row("end_time", lambda r: rfc3339(r.end_time)),
    _key("action", lambda k: GOLDMANE_ACTIONS[k.action][1]),
    _key("source_name", lambda k: _whisker_name(k.source)),
    _key("source_namespace", lambda k: _dash(k.source.namespace)),
    _key("source_labels", lambda k: " | ".join(k.source.labels or ())),
    _key("dest_name", lambda k: _whisker_name(k.dest)),
    _key("dest_namespace", lambda k: _dash(k.dest.namespace)),
    _key("dest_labels", lambda k: " | ".join(k.dest.labels or ())),
    _key("protocol", lambda k: k.proto),
    _key("dest_port", lambda k: k.dest_port or 0),
    _key("reporter", lambda k: GOLDMANE_REPORTERS[k.reporter][1]),
    _key(
        "policies",
        lambda k: {
            "enforced": [h.whisker(i) for i, h in enumerate(k.enforced)] or None,
            "pending": [h.whisker(i) for i, h in enumerate(k.pending)] or None,
        },
    ),
    _row_int("packets_in", "packets_in"),
    _row_int("packets_out", "packets_out"),
    _row_int("bytes_in", "bytes_in"),
    _row_int("bytes_out", "bytes_out"),
]


def layout(fmt: str, cluster: str = "cluster") -> _Layout:
    """The record layout of a format: felix, elastic, goldmane or whisker."""
    if fmt == "felix":
        return _Layout(FELIX_FIELDS)
    if fmt == "elastic":
        return _Layout(_linseed_fields(cluster))
    if fmt == "goldmane":
        return _Layout(GOLDMANE_FIELDS)
    if fmt == "whisker":
        return _Layout(WHISKER_FIELDS)
    raise UsageError(f"unknown flow-log format {fmt!r}: use one of {', '.join(FORMATS)}")


# --- files ----------------------------------------------------------------------------------------------------


def open_compressed(path: Path) -> IO[bytes]:
    """A binary writer for `path`: gzip for `.gz`, zstd for `.zst`, plain otherwise; byte-for-byte reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = open(path, "wb")  # noqa: SIM115 - ownership passes to the returned stream
    if path.suffix == ".gz":
        # mtime 0 and no file name in the header: the same input gives the same bytes.
        return gzip.GzipFile(filename="", mode="wb", fileobj=_Closing(raw), mtime=0, compresslevel=6)
    if path.suffix == ".zst":
        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=True)
    return raw


class _Closing(io.RawIOBase):
    """Lets GzipFile close the file it writes to (GzipFile leaves a passed-in fileobj open)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        return self.inner.write(b)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        if not self.closed:
            self.inner.close()
        super().close()


def rotated_name(base: str, rotated_at: float, reason: str = "size", compression: str = ".zst") -> str:
    """felix's backup name for a rotated `flows.log` (timberjack: `flows-<UTC time>-<reason>.log.zst`)."""
    stem, _, ext = base.rpartition(".")
    seconds = int(rotated_at)
    millis = int(round((rotated_at - seconds) * 1000)) % 1000
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H-%M-%S")
    return f"{stem}-{stamp}.{millis:03d}-{reason}.{ext}{compression}"


class FlowLogWriter:
    """Writes records in one format to one file; the Whisker list is one JSON document, the others one a line."""

    def __init__(self, path: Path, fmt: str, cluster: str = "cluster", record_layout: _Layout | None = None) -> None:
        self.path = path
        self.format = fmt
        self._layout = record_layout or layout(fmt, cluster)
        self._out = open_compressed(path)
        self._buffer: list[str] = []
        self._buffered = 0
        self.records = 0
        self.bytes_written = 0
        if fmt == "whisker":
            self._emit('{"total":{"totalPages":1},"items":[')

    def write(self, record: FlowRecord) -> None:
        text = self._layout.render(record)
        if self.format == "whisker":
            text = ("," if self.records else "") + text
        else:
            text += "\n"
        self.records += 1
        self._emit(text)

    @property
    def size(self) -> int:
        """Bytes written so far, before compression."""
        return self.bytes_written + self._buffered

    def write_all(self, records: Iterable[FlowRecord]) -> None:
        for record in records:
            self.write(record)

    def _emit(self, text: str) -> None:
        self._buffer.append(text)
        self._buffered += len(text)
        if self._buffered >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        data = "".join(self._buffer).encode()
        self._out.write(data)
        self.bytes_written += len(data)
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> None:
        if self.format == "whisker":
            self._emit("]}\n")
        self._flush()
        self._out.close()

    def __enter__(self) -> FlowLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
