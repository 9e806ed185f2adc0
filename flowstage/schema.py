"""The canonical flow schema: every column of the `flows` view, its Arrow type and what it means.

Declared once here; readers, the store, SQL files, docs and tests take names and types from this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
LABELS = pa.map_(pa.string(), pa.string())

# One hit of a policy trace (`enforced_policies`, `pending_policies`, …), decoded from either policy-string
# grammar (legacy `i|tier|ns/tier.name|action|rule` or 3.32+ `i|tier|kind:ns/name|action|rule`) or from a
# Goldmane PolicyHit object.
POLICY_HIT = pa.struct(
    [
        pa.field("position", pa.int32()),  # policyIndex: order of the hit in the trace (lists are unordered sets)
        pa.field("tier", pa.string()),  # tier name; `__PROFILE__` for profiles
        pa.field("kind", pa.string()),  # short kind: gnp np knp sgnp snp sknp kcnp anp banp pro eot
        pa.field("namespace", pa.string()),  # NULL for cluster-scoped kinds
        pa.field("name", pa.string()),  # resource name as Calico stores it (no tier / kind prefix)
        pa.field("staged", pa.bool_()),  # the hit came from a staged policy
        pa.field("action", pa.string()),  # allow / deny / pass
        pa.field("rule_index", pa.int32()),  # 0-based rule; -1 end of tier; -2 unknown; NULL when not logged
        pa.field("end_of_tier", pa.bool_()),  # rule_index = -1: the tier's default action, `name` is the trigger
        pa.field("raw", pa.string()),  # the string as logged (NULL for Goldmane objects)
    ]
)
POLICY_HITS = pa.list_(POLICY_HIT)


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.type)


def _endpoint(side: str, prefix: str) -> list[Column]:
    who = "source (client)" if side == "source" else "destination (server)"
    return [
        Column(f"{prefix}_type", pa.string(), f"Kind of the {who} endpoint: wep (pod), hep (host endpoint), ns (network set), net (anything else). "
               "Whisker logs none; ingest infers it where certain: net for its network names, wep or hep (namespaced or "
               "not) for the reporting side, wep for a namespaced name ending in `*`; NULL otherwise."),
        Column(f"{prefix}_namespace", pa.string(), f"Namespace of the {who}; NULL when cluster-scoped or not logged."),
        Column(f"{prefix}_name", pa.string(), f"Exact name of the {who} (pod, host endpoint, network set); NULL when aggregated away."),
        Column(f"{prefix}_name_aggr", pa.string(), f"Aggregated identity of the {who}: pod prefix such as `frontend-755cdc7957-*`, node name for hep, `pub` / `pvt` for net."),
        Column(f"{prefix}_ip", pa.string(), f"IP address of the {who}; NULL when aggregated away."),
        Column(f"{prefix}_port", pa.int32(), f"Port of the {who}; NULL when aggregated away or for ICMP." + (" Post-DNAT." if side == "dest" else "")),
        Column(f"{prefix}_labels", LABELS, f"Labels of the {who} as logged (for aggregated rows: the labels all contributing endpoints share); NULL when labels were not logged."),
    ]


COLUMNS: tuple[Column, ...] = (
    Column("start_time", UTC_TIMESTAMP, "Start of the aggregation window (UTC)."),
    Column("end_time", UTC_TIMESTAMP, "End of the aggregation window (UTC)."),
    *_endpoint("source", "source"),
    *_endpoint("dest", "dest"),
    Column("dest_service_namespace", pa.string(), "Namespace of the Kubernetes Service the client addressed; NULL if none."),
    Column("dest_service_name", pa.string(), "Name of that Service; NULL if none."),
    Column("dest_service_port", pa.string(), "Service port *name*; NULL if unnamed or none."),
    Column("dest_service_port_num", pa.int32(), "Service (pre-DNAT) port number; NULL if unknown."),
    Column("dest_domains", pa.list_(pa.string()), "DNS names seen for the destination IP."),
    Column("proto", pa.string(), "L4 protocol: lower-case name (tcp, udp, icmp, icmp6, sctp, ipip, esp) or the number as text."),
    Column("proto_num", pa.int32(), "L4 protocol number (6 for tcp, 17 for udp, …)."),
    Column("action", pa.string(), "Verdict the dataplane logged: allow or deny."),
    Column("reporter", pa.string(), "Where the row was measured: src (egress at the client), dst (ingress at the server), fwd, src,fwd, dst,fwd."),
    Column("bytes_in", pa.int64(), "Bytes received by the reporting endpoint in the window."),
    Column("bytes_out", pa.int64(), "Bytes sent by the reporting endpoint in the window."),
    Column("packets_in", pa.int64(), "Packets received by the reporting endpoint in the window."),
    Column("packets_out", pa.int64(), "Packets sent by the reporting endpoint in the window."),
    Column("num_flows", pa.int64(), "Connections active at any point in the window."),
    Column("num_flows_started", pa.int64(), "Connections that started in the window."),
    Column("num_flows_completed", pa.int64(), "Connections that ended in the window."),
    Column("enforced_policies", POLICY_HITS, "Trace of enforced policies that decided the logged action (staged hits removed), sorted by position."),
    Column("pending_policies", POLICY_HITS, "Trace of Calico's pending evaluation: staged policies evaluated as if enforced, sorted by position."),
    Column("pending_action", pa.string(), "What the logged pending trace concluded: the action of the last hit of `pending_policies` (allow, deny or pass; `unknown` when that hit could not be read); NULL when the row carries no pending trace. The store derives it from `pending_policies`."),
    Column("all_policies", POLICY_HITS, "Legacy mixed trace (enforced and staged hits) from logs written before enforced/pending existed."),
    Column("transit_policies", POLICY_HITS, "Trace of host-endpoint policies for forwarded traffic."),
    Column("transit_bytes_in", pa.int64(), "Bytes of forwarded traffic received (host endpoints)."),
    Column("transit_bytes_out", pa.int64(), "Bytes of forwarded traffic sent (host endpoints)."),
    Column("transit_packets_in", pa.int64(), "Packets of forwarded traffic received (host endpoints)."),
    Column("transit_packets_out", pa.int64(), "Packets of forwarded traffic sent (host endpoints)."),
    Column("nat_outgoing_ports", pa.list_(pa.int32()), "SNAT source ports seen."),
    Column("http_requests_allowed_in", pa.int64(), "L7 requests allowed (application layer policy)."),
    Column("http_requests_denied_in", pa.int64(), "L7 requests denied (application layer policy)."),
    Column("process_name", pa.string(), "Process name or path; `*` when several; NULL when not collected."),
    Column("process_id", pa.string(), "Process id as text; `*` when several; NULL when not collected."),
    Column("process_args", pa.list_(pa.string()), "Process arguments; NULL when not collected."),
    Column("num_process_names", pa.int64(), "Distinct process names folded into the row."),
    Column("num_process_ids", pa.int64(), "Distinct process ids folded into the row."),
    Column("num_process_args", pa.int64(), "Distinct argument lists folded into the row."),
    Column("original_source_ips", pa.list_(pa.string()), "Client IPs recovered from ingress headers."),
    Column("num_original_source_ips", pa.int64(), "Number of original source IPs (may exceed the list)."),
    Column("tcp_mean_send_congestion_window", pa.int64(), "Mean TCP send congestion window (0 when TCP stats are off)."),
    Column("tcp_min_send_congestion_window", pa.int64(), "Minimum TCP send congestion window."),
    Column("tcp_mean_smooth_rtt", pa.int64(), "Mean smoothed RTT in microseconds."),
    Column("tcp_max_smooth_rtt", pa.int64(), "Maximum smoothed RTT in microseconds."),
    Column("tcp_mean_min_rtt", pa.int64(), "Mean minimum RTT in microseconds."),
    Column("tcp_max_min_rtt", pa.int64(), "Maximum minimum RTT in microseconds."),
    Column("tcp_mean_mss", pa.int64(), "Mean TCP MSS."),
    Column("tcp_min_mss", pa.int64(), "Minimum TCP MSS."),
    Column("tcp_total_retransmissions", pa.int64(), "TCP retransmissions."),
    Column("tcp_lost_packets", pa.int64(), "TCP lost packets."),
    Column("tcp_unrecovered_to", pa.int64(), "TCP unrecovered timeouts."),
    Column("host", pa.string(), "Node that wrote the record (added by fluentd); NULL when absent."),
    Column("cluster", pa.string(), "Cluster id (added by Linseed); NULL when absent."),
    Column("tenant", pa.string(), "Tenant id (multi-tenant Linseed); NULL when absent."),
    Column("generated_time", UTC_TIMESTAMP, "Ingestion time recorded by Linseed; NULL when absent."),
    Column("record_id", pa.string(), "Id the exporting system gave the record (Elasticsearch _id, Goldmane flow id); NULL when absent."),
    Column("format", pa.string(), "Reader that produced the row: felix, elastic, linseed, s3, goldmane, whisker."),
    Column("source_file", pa.string(), "Absolute path of the file the row was read from (`<stdin>` for standard input)."),
    Column("source_line", pa.int64(), "1-based line of the record in that file (record number for formats that are not one record a line)."),
)

FLOW_SCHEMA: pa.Schema = pa.schema([c.field for c in COLUMNS])
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
COLUMN_DOCS: dict[str, str] = {c.name: c.doc for c in COLUMNS}

# Columns of the `quarantine` view: records that could not be read, kept with the reason.
QUARANTINE_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("format", pa.string()),
        pa.field("reason", pa.string()),  # short code, e.g. invalid_json, truncated_last_line, wrong_type
        pa.field("detail", pa.string()),  # human sentence: what is wrong and where (field name)
        pa.field("raw", pa.string()),  # the record's text as found (capped), for the user to fix it
        pa.field("ingested_at", UTC_TIMESTAMP),
    ]
)


# Columns the store computes from others as it writes a part (writers may leave them NULL or out), each with
# the SQL that computes it over parts written before the store kept it.
DERIVED_COLUMNS: dict[str, str] = {
    "pending_action": "CASE WHEN array_length(pending_policies) > 0 "
                      "THEN COALESCE(pending_policies[array_length(pending_policies)].action, 'unknown') END",
}


def with_derived_columns(table: pa.Table) -> pa.Table:
    """`table` (in FLOW_SCHEMA) with its derived columns computed: what DERIVED_COLUMNS' SQL gives, in Arrow."""
    index = FLOW_SCHEMA.get_field_index("pending_action")
    chunks = [_last_action(chunk) for chunk in table.column("pending_policies").chunks]
    return table.set_column(index, FLOW_SCHEMA.field(index), pa.chunked_array(chunks, pa.string()))


