"""Each format and dialect, from small inline samples: detected on its own and mapped to the canonical columns."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from flowstage.ingest import ingest
from flowstage.store import Store

FELIX = {
    "start_time": 1699374848, "end_time": 1699375161, "source_ip": None, "source_name": "-",
    "source_name_aggr": "frontend-755cdc7957-*", "source_namespace": "default", "source_port": None,
    "source_type": "wep", "source_labels": {"labels": ["app=frontend", "pod-template-hash=755cdc7957"]},
    "dest_ip": None, "dest_name": "-", "dest_name_aggr": "cartservice-7d4899b484-*", "dest_namespace": "default",
    "dest_port": 7070, "dest_type": "wep", "dest_labels": {"labels": ["app=cartservice"]},
    "dest_service_namespace": "default", "dest_service_name": "cartservice", "dest_service_port": "grpc",
    "dest_service_port_num": 7070, "proto": "tcp", "action": "allow", "reporter": "src",
    "policies": {"enforced_policies": ["0|default|default/default.allow-cart|allow|1"],
                 "pending_policies": ["0|security|default/security.staged:deny-cart|deny|-1"]},
    "bytes_in": 100, "bytes_out": 200, "num_flows": 2, "num_flows_started": 1, "num_flows_completed": 1,
    "packets_in": 3, "packets_out": 4,
}

GOLDMANE_GO_JSON = {
    "Key": {"source_name": "web-*", "source_namespace": "shop", "source_type": 1, "dest_name": "pvt",
            "dest_namespace": "-", "dest_type": 4, "dest_port": 5432, "dest_service_name": "-",
            "dest_service_namespace": "-", "dest_service_port_name": "-", "proto": "tcp", "reporter": 1,
            "action": 2,
            "policies": {"enforced_policies": [{"kind": 10, "tier": "security", "action": 2, "policy_index": 1,
                                                "trigger": {"kind": 2, "name": "egress-lockdown", "tier": "security"}}],
                         "pending_policies": [{"kind": 4, "name": "db-deny", "tier": "security", "action": 2,
                                               "rule_index": 2}]}},
    "start_time": 1764970845, "end_time": 1764970860, "source_labels": ["app=web", "team=shop"],
    "bytes_out": 60, "packets_out": 1, "num_connections_started": 1, "num_connections_live": 1,
}

WHISKER_ITEM = {
    "start_time": "2025-12-05T21:40:45Z", "end_time": "2025-12-05T21:41:00Z", "action": "Deny",
    "source_name": "PUBLIC NETWORK", "source_namespace": "-", "source_labels": "",
    "dest_name": "api-6d9f8b7c4-*", "dest_namespace": "prod", "dest_labels": "app=api | tier=web | empty=",
    "protocol": "tcp", "dest_port": 443, "reporter": "Dst",
    "policies": {"enforced": [{"kind": "GlobalNetworkPolicy", "name": "deny-public", "namespace": "",
                               "tier": "security", "action": "Deny", "policy_index": 0, "rule_index": 0,
                               "trigger": None}],
                 "pending": None},
    "packets_in": 5, "packets_out": 0, "bytes_in": 300, "bytes_out": 0,
}


def _lines(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _ingest(tmp_path: Path, name: str, data: bytes | str, **kwargs):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    store = Store.open(tmp_path / "store", create=True)
    summary = ingest([str(path)], store, **kwargs)
    return summary, store.connect()


def test_felix_json_lines(tmp_path):
    summary, con = _ingest(tmp_path, "flows.log", _lines(FELIX, {**FELIX, "reporter": "dst"}))
    assert (summary.read, summary.stored) == (2, 2)
    row = con.execute("""SELECT format, source_line, source_name, dest_service_port, enforced_policies[1].name,
        pending_policies[1].staged, pending_policies[1].end_of_tier FROM flows ORDER BY source_line""").fetchall()
    assert row[0] == ("felix", 1, None, "grpc", "allow-cart", True, True)
    assert row[1][1] == 2


@pytest.mark.parametrize("suffix, compress", [
    (".gz", gzip.compress),
    (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ("-2025-11-20T10-00-00.000-size.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_compressed_and_rotated_felix_files(tmp_path, suffix, compress):
    summary, con = _ingest(tmp_path, "flows" + suffix, compress(_lines(FELIX, FELIX, FELIX).encode()))
    assert (summary.read, summary.stored, summary.files[0].format) == (3, 3, "felix")
    assert con.execute("SELECT list(source_line ORDER BY source_line) FROM flows").fetchone()[0] == [1, 2, 3]


def test_elasticsearch_source_lines_carry_host_and_timestamp(tmp_path):
    doc = {**FELIX, "host": "node-1", "@timestamp": 1699375161000, "cluster": "cluster",
           "generated_time": "2023-11-07T16:40:00.123456789Z"}
    summary, con = _ingest(tmp_path, "export.jsonl", _lines(doc))
    row = con.execute("SELECT format, host, cluster, generated_time FROM flows").fetchone()
    assert row == ("elastic", "node-1", "cluster", datetime(2023, 11, 7, 16, 40, 0, 123456, tzinfo=UTC))


def test_elasticsearch_search_response(tmp_path):
    response = {"took": 3, "hits": {"total": {"value": 2}, "hits": [
        {"_index": "tigera_secure_ee_flows.cluster.fluentd-20231107-000001", "_id": "doc-1",
         "_source": {**FELIX, "host": "node-1"}},
        {"_index": "tigera_secure_ee_flows.cluster.fluentd-20231107-000001", "_id": "doc-2",
         "_source": {**FELIX, "host": "node-2"}}]}}
    summary, con = _ingest(tmp_path, "search.json", json.dumps(response, indent=2))
    assert summary.files[0].format == "elastic"
    rows = con.execute("SELECT source_line, record_id, host FROM flows ORDER BY source_line").fetchall()
    assert rows == [(1, "doc-1", "node-1"), (2, "doc-2", "node-2")]


def test_linseed_list_envelope(tmp_path):
    envelope = {"total_hits": 2, "items": [{**FELIX, "id": "a1", "host": "n"}, {**FELIX, "id": "a2", "host": "n"}],
                "after_key": {"startFrom": 2}}
    summary, con = _ingest(tmp_path, "list.json", json.dumps(envelope))
    assert summary.files[0].format == "linseed"
    assert con.execute("SELECT list(record_id ORDER BY source_line) FROM flows").fetchone()[0] == ["a1", "a2"]


def test_s3_archive_lines_in_gzip(tmp_path):
    lines = "".join(f"2023-11-07T16:40:0{i}+00:00\tflows\t{json.dumps({**FELIX, 'host': f'n{i}'})}\n" for i in range(3))
    summary, con = _ingest(tmp_path, "flows2023110716_0.gz", gzip.compress(lines.encode()))
    assert (summary.files[0].format, summary.stored) == ("s3", 3)
    assert con.execute("SELECT list(host ORDER BY source_line) FROM flows").fetchone()[0] == ["n0", "n1", "n2"]


def test_goldmane_protojson_flow_results(tmp_path):
    flow = {"Key": {"sourceName": "web-*", "sourceNamespace": "shop", "sourceType": "WorkloadEndpoint",
                    "destName": "db-0", "destNamespace": "shop", "destType": "WorkloadEndpoint", "destPort": "5432",
                    "proto": "tcp", "reporter": "Dst", "action": "Allow",
                    "policies": {"enforcedPolicies": [{"kind": "NetworkPolicy", "namespace": "shop", "name": "db",
                                                       "tier": "default", "action": "Allow", "ruleIndex": "1"}]}},
            "startTime": "1764970845", "endTime": "1764970860", "sourceLabels": ["app=web"], "bytesIn": "957",
            "numConnectionsLive": "4"}
    summary, con = _ingest(tmp_path, "stream.json", _lines({"id": "17", "flow": flow}))
    row = con.execute("""SELECT format, record_id, source_name_aggr, dest_name_aggr, dest_port, reporter, action,
        bytes_in, num_flows, dest_labels, enforced_policies[1].kind, enforced_policies[1].rule_index FROM flows""").fetchone()
    assert row == ("goldmane", "17", "web-*", "db-0", 5432, "dst", "allow", 957, 4, {}, "knp", 1)


def test_goldmane_go_json_enum_numbers_and_end_of_tier(tmp_path):
    summary, con = _ingest(tmp_path, "emitter.ndjson", _lines(GOLDMANE_GO_JSON))
    row = con.execute("""SELECT source_type, dest_type, dest_name_aggr, reporter, action, start_time, bytes_in,
        enforced_policies[1], pending_policies[1].kind, pending_policies[1].staged FROM flows""").fetchone()
    assert row[:7] == ("wep", "net", "pvt", "src", "deny", datetime(2025, 12, 5, 21, 40, 45, tzinfo=UTC), 0)
    assert row[7] == {"position": 1, "tier": "security", "kind": "gnp", "namespace": None, "name": "egress-lockdown",
                      "staged": False, "action": "deny", "rule_index": -1, "end_of_tier": True, "raw": None}
    assert row[8:] == ("sgnp", True)


def test_whisker_list(tmp_path):
    summary, con = _ingest(tmp_path, "whisker.json", json.dumps({"total": {"totalPages": 1}, "items": [WHISKER_ITEM]}))
    row = con.execute("""SELECT format, start_time, source_name_aggr, source_namespace, source_labels, dest_labels,
        proto, reporter, action, enforced_policies[1].name, pending_policies FROM flows""").fetchone()
    assert row == ("whisker", datetime(2025, 12, 5, 21, 40, 45, tzinfo=UTC), "pub", None, {},
                   {"app": "api", "tier": "web", "empty": ""}, "tcp", "dst", "deny", "deny-public", None)


def test_whisker_event_stream(tmp_path):
    stream = f"data: {json.dumps(WHISKER_ITEM)}\n\ndata: {json.dumps({**WHISKER_ITEM, 'source_name': 'PRIVATE NETWORK'})}\n\n"
    summary, con = _ingest(tmp_path, "watch.txt", stream)
    assert (summary.files[0].format, summary.stored) == ("whisker", 2)
    rows = con.execute("SELECT source_line, source_name_aggr FROM flows ORDER BY source_line").fetchall()
    assert rows == [(1, "pub"), (3, "pvt")]


@pytest.mark.parametrize(
    ("source", "dest", "reporter", "types"),
    [
        # The reporting side ran policy: a pod when namespaced, a host endpoint when not.
        (("web-0", "shop"), ("db-0", "shop"), "Src", ("wep", None)),
        (("web-0", "shop"), ("db-0", "shop"), "Dst", (None, "wep")),
        (("PUBLIC NETWORK", "-"), ("node-1", "-"), "Dst", ("net", "hep")),
        (("node-1", ""), ("PRIVATE NETWORK", "-"), "Src", ("hep", "net")),
        # A namespaced peer aggregated with `*` is a pod; any other peer could be a network set or a host.
        (("web-6d9f8b7c4-*", "shop"), ("db-0", "shop"), "Dst", ("wep", "wep")),
        (("web-6d9f8b7c4-*", "shop"), ("db-0", "shop"), "Src", ("wep", None)),
        (("web-0", "shop"), ("blocklist", "-"), "Src", ("wep", None)),
    ],
)
def test_whisker_endpoint_types_are_inferred_where_certain(tmp_path, source, dest, reporter, types):
    item = {**WHISKER_ITEM, "source_name": source[0], "source_namespace": source[1], "dest_name": dest[0],
            "dest_namespace": dest[1], "reporter": reporter}
    _, con = _ingest(tmp_path, "whisker.json", json.dumps({"items": [item]}))
    assert con.execute("SELECT source_type, dest_type FROM flows").fetchone() == types


def test_forced_format_overrides_detection(tmp_path):
    summary, con = _ingest(tmp_path, "flows.log", _lines({**FELIX, "host": "n"}), format="felix")
    assert con.execute("SELECT format, host FROM flows").fetchone() == ("felix", "n")


def test_labels_split_on_first_equals_and_keep_first_of_repeated_keys(tmp_path):
    record = {**FELIX, "source_labels": {"labels": ["a=b=c", "flag=", "a=again"]}}
    _, con = _ingest(tmp_path, "flows.log", _lines(record))
    assert con.execute("SELECT source_labels FROM flows").fetchone()[0] == {"a": "b=c", "flag": ""}


def test_unknown_protocol_number_stays_text(tmp_path):
    _, con = _ingest(tmp_path, "flows.log", _lines({**FELIX, "proto": "47"}, {**FELIX, "proto": "17"}))
    rows = con.execute("SELECT proto, proto_num FROM flows ORDER BY source_line").fetchall()
    assert rows == [("47", 47), ("udp", 17)]
