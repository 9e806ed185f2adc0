"""Synthetic flows straight into Arrow: RecordBatches in the canonical schema, for stores of tens of millions of rows.

Per-key columns are built once (one row per key) and gathered with `take`; per-record columns come from numpy.
Memory is bounded by the batch size and the number of keys, never by the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from flowstage.options import SYNTH_BATCH_ROWS
from flowstage.schema import FLOW_SCHEMA, UTC_TIMESTAMP
from flowstage.synth.keys import DEFAULT_ALLOWED_LEVEL, DEFAULT_DENIED_LEVEL, KeyTable, key_table
from flowstage.synth.records import FlowKey, PolicyHit
from flowstage.synth.windows import DEFAULT_SKEW, RowBlock, row_blocks

DEFAULT_BATCH_ROWS = SYNTH_BATCH_ROWS
SYNTH_FORMAT = "synth"


def _label_pairs(labels: tuple[str, ...] | None) -> list[tuple[str, str]] | None:
    if labels is None:
        return None
    return [tuple(item.split("=", 1)) for item in labels]  # type: ignore[misc]


def _hits(hits: tuple[PolicyHit, ...] | None) -> list[dict] | None:
    if hits is None:
        return None
    return [
        {
            "position": i,
            "tier": h.tier,
            "kind": h.kind,
            "namespace": h.namespace,
            "name": h.name,
            "staged": h.staged,
            "action": h.action,
            "rule_index": h.rule_index,
            "end_of_tier": h.end_of_tier,
            "raw": h.flow_log(i),
        }
        for i, h in enumerate(hits)
    ]


def _identity(value: Any) -> Any:
    return value


def _encoded(values: list[Any], type_: pa.DataType, convert: Callable[[Any], Any] = _identity, by_identity: bool = False) -> pa.Array:
    # Keys share few distinct label sets, traces and names: convert each distinct value once, then gather. Label
    # tuples are shared objects (one per pod group), so their identity is a cheap stand-in for their value.
    codes: dict[Any, int] = {}
    first: list[Any] = []
    index = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        code = codes.get(id(v) if by_identity else v)
        if code is None:
            code = codes[id(v) if by_identity else v] = len(first)
            first.append(v)
        index[i] = code
    distinct = pa.array([convert(v) for v in first], type=type_)
    return distinct.take(pa.array(index))


def key_columns(keys: list[FlowKey], nat_ports: list[tuple[int, ...] | None]) -> dict[str, pa.Array]:
    """One Arrow array per key-level column of the canonical schema, one element per key."""
    types = {f.name: f.type for f in FLOW_SCHEMA}
    columns: dict[str, pa.Array] = {}

    def column(name: str, values: list[Any], convert: Callable[[Any], Any] = _identity, by_identity: bool = False) -> None:
        columns[name] = _encoded(values, types[name], convert, by_identity)

    for prefix, side in (("source", [k.source for k in keys]), ("dest", [k.dest for k in keys])):
        column(f"{prefix}_type", [e.type for e in side])
        column(f"{prefix}_namespace", [e.namespace for e in side])
        column(f"{prefix}_name", [e.name for e in side])
        column(f"{prefix}_name_aggr", [e.name_aggr for e in side])
        column(f"{prefix}_ip", [e.ip for e in side])
        column(f"{prefix}_labels", [e.labels for e in side], _label_pairs, by_identity=True)
    services = [k.service for k in keys]
    column("dest_port", [k.dest_port for k in keys])
    column("dest_service_namespace", [s.namespace if s else None for s in services])
    column("dest_service_name", [s.name if s else None for s in services])
    column("dest_service_port", [s.port_name if s and not k.aggregated_service_port else None for s, k in zip(services, keys, strict=True)])
    column("dest_service_port_num", [s.port if s else None for s in services])
    column("dest_domains", [k.dest_domains for k in keys], lambda d: list(d) if d else None)
    column("proto", [k.proto for k in keys])
    column("proto_num", [k.proto_num for k in keys])
    column("action", [k.action for k in keys])
    column("reporter", [k.reporter for k in keys])
    column("enforced_policies", [k.enforced for k in keys], _hits)
    column("pending_policies", [k.pending for k in keys], _hits)
    column("all_policies", [k.all_policies for k in keys], _hits)
    column("nat_outgoing_ports", nat_ports, lambda n: list(n) if n else None)
    column("host", [k.host or None for k in keys])
    return columns


_KEY_COLUMNS = (
    *(f"{p}_{c}" for p in ("source", "dest") for c in ("type", "namespace", "name", "name_aggr", "ip", "labels")),
    "dest_port", "dest_service_namespace", "dest_service_name", "dest_service_port", "dest_service_port_num",
    "dest_domains", "proto", "proto_num", "action", "reporter", "enforced_policies", "pending_policies",
    "all_policies", "nat_outgoing_ports", "host",
)  # fmt: skip
_ROW_COLUMNS = ("bytes_in", "bytes_out", "packets_in", "packets_out", "num_flows", "num_flows_started", "num_flows_completed")
_ZERO_COLUMNS = (
    "transit_bytes_in", "transit_bytes_out", "transit_packets_in", "transit_packets_out", "http_requests_allowed_in",
    "http_requests_denied_in", "num_process_names", "num_process_ids", "num_process_args", "num_original_source_ips",
    "tcp_mean_send_congestion_window", "tcp_min_send_congestion_window", "tcp_mean_smooth_rtt", "tcp_max_smooth_rtt",
    "tcp_mean_min_rtt", "tcp_max_min_rtt", "tcp_mean_mss", "tcp_min_mss", "tcp_total_retransmissions",
    "tcp_lost_packets", "tcp_unrecovered_to",
)  # fmt: skip


def flow_batches(
    rows: int,
    keys: int,
    seed: int = 1,
    namespaces: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    allowed_level: int = DEFAULT_ALLOWED_LEVEL,
    denied_level: int = DEFAULT_DENIED_LEVEL,
    start: int = 1_772_323_200,
    table: KeyTable | None = None,
    skew: float = DEFAULT_SKEW,
) -> Iterator[pa.RecordBatch]:
    """`rows` synthetic flow records over exactly `keys` distinct replay keys, as RecordBatches in FLOW_SCHEMA.

    Rows are in window order (5-minute windows from `start`); each batch holds at most `batch_rows` rows. Rows
    per key follow a Zipf law of exponent `skew` (flowstage.synth.windows).
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be positive")
    table = table or key_table(keys, seed, namespaces, allowed_level, denied_level)
    per_key = key_columns(table.keys, table.nat_ports)
    source_file = f"synth:seed={seed},keys={len(table.keys)},rows={rows}"
    written = 0
    for block in row_blocks(table, rows, seed, start, skew=skew):
        for lo in range(0, len(block), batch_rows):
            hi = min(len(block), lo + batch_rows)
            yield _batch(block, lo, hi, per_key, source_file, written)
            written += hi - lo


