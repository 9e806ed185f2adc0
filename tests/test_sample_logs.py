"""The committed sample_logs/: regenerated exactly by `flowstage synth sample`, small, and the lesson's scenario
logged the way Calico logs it, in every format, with no time window covered twice."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
import zstandard

from flowstage.synth.formats import TCP_STATS
from flowstage.synth.sample import write_sample

FELIX_KEYS = [
    "start_time", "end_time", "source_ip", "source_name", "source_name_aggr", "source_namespace", "nat_outgoing_ports",
    "source_port", "source_type", "source_labels", "dest_ip", "dest_name", "dest_name_aggr", "dest_namespace",
    "dest_port", "dest_type", "dest_labels", "dest_service_namespace", "dest_service_name", "dest_service_port",
    "dest_service_port_num", "dest_domains", "proto", "action", "reporter", "policies", "bytes_in", "bytes_out",
    "num_flows", "num_flows_started", "num_flows_completed", "packets_in", "packets_out", "transit_bytes_in",
    "transit_bytes_out", "transit_packets_in", "transit_packets_out", "http_requests_allowed_in",
    "http_requests_denied_in", "process_name", "num_process_names", "process_id", "num_process_ids", "process_args",
    "num_process_args", "original_source_ips", "num_original_source_ips", *TCP_STATS,
]  # fmt: skip

DB_ALLOW = "0|default|gnp:database-allow-from-backend|allow|0"
DB_END_OF_TIER = "0|default|gnp:database-allow-from-backend|deny|-1"
LOCKDOWN_END_OF_TIER = "0|default|sgnp:backend-lockdown-staged|deny|-1"


@pytest.fixture(scope="module")
def sample(repo_dir: Path) -> Path:
    return repo_dir / "sample_logs"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    write_sample(out)
    return out


def read_text(path: Path) -> str:
    if path.suffix == ".zst":
        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read().decode()
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in read_text(path).splitlines()]


@pytest.fixture(scope="module")
def felix(sample: Path) -> list[dict]:
    rows = []
    for path in sorted((sample / "logs" / "felix").glob("*/*")):
        for row in json_lines(path):
            row["_node"] = path.parent.name
            row["_file"] = path.name
            rows.append(row)
    return rows


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- the sample can never drift from its generator ---------------------------------------------------------------


def test_the_committed_sample_is_exactly_what_the_generator_writes(sample: Path, fresh: Path) -> None:
    committed = {p.relative_to(sample) for p in files_of(sample) if p.name != "README.md"}
    generated = {p.relative_to(fresh) for p in files_of(fresh)}
    assert committed == generated
    for rel in sorted(generated):
        # Compressed files are compared by content: compressor versions may frame the same bytes differently.
        assert read_text(sample / rel) == read_text(fresh / rel), f"{rel} differs from a fresh `flowstage synth sample`"


def test_generating_twice_gives_the_same_bytes(fresh: Path, tmp_path: Path) -> None:
    write_sample(tmp_path)
    for path in files_of(fresh):
        assert (tmp_path / path.relative_to(fresh)).read_bytes() == path.read_bytes(), path.name


def test_the_sample_stays_under_two_megabytes(sample: Path) -> None:
    assert sum(p.stat().st_size for p in files_of(sample)) < 2 * 1024 * 1024


# --- formats -------------------------------------------------------------------------------------------------


def test_every_json_line_of_every_log_parses(sample: Path) -> None:
    for path in files_of(sample / "logs"):
        if path.name == "flows.json":
            assert json.loads(read_text(path))["items"]
        else:
            assert json_lines(path), path


def test_felix_lines_have_felix_fields_in_felix_order(felix: list[dict]) -> None:
    for row in felix:
        assert [k for k in row if not k.startswith("_")] == FELIX_KEYS
        assert set(row["policies"]) == {"enforced_policies", "pending_policies", "transit_policies"}
        assert row["policies"]["transit_policies"] is None
        assert row["source_labels"] is not None and isinstance(row["source_labels"]["labels"], list)


def test_felix_aggregates_allowed_rows_at_level_2_and_denied_rows_at_level_1(felix: list[dict]) -> None:
    allowed = [r for r in felix if r["action"] == "allow"]
    denied = [r for r in felix if r["action"] == "deny"]
    assert allowed and denied
    for r in allowed:
        assert r["source_ip"] is None and r["dest_ip"] is None
        assert r["source_name"] == "-" and r["dest_name"] == "-"
    for r in denied:
        assert r["source_ip"] and r["dest_ip"] and r["source_port"] is None
        assert r["source_name"] != "-" and r["dest_name"] != "-"


def test_rotated_felix_files_are_zstd_with_timberjack_names_and_precede_the_live_file(sample: Path, felix: list[dict]) -> None:
    for node_dir in sorted((sample / "logs" / "felix").iterdir()):
        names = sorted(p.name for p in node_dir.iterdir())
        assert len(names) == 2 and "flows.log" in names
        backup = next(n for n in names if n != "flows.log")
        assert backup.startswith("flows-2026-03-03T") and backup.endswith("-size.log.zst")
        rows = [r for r in felix if r["_node"] == node_dir.name]
        rotated_end = max(r["end_time"] for r in rows if r["_file"] == backup)
        live_start = min(r["start_time"] for r in rows if r["_file"] == "flows.log")
        assert rotated_end <= live_start


def test_elasticsearch_documents_add_host_timestamp_cluster_and_generated_time(sample: Path) -> None:
    docs = json_lines(sample / "logs" / "elasticsearch" / "flows-export.jsonl")
    nodes = {p.name for p in (sample / "logs" / "felix").iterdir()}
    for doc in docs:
        assert list(doc)[-4:] == ["host", "@timestamp", "cluster", "generated_time"]
        assert doc["host"] in nodes
        assert doc["@timestamp"] == doc["end_time"] * 1000
        assert doc["cluster"] == "cluster"
        assert doc["generated_time"].startswith("2026-03-03T") and doc["generated_time"].endswith("Z")
        assert doc["policies"]["all_policies"] is None


def test_goldmane_lines_are_go_encoding_json_with_enum_numbers_and_no_zero_values(sample: Path) -> None:
    flows = json_lines(sample / "logs" / "goldmane" / "emitter.ndjson")
    for flow in flows:
        key = flow["Key"]
        assert key["reporter"] in (1, 2) and key["action"] in (1, 2)
        assert key["source_type"] in (1, 4) and key["dest_type"] in (1, 4)
        assert "source_ip" not in key and "source_name_aggr" not in key
        assert 0 not in key.values() and "" not in key.values()
        assert (flow["end_time"] - flow["start_time"]) == 300 and flow["start_time"] % 15 == 0
        for hit in key["policies"]["enforced_policies"] + key["policies"]["pending_policies"]:
            assert 0 not in hit.values() and "" not in hit.values()
    profile_hit = {"kind": 9, "name": "kns.prod", "action": 1}
    lockdown_hit = {"kind": 10, "tier": "default", "action": 2, "rule_index": -1,
                    "trigger": {"kind": 4, "name": "backend-lockdown-staged", "tier": "default"}}  # fmt: skip
    to_backend = [f for f in flows if f["Key"]["dest_name"].startswith("backend-") and f["Key"]["reporter"] == 2]
    assert to_backend
    assert all(f["Key"]["policies"] == {"enforced_policies": [profile_hit], "pending_policies": [lockdown_hit]} for f in to_backend)


def test_whisker_download_is_a_list_of_flow_responses(sample: Path) -> None:
    body = json.loads(read_text(sample / "logs" / "whisker" / "flows.json"))
    assert body["total"] == {"totalPages": 1}
    item = body["items"][0]
    assert list(item) == ["start_time", "end_time", "action", "source_name", "source_namespace", "source_labels",
                          "dest_name", "dest_namespace", "dest_labels", "protocol", "dest_port", "reporter", "policies",
                          "packets_in", "packets_out", "bytes_in", "bytes_out"]  # fmt: skip
    assert {i["reporter"] for i in body["items"]} == {"Src", "Dst"}
    assert {i["action"] for i in body["items"]} == {"Allow", "Deny"}
    assert any(i["source_name"] == "PUBLIC NETWORK" for i in body["items"])
    assert all(" | " in i["dest_labels"] for i in body["items"] if i["dest_namespace"] == "prod")


def test_no_time_window_is_covered_twice(sample: Path, felix: list[dict]) -> None:
    spans = {"felix": (min(r["start_time"] for r in felix), max(r["end_time"] for r in felix))}
    for name, path in (("elastic", "elasticsearch/flows-export.jsonl"), ("goldmane", "goldmane/emitter.ndjson")):
        rows = json_lines(sample / "logs" / path)
        spans[name] = (min(r["start_time"] for r in rows), max(r["end_time"] for r in rows))
    items = json.loads(read_text(sample / "logs" / "whisker" / "flows.json"))["items"]
    spans["whisker"] = (min(i["start_time"] for i in items), max(i["end_time"] for i in items))
    as_seconds = {
        name: tuple(int(dt.datetime.fromisoformat(t).timestamp()) if isinstance(t, str) else t for t in span)
        for name, span in spans.items()
    }
    ordered = sorted(as_seconds.values())
    for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
        assert end <= start
    by_node: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in felix:
        by_node[r["_node"]].append((r["start_time"], r["end_time"]))
    for windows in by_node.values():
        distinct = sorted(set(windows))
        assert all(a[1] <= b[0] for a, b in zip(distinct, distinct[1:], strict=False))


# --- the scenario --------------------------------------------------------------------------------------------


def rows(felix: list[dict], src: str, dst: str, reporter: str, port: int | None = None) -> list[dict]:
    return [
        r for r in felix
        if r["reporter"] == reporter and f"{r['source_namespace']}/{r['source_name_aggr']}".startswith(src)
        and f"{r['dest_namespace']}/{r['dest_name_aggr']}".startswith(dst) and (port is None or r["dest_port"] == port)
    ]  # fmt: skip


def test_backend_to_database_is_allowed_by_the_enforced_policy(felix: list[dict]) -> None:
    dst = rows(felix, "prod/backend-", "prod/database-", "dst", 8080)
    assert dst and all(r["action"] == "allow" for r in dst)
    assert all(r["policies"]["enforced_policies"] == [DB_ALLOW] == r["policies"]["pending_policies"] for r in dst)
    src = rows(felix, "prod/backend-", "prod/database-", "src", 8080)
    assert src and all(r["policies"]["enforced_policies"] == ["0|__PROFILE__|pro:kns.prod|allow|0"] for r in src)


def test_everyone_else_is_denied_at_the_database_at_end_of_tier(felix: list[dict]) -> None:
    denied = [r for r in felix if r["dest_name_aggr"].startswith("database-") and r["reporter"] == "dst" and r["action"] == "deny"]
    assert {r["source_namespace"] for r in denied} == {"monitoring", "staging", "prod"}
    for r in denied:
        assert not r["source_name_aggr"].startswith("backend-")
        assert r["policies"] == {"enforced_policies": [DB_END_OF_TIER], "pending_policies": [DB_END_OF_TIER], "transit_policies": None}
        assert r["bytes_out"] == 0 and r["packets_in"] > 0


def test_frontend_to_backend_is_allowed_now_and_pending_denied_by_the_staged_lockdown(felix: list[dict]) -> None:
    dst = rows(felix, "prod/frontend-", "prod/backend-", "dst", 8080)
    src = rows(felix, "prod/frontend-", "prod/backend-", "src", 8080)
    assert dst and src
    for r in dst:
        assert r["action"] == "allow"
        assert r["policies"]["enforced_policies"] == ["0|__PROFILE__|pro:kns.prod|allow|0"]
        assert r["policies"]["pending_policies"] == [LOCKDOWN_END_OF_TIER]
    assert all(r["policies"]["pending_policies"] == ["0|__PROFILE__|pro:kns.prod|allow|0"] for r in src)


def test_every_ingress_to_the_backend_is_pending_denied(felix: list[dict]) -> None:
    to_backend = [r for r in felix if r["dest_name_aggr"].startswith("backend-") and r["reporter"] == "dst"]
    assert {r["source_namespace"] for r in to_backend} == {"prod", "monitoring"}
    assert all(r["policies"]["pending_policies"] == [LOCKDOWN_END_OF_TIER] for r in to_backend)


def test_frontend_to_backend_is_the_busiest_connection(felix: list[dict]) -> None:
    flows: dict[tuple[str, str, int], int] = defaultdict(int)
    for r in felix:
        if r["reporter"] == "dst":
            flows[(r["source_name_aggr"].split("-")[0], r["dest_name_aggr"].split("-")[0], r["dest_port"])] += r["num_flows"]
    assert max(flows, key=flows.__getitem__) == ("frontend", "backend", 8080)


def test_the_cluster_has_dns_the_api_server_cross_namespace_and_external_traffic(felix: list[dict]) -> None:
    dns = [r for r in felix if r["dest_service_name"] == "kube-dns"]
    assert {r["proto"] for r in dns} == {"udp", "tcp"} and {r["reporter"] for r in dns} == {"src", "dst"}
    api = [r for r in felix if r["dest_port"] == 6443]
    assert {r["source_namespace"] for r in api} >= {"calico-system", "monitoring"}
    assert all(r["dest_type"] == "net" and r["dest_name_aggr"] == "pvt" and r["dest_service_name"] == "kubernetes" for r in api)
    assert rows(felix, "staging/loadgen-", "prod/frontend-", "dst", 8080)
    assert rows(felix, "monitoring/prometheus-0", "prod/backend-", "dst", 9090)
    inbound = [r for r in felix if r["source_name_aggr"] == "pub" and r["dest_namespace"] == "ingress-nginx"]
    assert inbound and all(r["reporter"] == "dst" and r["source_type"] == "net" for r in inbound)
    outbound = rows(felix, "prod/backend-", "-/pub", "src", 443)
    assert outbound and all(r["dest_domains"] == ["api.payments.example.com"] for r in outbound)


# --- policies and inventory ---------------------------------------------------------------------------------


def test_lesson_policies_are_the_lessons_two_objects(sample: Path) -> None:
    enforced, staged = yaml.safe_load_all((sample / "policies" / "lesson.yaml").read_text())
    assert (enforced["kind"], enforced["metadata"]["name"]) == ("GlobalNetworkPolicy", "database-allow-from-backend")
    assert enforced["spec"]["selector"] == "env == 'prod' && app == 'database'"
    assert enforced["spec"]["ingress"] == [
        {"action": "Allow", "protocol": "TCP", "source": {"selector": "env == 'prod' && app == 'backend'"}, "destination": {"ports": [8080]}}
    ]
    assert "order" not in enforced["spec"] and "tier" not in enforced["spec"]
    assert (staged["kind"], staged["metadata"]["name"]) == ("StagedGlobalNetworkPolicy", "backend-lockdown-staged")
    assert staged["spec"] == {"selector": "env == 'prod' && app == 'backend'", "types": ["Ingress"]}
    (safety_net,) = yaml.safe_load_all((sample / "policies" / "safety-net.yaml").read_text())
    assert safety_net["metadata"]["name"] == "zzz-final-allow-everything" and safety_net["spec"]["order"] == 100000


def test_inventory_is_kubectl_list_output_consistent_with_the_logs(sample: Path, felix: list[dict]) -> None:
    namespaces = yaml.safe_load((sample / "inventory" / "namespaces.yaml").read_text())
    pods = yaml.safe_load((sample / "inventory" / "pods.yaml").read_text())
    assert namespaces["kind"] == pods["kind"] == "List"
    ns_labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in namespaces["items"]}
    assert ns_labels["prod"]["env"] == "prod" and ns_labels["prod"]["kubernetes.io/metadata.name"] == "prod"
    by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods["items"]}
    for p in pods["items"]:
        assert p["spec"]["serviceAccountName"] and p["status"]["podIP"]
    backend = next(p for (ns, name), p in by_name.items() if ns == "prod" and name.startswith("backend-"))
    assert backend["metadata"]["generateName"].startswith("backend-") and backend["metadata"]["labels"]["app"] == "backend"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in backend["spec"]["containers"][0]["ports"]
    for r in felix:
        for side in ("source", "dest"):
            if r[f"{side}_type"] == "wep":
                assert r[f"{side}_namespace"] in ns_labels
            if r[f"{side}_ip"] and r[f"{side}_type"] == "wep":
                pod = by_name[(r[f"{side}_namespace"], r[f"{side}_name"])]
                assert pod["status"]["podIP"] == r[f"{side}_ip"]
                assert sorted(f"{k}={v}" for k, v in pod["metadata"]["labels"].items()) == sorted(r[f"{side}_labels"]["labels"])
