"""Record families and their mapping to the canonical schema, written as DuckDB SQL over `json_transform`.

Enterprise (felix, elastic, linseed, s3 share one record shape), Goldmane (three JSON dialects), Whisker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# SQL helpers every family uses; `r` is the record parsed by json_transform with the family's spec.
MACROS = r"""
CREATE OR REPLACE TEMP MACRO fs_text(x) AS CASE WHEN x IN ('-', '') THEN NULL ELSE x END;
CREATE OR REPLACE TEMP MACRO fs_int(x) AS TRY_CAST(x AS BIGINT);
CREATE OR REPLACE TEMP MACRO fs_port(x) AS CASE WHEN TRY_CAST(x AS INTEGER) = 0 THEN NULL ELSE TRY_CAST(x AS INTEGER) END;
CREATE OR REPLACE TEMP MACRO fs_epoch(x) AS TRY(to_timestamp(TRY_CAST(x AS BIGINT)));
CREATE OR REPLACE TEMP MACRO fs_time(x) AS CASE
    WHEN TRY_CAST(x AS BIGINT) IS NOT NULL THEN TRY(to_timestamp(TRY_CAST(x AS BIGINT)))
    ELSE TRY_CAST(x AS TIMESTAMPTZ) END;
CREATE OR REPLACE TEMP MACRO fs_proto(p) AS CASE lower(p)
    WHEN '1' THEN 'icmp' WHEN '4' THEN 'ipip' WHEN '6' THEN 'tcp' WHEN '17' THEN 'udp' WHEN '50' THEN 'esp'
    WHEN '58' THEN 'icmp6' WHEN 'icmpv6' THEN 'icmp6' WHEN '132' THEN 'sctp' WHEN '' THEN NULL ELSE lower(p) END;
CREATE OR REPLACE TEMP MACRO fs_proto_num(p) AS CASE fs_proto(p)
    WHEN 'icmp' THEN 1 WHEN 'ipip' THEN 4 WHEN 'tcp' THEN 6 WHEN 'udp' THEN 17 WHEN 'esp' THEN 50
    WHEN 'icmp6' THEN 58 WHEN 'sctp' THEN 132 ELSE TRY_CAST(p AS INTEGER) END;
CREATE OR REPLACE TEMP MACRO fs_action(a) AS CASE lower(a)
    WHEN '1' THEN 'allow' WHEN '2' THEN 'deny' WHEN '3' THEN 'pass'
    WHEN '0' THEN NULL WHEN 'actionunspecified' THEN NULL WHEN '' THEN NULL ELSE lower(a) END;
CREATE OR REPLACE TEMP MACRO fs_reporter(x) AS CASE replace(lower(x), ' ', '')
    WHEN '1' THEN 'src' WHEN '2' THEN 'dst' WHEN '0' THEN NULL WHEN 'reporterunspecified' THEN NULL WHEN '' THEN NULL
    ELSE replace(lower(x), ' ', '') END;
CREATE OR REPLACE TEMP MACRO fs_endpoint_type(x) AS CASE lower(x)
    WHEN '1' THEN 'wep' WHEN 'workloadendpoint' THEN 'wep' WHEN '2' THEN 'hep' WHEN 'hostendpoint' THEN 'hep'
    WHEN '3' THEN 'ns' WHEN 'networkset' THEN 'ns' WHEN '4' THEN 'net' WHEN 'network' THEN 'net'
    WHEN '0' THEN NULL WHEN 'endpointtypeunspecified' THEN NULL WHEN '-' THEN NULL WHEN '' THEN NULL ELSE lower(x) END;
CREATE OR REPLACE TEMP MACRO fs_whisker_name(x) AS CASE x
    WHEN 'PUBLIC NETWORK' THEN 'pub' WHEN 'PRIVATE NETWORK' THEN 'pvt' ELSE fs_text(x) END;
