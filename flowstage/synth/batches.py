"""Synthetic flows straight into Arrow: RecordBatches in the canonical schema, for stores of tens of millions of rows.

Per-key columns are built once (one row per key) and gathered with `take`; per-record columns come from numpy.
Memory is bounded by the batch size and the number of keys, never by the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from flowstage.schema import FLOW_SCHEMA, UTC_TIMESTAMP
from flowstage.synth.keys import DEFAULT_ALLOWED_LEVEL, DEFAULT_DENIED_LEVEL, KeyTable, key_table
from flowstage.synth.records import FlowKey, LoggedEndpoint, PolicyHit
from flowstage.synth.windows import RowBlock, row_blocks

DEFAULT_BATCH_ROWS = 262_144
SYNTH_FORMAT = "synth"


def _labels(endpoint: LoggedEndpoint) -> list[tuple[str, str]] | None:
    if endpoint.labels is None:
        return None
    return [tuple(item.split("=", 1)) for item in endpoint.labels]  # type: ignore[misc]


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


def key_columns(keys: list[FlowKey], nat_ports: list[tuple[int, ...] | None]) -> dict[str, pa.Array]:
    """One Arrow array per key-level column of the canonical schema, one element per key."""
    types = {f.name: f.type for f in FLOW_SCHEMA}
    columns: dict[str, list] = {name: [] for name in _KEY_COLUMNS}
    for k, nat in zip(keys, nat_ports, strict=True):
        for prefix, e in (("source", k.source), ("dest", k.dest)):
            columns[f"{prefix}_type"].append(e.type)
            columns[f"{prefix}_namespace"].append(e.namespace)
            columns[f"{prefix}_name"].append(e.name)
            columns[f"{prefix}_name_aggr"].append(e.name_aggr)
            columns[f"{prefix}_ip"].append(e.ip)
            columns[f"{prefix}_labels"].append(_labels(e))
        columns["dest_port"].append(k.dest_port)
        svc = k.service
        columns["dest_service_namespace"].append(svc.namespace if svc else None)
        columns["dest_service_name"].append(svc.name if svc else None)
        columns["dest_service_port"].append(svc.port_name if svc and not k.aggregated_service_port else None)
        columns["dest_service_port_num"].append(svc.port if svc else None)
        columns["dest_domains"].append(list(k.dest_domains) if k.dest_domains else None)
        columns["proto"].append(k.proto)
        columns["proto_num"].append(k.proto_num)
        columns["action"].append(k.action)
        columns["reporter"].append(k.reporter)
        columns["enforced_policies"].append(_hits(k.enforced))
        columns["pending_policies"].append(_hits(k.pending))
        columns["all_policies"].append(_hits(k.all_policies))
        columns["nat_outgoing_ports"].append(list(nat) if nat else None)
        columns["host"].append(k.host or None)
    return {name: pa.array(values, type=types[name]) for name, values in columns.items()}


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
) -> Iterator[pa.RecordBatch]:
    """`rows` synthetic flow records over exactly `keys` distinct replay keys, as RecordBatches in FLOW_SCHEMA.

    Rows are in window order (5-minute windows from `start`); each batch holds at most `batch_rows` rows.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be positive")
    table = table or key_table(keys, seed, namespaces, allowed_level, denied_level)
    per_key = key_columns(table.keys, table.nat_ports)
    source_file = f"synth:seed={seed},keys={len(table.keys)},rows={rows}"
    written = 0
    for block in row_blocks(table, rows, seed, start):
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