def _last_action(traces: pa.ListArray) -> pa.Array:
    """Per row: the action of the trace's last hit (`unknown` if NULL); NULL for a NULL or empty trace."""
    # Buffers and numpy views (flowstage.arrays): no Python value converted, so pyarrow leaves pandas unloaded.
    import numpy as np
    import pyarrow.compute as pc

    from flowstage import arrays

    n = len(traces)
    offsets = arrays.numbers(traces.offsets)
    present = offsets[1:] > offsets[:-1]
    if traces.null_count:
        present &= arrays.flags(traces.is_valid())
    # offsets index the unsliced child array (`values`); a row's last hit sits just before the next row's start
    last = np.where(present, offsets[1:] - 1, 0)
    actions = traces.values.field("action")
    picked = actions.take(arrays.int64s(last)) if len(actions) else pa.nulls(n, pa.string())
    return pc.if_else(arrays.mask(present), pc.coalesce(picked, arrays.string_scalar("unknown")),
                      pa.nulls(1, pa.string())[0])


def duckdb_type(t: pa.DataType) -> str:
    """DuckDB SQL spelling of an Arrow type used in this schema."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_map(t):
        return f"MAP({duckdb_type(t.key_type)}, {duckdb_type(t.item_type)})"
    if pa.types.is_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_struct(t):
        inner = ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in t)
        return f"STRUCT({inner})"
    raise TypeError(f"no DuckDB spelling for Arrow type {t}")