CREATE OR REPLACE TEMP MACRO fs_whisker_type(n, ns, reporting) AS CASE
    WHEN n IN ('PUBLIC NETWORK', 'PRIVATE NETWORK') THEN 'net'
    WHEN reporting THEN CASE WHEN fs_text(ns) IS NULL THEN 'hep' ELSE 'wep' END
    WHEN fs_text(ns) IS NOT NULL AND ends_with(n, '*') THEN 'wep' END;
CREATE OR REPLACE TEMP MACRO fs_args(l) AS CASE WHEN l = ['-'] THEN NULL ELSE l END;
"""


@dataclass(frozen=True)
class Family:
    """How one record shape maps to the canonical columns."""

    name: str
    spec: dict  # json_transform structure; scalar leaves are VARCHAR so wrong types stay visible
    columns: dict[str, str]  # canonical column → SQL over `r` (labels / policies come from lookups)
    numbers: dict[str, str]  # field as the user sees it → SQL text value that must read as an integer
    times: dict[str, str] = field(default_factory=dict)  # field → SQL text value that must read as a time
    ports: tuple[str, ...] = ()  # fields of `numbers` that must be a port, 0 to 65535
    texts: dict[str, str] = field(default_factory=dict)  # field → SQL text value that must not be an object or list
    identity: tuple[str, ...] = ()  # SQL values of which at least one is set in any flow record
    source_labels: str = "NULL"  # SQL giving the labels JSON text
    dest_labels: str = "NULL"
    policies: str = "NULL"  # SQL giving the policies JSON text

    @property
    def spec_json(self) -> str:
        return json.dumps(self.spec, separators=(",", ":"))

    def wrong_type_sql(self) -> str:
        """SQL naming the first field whose value has the wrong type, and what it should be: `field:expected`."""
        checks = [f"WHEN {sql} IS NOT NULL AND TRY_CAST({sql} AS BIGINT) IS NULL THEN '{name}:an integer'"
                  for name, sql in self.numbers.items()]
        checks += [f"WHEN {sql} IS NOT NULL AND fs_time({sql}) IS NULL THEN '{name}:a time'"
                   for name, sql in self.times.items()]
        checks += [f"WHEN TRY_CAST({self.numbers[name]} AS BIGINT) NOT BETWEEN 0 AND 65535 THEN '{name}:a port, 0 to 65535'"
                   for name in self.ports]
        # json_transform hands an object or list where text belongs over as its JSON text: `{…}` / `[…]`.
        checks += [f"WHEN (starts_with({sql}, '{{') OR starts_with({sql}, '[')) AND json_valid({sql}) THEN '{name}:text'"
                   for name, sql in self.texts.items()]
        return "CASE " + " ".join(checks) + " END" if checks else "NULL"

    def identity_sql(self) -> str:
        return f"coalesce({', '.join(self.identity)}) IS NOT NULL" if self.identity else "true"


# --- Enterprise / Calico Cloud: felix flows.log, Elasticsearch _source, Linseed items, S3 lines -------------

_ENTERPRISE_TEXT = [
    "source_ip", "source_name", "source_name_aggr", "source_namespace", "source_type",
    "dest_ip", "dest_name", "dest_name_aggr", "dest_namespace", "dest_type",
    "dest_service_namespace", "dest_service_name", "dest_service_port",
    "proto", "action", "reporter", "process_name", "process_id", "host", "cluster", "tenant", "generated_time", "id",
]
_ENTERPRISE_INTS = [
    "start_time", "end_time", "source_port", "dest_port", "dest_service_port_num", "@timestamp",
    "bytes_in", "bytes_out", "packets_in", "packets_out", "num_flows", "num_flows_started", "num_flows_completed",
    "transit_bytes_in", "transit_bytes_out", "transit_packets_in", "transit_packets_out",
    "http_requests_allowed_in", "http_requests_denied_in", "num_process_names", "num_process_ids",
    "num_process_args", "num_original_source_ips",
    "tcp_mean_send_congestion_window", "tcp_min_send_congestion_window", "tcp_mean_smooth_rtt",
    "tcp_max_smooth_rtt", "tcp_mean_min_rtt", "tcp_max_min_rtt", "tcp_mean_mss", "tcp_min_mss",
    "tcp_total_retransmissions", "tcp_lost_packets", "tcp_unrecovered_to",
]
# Text that decides a verdict: an object or list here is a wrong type, not a name.
_ENTERPRISE_KEY_TEXT = ["source_namespace", "dest_namespace", "source_name", "dest_name", "source_name_aggr",
                        "dest_name_aggr", "source_ip", "dest_ip", "source_type", "dest_type", "proto", "action",
                        "reporter", "dest_service_namespace", "dest_service_name", "dest_service_port"]
_ENTERPRISE_COUNTERS = [n for n in _ENTERPRISE_INTS if n.startswith(("bytes", "packets", "num_", "transit", "http", "tcp"))]
# Fields read as text and checked, so a wrong type quarantines the record instead of becoming NULL: the
# window, the ports and the traffic counters that reports rank by. Checking costs a cast per value, so the
# diagnostic counters (process, tcp, http, transit) are parsed leniently.
_ENTERPRISE_CHECKED = ["start_time", "end_time", "source_port", "dest_port", "dest_service_port_num", "@timestamp",
                       "bytes_in", "bytes_out", "packets_in", "packets_out", "num_flows", "num_flows_started",
                       "num_flows_completed"]


def _col(name: str) -> str:
    return f'r."{name}"'


ENTERPRISE = Family(
    name="enterprise",
    spec={
        **dict.fromkeys(_ENTERPRISE_TEXT, "VARCHAR"),
        **dict.fromkeys(_ENTERPRISE_INTS, "BIGINT"),
        **dict.fromkeys(_ENTERPRISE_CHECKED, "VARCHAR"),
        "source_labels": "JSON",
        "dest_labels": "JSON",
        "policies": "JSON",
        "nat_outgoing_ports": ["INTEGER"],
        "dest_domains": ["VARCHAR"],
        "process_args": ["VARCHAR"],
        "original_source_ips": ["VARCHAR"],
    },
    columns={
        "start_time": "fs_epoch(r.start_time)",
        # fluentd's @timestamp is end_time in milliseconds: it stands in when end_time is missing.
        "end_time": 'coalesce(fs_epoch(r.end_time), TRY(to_timestamp(fs_int(r."@timestamp") / 1000)))',
        **{f"{side}_{part}": f"fs_text(r.{side}_{part})" for side in ("source", "dest")
           for part in ("namespace", "name", "name_aggr", "ip")},
        "source_type": "fs_endpoint_type(r.source_type)",
        "dest_type": "fs_endpoint_type(r.dest_type)",
        "source_port": "fs_port(r.source_port)",
        "dest_port": "fs_port(r.dest_port)",
        "dest_service_namespace": "fs_text(r.dest_service_namespace)",
        "dest_service_name": "fs_text(r.dest_service_name)",
        "dest_service_port": "fs_text(r.dest_service_port)",
        "dest_service_port_num": "fs_port(r.dest_service_port_num)",
        "dest_domains": "r.dest_domains",
        "proto": "fs_proto(r.proto)",
        "proto_num": "fs_proto_num(r.proto)",
        "action": "fs_action(r.action)",
        "reporter": "fs_reporter(r.reporter)",
        **{n: f"fs_int({_col(n)})" for n in _ENTERPRISE_COUNTERS},
        "nat_outgoing_ports": "r.nat_outgoing_ports",
        "process_name": "fs_text(r.process_name)",
        "process_id": "fs_text(r.process_id)",
        "process_args": "fs_args(r.process_args)",
        "original_source_ips": "r.original_source_ips",
        "host": "fs_text(r.host)",
        "cluster": "fs_text(r.cluster)",
        "tenant": "fs_text(r.tenant)",
        "generated_time": "TRY_CAST(r.generated_time AS TIMESTAMPTZ)",
        "record_id": "fs_text(r.id)",
    },
    numbers={n: _col(n) for n in _ENTERPRISE_CHECKED},
    # Integers that are no time (beyond the year 294,000) are caught here, not by a failing conversion later.
    times={"generated_time": "r.generated_time", "start_time": "r.start_time", "end_time": "r.end_time",
           "@timestamp": 'fs_int(r."@timestamp") // 1000'},
    ports=("source_port", "dest_port", "dest_service_port_num"),
    texts={n: f"r.{n}" for n in _ENTERPRISE_KEY_TEXT},
    identity=("r.start_time", "r.end_time", "r.source_name_aggr", "r.dest_name_aggr", "r.source_ip", "r.dest_ip",
              "r.proto", "r.action", "r.reporter"),
    source_labels="r.source_labels",
    dest_labels="r.dest_labels",
    policies="r.policies",
)


# --- Calico OSS Goldmane Flow / FlowResult: protojson (camelCase, int64 as text, enum names), Go JSON -------
# (snake_case, numbers, enum numbers); `Key` is capitalised in every dialect.

def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.capitalize() for p in rest)


_GOLDMANE_KEY = [
    "source_name", "source_namespace", "source_type", "dest_name", "dest_namespace", "dest_type", "dest_port",
    "dest_service_name", "dest_service_namespace", "dest_service_port_name", "dest_service_port", "proto",
    "reporter", "action",
]
_GOLDMANE_FLOW = [
    "start_time", "end_time", "packets_in", "packets_out", "bytes_in", "bytes_out",
    "num_connections_started", "num_connections_completed", "num_connections_live",
]


def _both(names: list[str], leaf: object) -> dict[str, object]:
    return {spelling: leaf for n in names for spelling in (n, _camel(n))}


_GOLDMANE_FLOW_SPEC = {
    "Key": {**_both(_GOLDMANE_KEY, "VARCHAR"), "policies": "JSON"},
    **_both(_GOLDMANE_FLOW, "VARCHAR"),
    **_both(["source_labels", "dest_labels"], "JSON"),
}


def _gm(field_name: str, key: bool = False) -> str:
    """Goldmane value in either spelling, from a bare Flow or a FlowResult's `flow`."""
    paths = []
    for root in ("r.flow", "r"):
        for spelling in dict.fromkeys((field_name, _camel(field_name))):
            paths.append(f'{root}."Key"."{spelling}"' if key else f'{root}."{spelling}"')
    return f"coalesce({', '.join(paths)})"