def _batch(block: RowBlock, lo: int, hi: int, per_key: dict[str, pa.Array], source_file: str, first_line: int) -> pa.RecordBatch:
    n = hi - lo
    take = pa.array(block.key[lo:hi])
    arrays: dict[str, pa.Array] = {name: array.take(take) for name, array in per_key.items()}
    arrays["start_time"] = pa.array(block.start[lo:hi] * 1_000_000, type=pa.int64()).cast(UTC_TIMESTAMP)
    arrays["end_time"] = pa.array(block.end[lo:hi] * 1_000_000, type=pa.int64()).cast(UTC_TIMESTAMP)
    for name in _ROW_COLUMNS:
        arrays[name] = pa.array(getattr(block, name)[lo:hi], type=pa.int64())
    zeros = pa.array(np.zeros(n, dtype=np.int64))
    for name in _ZERO_COLUMNS:
        arrays[name] = zeros
    arrays["source_port"] = pa.nulls(n, pa.int32())
    arrays["format"] = pa.repeat(pa.scalar(SYNTH_FORMAT), n)
    arrays["source_file"] = pa.repeat(pa.scalar(source_file), n)
    arrays["source_line"] = pa.array(np.arange(first_line + 1, first_line + n + 1, dtype=np.int64))
    columns = [arrays[f.name] if f.name in arrays else pa.nulls(n, f.type) for f in FLOW_SCHEMA]
    return pa.RecordBatch.from_arrays(columns, schema=FLOW_SCHEMA)

