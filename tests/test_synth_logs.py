"""Synthetic flow-log files at any size: exact row and key counts, every format's shape, compression, felix's
rotation, and the same bytes for the same seed."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
import zstandard

from flowstage.errors import UsageError
from flowstage.synth.formats import rfc3339
from flowstage.synth.logs import write_logs


def lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdDecompressor().stream_reader(data).read()
    return [json.loads(line) for line in data.decode().splitlines()]


def felix_identity(r: dict) -> tuple:
    return (
        r["reporter"], r["source_type"], r["source_namespace"], r["source_name_aggr"], r["source_name"], r["source_ip"],
        tuple(sorted(r["source_labels"]["labels"])), r["dest_type"], r["dest_namespace"], r["dest_name_aggr"],
        r["dest_name"], r["dest_ip"], tuple(sorted(r["dest_labels"]["labels"])), r["proto"], r["dest_port"],
    )  # fmt: skip


def test_felix_file_has_the_requested_rows_and_distinct_keys(tmp_path: Path) -> None:
    summary = write_logs(tmp_path / "flows.log", rows=3_000, keys=400)
    rows = lines(tmp_path / "flows.log")
    assert summary.records == len(rows) == 3_000
    assert len({felix_identity(r) for r in rows}) == summary.keys == 400


def test_a_key_is_logged_at_most_once_per_window_and_node_timers_differ(tmp_path: Path) -> None:
    rows = lines(write_logs(tmp_path / "flows.log", rows=2_000, keys=300).files[0])
    seen = [(felix_identity(r), r["start_time"]) for r in rows]
    assert len(seen) == len(set(seen))
    assert len({r["start_time"] % 300 for r in rows}) > 1
    assert all(r["end_time"] - r["start_time"] == 300 for r in rows)


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    a = write_logs(tmp_path / "a.log", rows=500, keys=100, seed=7).files[0].read_bytes()
    b = write_logs(tmp_path / "b.log", rows=500, keys=100, seed=7).files[0].read_bytes()
    c = write_logs(tmp_path / "c.log", rows=500, keys=100, seed=8).files[0].read_bytes()
    assert a == b != c


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_output_is_reproducible_and_holds_the_same_records(tmp_path: Path, suffix: str) -> None:
    plain = lines(write_logs(tmp_path / "flows.log", rows=300, keys=50).files[0])
    first = write_logs(tmp_path / f"one{suffix}", rows=300, keys=50).files[0]
    second = write_logs(tmp_path / f"two{suffix}", rows=300, keys=50).files[0]
    assert first.read_bytes() == second.read_bytes()
    assert lines(first) == plain


def test_rotation_leaves_timberjack_named_zstd_backups_and_a_live_flows_log(tmp_path: Path) -> None:
    summary = write_logs(tmp_path / "flows.log", rows=4_000, keys=500, rotate_mb=1)
    backups = sorted(p for p in tmp_path.iterdir() if p.name != "flows.log")
    assert len(backups) >= 2 and summary.files == [*backups, tmp_path / "flows.log"]
    for backup in backups:
        assert re.fullmatch(r"flows-2026-03-01T\d\d-\d\d-\d\d\.\d{3}-size\.log\.zst", backup.name)
    records = [lines(p) for p in summary.files]
    assert sum(len(r) for r in records) == 4_000
    for older, newer in zip(records, records[1:], strict=False):
        # One file holds every node's records; node timers are up to a minute apart within a window.
        assert max(r["start_time"] for r in older) < min(r["start_time"] for r in newer) + 60
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_elastic_documents_are_felix_records_enriched_by_fluentd_and_linseed(tmp_path: Path) -> None:
    docs = lines(write_logs(tmp_path / "export.jsonl", rows=200, keys=40, fmt="elastic").files[0])
    for doc in docs:
        assert doc["@timestamp"] == doc["end_time"] * 1000 and doc["host"] and doc["cluster"] == "cluster"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", doc["generated_time"])
        assert set(doc["policies"]) == {"all_policies", "enforced_policies", "pending_policies", "transit_policies"}


def test_goldmane_lines_use_enum_numbers_and_omit_zero_values(tmp_path: Path) -> None:
    flows = lines(write_logs(tmp_path / "emitter.ndjson", rows=400, keys=80, fmt="goldmane").files[0])
    for flow in flows:
        assert list(flow)[0] == "Key"
        assert flow["start_time"] % 300 == 0
        key = flow["Key"]
        assert isinstance(key["reporter"], int) and isinstance(key["action"], int) and isinstance(key["source_type"], int)
        assert 0 not in key.values() and "" not in key.values()
        assert all(v != 0 for k, v in flow.items() if k != "Key" and not isinstance(v, list))
    kinds = {hit["kind"] for f in flows for hit in f["Key"]["policies"]["enforced_policies"]}
    assert {6, 9} <= kinds  # Kubernetes NetworkPolicy and Profile hits


def test_whisker_list_has_15_second_buckets_and_api_spellings(tmp_path: Path) -> None:
    path = write_logs(tmp_path / "flows.json", rows=300, keys=60, fmt="whisker").files[0]
    body = json.loads(path.read_text())
    assert body["total"] == {"totalPages": 1} and len(body["items"]) == 300
    item = body["items"][0]
    assert item["start_time"].endswith("Z") and item["reporter"] in ("Src", "Dst") and item["action"] in ("Allow", "Deny")
    assert {len(i["policies"]["enforced"]) for i in body["items"]} == {1}


def test_levels_and_legacy_all_policies_are_configurable(tmp_path: Path) -> None:
    rows = lines(write_logs(tmp_path / "flows.log", rows=600, keys=120, allowed_level=3, denied_level=2, legacy_all_policies=True).files[0])
    allowed = [r for r in rows if r["action"] == "allow"]
    denied = [r for r in rows if r["action"] == "deny"]
    assert allowed and denied
    assert all(r["dest_port"] is None and r["dest_service_port"] == "-" and r["source_ip"] is None for r in allowed)
    assert all(r["dest_port"] is not None and r["source_ip"] is None and r["source_name"] == "-" for r in denied)
    assert all(list(r["policies"])[0] == "all_policies" for r in rows)


def test_rfc3339_matches_go_time_json() -> None:
    assert rfc3339(1772532000) == "2026-03-03T10:00:00Z"
    assert rfc3339(1772532000, 120_000_000) == "2026-03-03T10:00:00.12Z"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 10, "keys": 20}, "must be at least --keys"),
        ({"rows": 10, "keys": 5, "fmt": "csv"}, "unknown format"),
        ({"rows": 10, "keys": 5, "fmt": "goldmane", "rotate_mb": 1}, "felix format only"),
        ({"rows": 10, "keys": 5, "allowed_level": 4}, "0, 1, 2 or 3"),
        ({"rows": 50_000, "keys": 20_000, "namespaces": 2}, "raise --namespaces"),
    ],
)
def test_bad_requests_say_what_to_change(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        write_logs(tmp_path / "flows.log", **kwargs)