GOLDMANE = Family(
    name="goldmane",
    spec={**_GOLDMANE_FLOW_SPEC, "id": "VARCHAR", "flow": _GOLDMANE_FLOW_SPEC},
    columns={
        "start_time": f"fs_epoch({_gm('start_time')})",
        "end_time": f"fs_epoch({_gm('end_time')})",
        # Goldmane only knows aggregated names: its `source_name` is Enterprise's `source_name_aggr`.
        "source_name_aggr": f"fs_text({_gm('source_name', key=True)})",
        "source_namespace": f"fs_text({_gm('source_namespace', key=True)})",
        "source_type": f"fs_endpoint_type({_gm('source_type', key=True)})",
        "dest_name_aggr": f"fs_text({_gm('dest_name', key=True)})",
        "dest_namespace": f"fs_text({_gm('dest_namespace', key=True)})",
        "dest_type": f"fs_endpoint_type({_gm('dest_type', key=True)})",
        "dest_port": f"fs_port({_gm('dest_port', key=True)})",
        "dest_service_name": f"fs_text({_gm('dest_service_name', key=True)})",
        "dest_service_namespace": f"fs_text({_gm('dest_service_namespace', key=True)})",
        "dest_service_port": f"fs_text({_gm('dest_service_port_name', key=True)})",
        "dest_service_port_num": f"fs_port({_gm('dest_service_port', key=True)})",
        "proto": f"fs_proto({_gm('proto', key=True)})",
        "proto_num": f"fs_proto_num({_gm('proto', key=True)})",
        "action": f"fs_action({_gm('action', key=True)})",
        "reporter": f"fs_reporter({_gm('reporter', key=True)})",
        "bytes_in": f"coalesce(fs_int({_gm('bytes_in')}), 0)",
        "bytes_out": f"coalesce(fs_int({_gm('bytes_out')}), 0)",
        "packets_in": f"coalesce(fs_int({_gm('packets_in')}), 0)",
        "packets_out": f"coalesce(fs_int({_gm('packets_out')}), 0)",
        "num_flows": f"coalesce(fs_int({_gm('num_connections_live')}), 0)",
        "num_flows_started": f"coalesce(fs_int({_gm('num_connections_started')}), 0)",
        "num_flows_completed": f"coalesce(fs_int({_gm('num_connections_completed')}), 0)",
        "record_id": "r.id",
    },
    numbers={
        **{n: _gm(n) for n in _GOLDMANE_FLOW},
        "Key.dest_port": _gm("dest_port", key=True),
        "Key.dest_service_port": _gm("dest_service_port", key=True),
    },
    times={n: _gm(n) for n in ("start_time", "end_time")},
    ports=("Key.dest_port", "Key.dest_service_port"),
    identity=(_gm("source_name", key=True), _gm("dest_name", key=True), _gm("proto", key=True),
              _gm("start_time")),
    # Goldmane omits an empty label list: absent means "no labels", not "not logged".
    source_labels=f"coalesce({_gm('source_labels')}, '[]')",
    dest_labels=f"coalesce({_gm('dest_labels')}, '[]')",
    policies=_gm("policies", key=True),
)


