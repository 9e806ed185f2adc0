"""Every file of the public conformance set ingests: 349 records stored with the values the files hold, 3 quarantined."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowstage.ingest import ingest
from flowstage.store import Store


@pytest.fixture(scope="module")
def conformance_store(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    store = Store.open(tmp_path_factory.mktemp("conformance") / "store", create=True)
    summary = ingest([str(shared_dir / "conformance" / "flowlogs")], store)
    return store, summary


@pytest.fixture(scope="module")
def con(conformance_store):
    store, _ = conformance_store
    return store.connect()


def one(con, sql: str, *params):
    rows = con.execute(sql, list(params)).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def test_all_parseable_records_are_stored_and_the_broken_ones_quarantined(conformance_store, con):
    _, summary = conformance_store
    assert summary.stored == 349
    assert summary.read == 352
    assert dict(summary.quarantined) == {"invalid_json": 1, "truncated_first_line": 1, "truncated_last_line": 1}
    assert con.execute("SELECT count(*) FROM flows").fetchone()[0] == 349
    skipped = [f for f in summary.files if f.status == "skipped"]
    assert [Path(f.source).name for f in skipped] == ["SOURCES.md"]


def test_quarantine_view_names_file_line_and_reason(con):
    rows = con.execute(
        "SELECT regexp_extract(source_file, '[^/]+$'), source_line, reason, left(raw, 20) FROM quarantine ORDER BY reason"
    ).fetchall()
    assert rows == [
        ("ent-docs_datatypes-example_current_INVALID-trailing-comma.json", 1, "invalid_json", '{\n    "start_time": '),
        ("ent-es-source_linseed-fv-truncated_flowlogs_first-line-cut.txt", 1, "truncated_first_line", '"source_namespace":"'),
        ("ent-felix-file_testdata_2020-01_truncated-last-line.flows.log", 4, "truncated_last_line", '{"start_time":157783'),
    ]


def test_formats_are_told_apart_per_file(con):
    counts = dict(con.execute("SELECT format, count(*) FROM flows GROUP BY ALL").fetchall())
    assert counts == {"felix": 262, "elastic": 79, "linseed": 7, "goldmane": 1}


def test_felix_line_placeholders_labels_and_legacy_policy_string(con):
    row = one(con, """SELECT start_time, end_time, source_name, source_name_aggr, source_ip, source_port,
        source_labels, dest_name_aggr, dest_type, dest_labels, nat_outgoing_ports, dest_service_name, proto, proto_num,
        reporter, all_policies, enforced_policies, bytes_in, process_name, process_id, process_args, num_flows
        FROM flows WHERE source_file LIKE '%fake-log-generator%' AND source_line = 1""")
    assert row[0] == datetime(2023, 11, 7, 16, 34, 8, tzinfo=UTC)
    assert row[1] == datetime(2023, 11, 7, 16, 39, 21, tzinfo=UTC)
    assert row[2:6] == (None, "frontend-755cdc7957-*", None, None)
    assert row[6] == {"app": "frontend", "pod-template-hash": "755cdc7957"}
    assert row[7:10] == ("pub", "net", {})
    assert row[10] == [22661, 26305]
    assert row[11:15] == (None, "tcp", 6, "src")
    assert row[15] == [{"position": 0, "tier": "__PROFILE__", "kind": "pro", "namespace": None, "name": "kns.default",
                        "staged": False, "action": "allow", "rule_index": 0, "end_of_tier": False,
                        "raw": "0|__PROFILE__|__PROFILE__.kns.default|allow|0"}]
    assert row[16] is None
    assert row[17:] == (2540, "/src/server", "21842", None, 2)


def test_service_fields_keep_port_name_and_number_apart(con):
    row = one(con, """SELECT dest_service_namespace, dest_service_name, dest_service_port, dest_service_port_num, dest_port, proto
        FROM flows WHERE source_file LIKE '%fake-log-generator%' AND source_line = 2""")
    assert row == ("kube-system", "kube-dns", "dns", 53, 53, "udp")


def test_four_field_policy_strings_have_no_rule_index(con):
    row = one(con, """SELECT source_ip, source_port, source_name, host, all_policies[1]
        FROM flows WHERE source_file LIKE '%datatypes-example_2024-05%'""")
    assert row[:4] == ("192.168.47.9", 42106, "access-6b687c8dcb-zn5s2", "bz-n8kf-kadm-node-1")
    assert row[4] == {"position": 0, "tier": "default", "kind": "np", "namespace": "policy-demo", "name": "access-nginx",
                      "staged": False, "action": "allow", "rule_index": None, "end_of_tier": False,
                      "raw": "0|default|policy-demo/default.access-nginx|allow"}


def test_forwarded_traffic_reporter_is_normalised_and_transit_trace_kept(con):
    rows = con.execute("""SELECT reporter, transit_policies[1].name, transit_policies[1].kind, enforced_policies[1].kind
        FROM flows WHERE source_file LIKE '%host-forwarded%' ORDER BY source_file""").fetchall()
    assert rows == [("dst,fwd", "allow-ssh-maintenance", "gnp", "pro"), ("fwd", "allow-external-http", "gnp", None)]


def test_trace_sorted_by_position_pass_then_profile(con):
    row = one(con, """SELECT source_type, source_name_aggr, [h.action FOR h IN all_policies], [h.tier FOR h IN all_policies]
        FROM flows WHERE source_file LIKE '%legacy_2023-02%' AND source_line = 10""")
    assert row == ("net", "pvt", ["pass", "allow"], ["allow-tigera", "__PROFILE__"])


def test_repeated_policy_index_keeps_both_hits(con):
    row = one(con, """SELECT [h.position FOR h IN all_policies], [h.kind FOR h IN all_policies], process_name
        FROM flows WHERE source_file LIKE '%idc-9_with_notin%' AND len(all_policies) = 2""")
    assert row[0] == [0, 0]
    assert sorted(row[1]) == ["np", "pro"]
    assert row[2] == "/es-gateway"


def test_elasticsearch_doc_without_timestamp_field(con):
    row = one(con, """SELECT start_time, host, all_policies[1].position, all_policies[1].name, reporter
        FROM flows WHERE source_file LIKE '%es-proxy-sample%'""")
    assert row == (datetime(2019, 7, 27, 1, 15, 29, tzinfo=UTC), "tigera-fluentd-node-qxdr7", 1, "kns.calico-monitoring", "src")


def test_four_policy_lists_of_the_edited_fixture(con):
    row = one(con, """SELECT len(all_policies), enforced_policies[1].name, pending_policies[1].tier, transit_policies[1].kind,
        transit_bytes_in FROM flows WHERE source_file LIKE '%edited-2026%' AND source_line = 1""")
    assert row == (1, "cluster-dns", "calico-system", "np", 7420)


def test_goldmane_protojson_flow(con):
    row = one(con, """SELECT start_time, end_time, source_name, source_name_aggr, source_type, dest_name_aggr, dest_port,
        dest_service_name, source_labels['longhorn.io/admission-webhook'], reporter, action, num_flows, bytes_out,
        enforced_policies[1].kind, enforced_policies[1].name, enforced_policies[1].rule_index
        FROM flows WHERE format = 'goldmane'""")
    assert row == (datetime(2025, 12, 5, 21, 40, 45, tzinfo=UTC), datetime(2025, 12, 5, 21, 41, tzinfo=UTC), None,
                   "longhorn-manager-*", "wep", "instance-manager-318f1eac2bc7c775b7a6d2e68e9e2800", 8503, None,
                   "long horn-admission-webhook", "src", "allow", 1, 1226, "np", "allow-same-namespace", 0)


def test_linseed_items_keep_zero_filled_and_service_fields(con):
    row = one(con, """SELECT dest_service_name, dest_service_port, dest_name, source_line, end_time
        FROM flows WHERE source_file LIKE '%idc-5_with_no_metric_and_no_aggregation_response.json'""")
    assert row == ("tigera-secure-es-http", "https", None, 1, datetime(2021, 3, 8, 18, 30, 5, tzinfo=UTC))