# --- Whisker backend /flows items (REST list or SSE stream) -------------------------------------------------

_WHISKER_TEXT = ["start_time", "end_time", "action", "source_name", "source_namespace", "dest_name",
                 "dest_namespace", "protocol", "reporter"]
_WHISKER_INTS = ["dest_port", "packets_in", "packets_out", "bytes_in", "bytes_out"]

WHISKER = Family(
    name="whisker",
    spec={**dict.fromkeys(_WHISKER_TEXT + _WHISKER_INTS, "VARCHAR"),
          "source_labels": "JSON", "dest_labels": "JSON", "policies": "JSON"},
    columns={
        "start_time": "fs_time(r.start_time)",
        "end_time": "fs_time(r.end_time)",
        "source_name_aggr": "fs_whisker_name(r.source_name)",
        "source_namespace": "fs_text(r.source_namespace)",
        # Whisker does not send endpoint types; what is certain is inferred. Network names are `net`; the
        # reporting side is where policy ran, so a pod (always namespaced) or a host endpoint (never); a
        # namespaced name aggregated with `*` is a pod's generateName (no object name holds a `*`). Any other
        # peer stays NULL: a pod, host endpoint or network set alike.
        "source_type": "fs_whisker_type(r.source_name, r.source_namespace, fs_reporter(r.reporter) = 'src')",
        "dest_type": "fs_whisker_type(r.dest_name, r.dest_namespace, fs_reporter(r.reporter) = 'dst')",
        "dest_name_aggr": "fs_whisker_name(r.dest_name)",
        "dest_namespace": "fs_text(r.dest_namespace)",
        "dest_port": "fs_port(r.dest_port)",
        "proto": "fs_proto(r.protocol)",
        "proto_num": "fs_proto_num(r.protocol)",
        "action": "fs_action(r.action)",
        "reporter": "fs_reporter(r.reporter)",
        **{n: f"fs_int(r.{n})" for n in _WHISKER_INTS if n != "dest_port"},
    },
    numbers={n: f"r.{n}" for n in _WHISKER_INTS},
    times={"start_time": "r.start_time", "end_time": "r.end_time"},
    ports=("dest_port",),
    identity=("r.source_name", "r.dest_name", "r.protocol", "r.start_time"),
    source_labels="r.source_labels",
    dest_labels="r.dest_labels",
    policies="r.policies",
)

FAMILIES = {f.name: f for f in (ENTERPRISE, GOLDMANE, WHISKER)}
