"""Synthetic flows straight into Arrow: batches in the canonical schema, bounded in size, with exactly the requested
number of distinct replay keys, aggregated as felix aggregates, and appendable to a store."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from flowstage.schema import FLOW_SCHEMA
from flowstage.store import Store
from flowstage.synth.batches import flow_batches
from flowstage.synth.keys import key_table

REPLAY_KEY = (
    "reporter, source_type, source_namespace, source_name_aggr, source_name, source_ip, source_labels, "
    "dest_type, dest_namespace, dest_name_aggr, dest_name, dest_ip, dest_labels, proto, dest_port"
)


def table(rows: int, keys: int, **kw: object) -> pa.Table:
    return pa.Table.from_batches(list(flow_batches(rows, keys, **kw)), schema=FLOW_SCHEMA)  # type: ignore[arg-type]


def query(flows: pa.Table, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.register("flows", flows)
    return con.sql(sql).fetchall()


def test_batches_are_in_the_canonical_schema_and_never_larger_than_asked() -> None:
    batches = list(flow_batches(5_000, 700, batch_rows=1_024))
    assert sum(b.num_rows for b in batches) == 5_000
    assert all(b.schema.equals(FLOW_SCHEMA) and b.num_rows <= 1_024 for b in batches)


@pytest.mark.parametrize("keys", [1, 37, 2_500])
def test_the_number_of_distinct_replay_keys_is_exactly_the_one_requested(keys: int) -> None:
    flows = table(max(keys * 3, 10), keys)
    assert query(flows, f"SELECT count(*) FROM (SELECT DISTINCT {REPLAY_KEY} FROM flows)") == [(keys,)]
    # Without names and IPs too: one denied pod pair stands for each denied flow.
    no_names = REPLAY_KEY.replace("source_name, source_ip, ", "").replace("dest_name, dest_ip, ", "")
    assert query(flows, f"SELECT count(*) FROM (SELECT DISTINCT {no_names} FROM flows)") == [(keys,)]


def test_pod_to_pod_flows_come_with_both_reporters() -> None:
    kt = key_table(3_000)
    pairs: dict[tuple, set[str]] = {}
    for k in kt.keys:
        if k.source.type == k.dest.type == "wep" and k.action == "allow":
            pairs.setdefault((k.source, k.dest, k.proto, k.dest_port), set()).add(k.reporter)
    both = sum(1 for reporters in pairs.values() if reporters == {"src", "dst"})
    assert both / len(pairs) > 0.95


def test_allowed_rows_are_aggregated_and_denied_rows_keep_pod_names_and_ips() -> None:
    flows = table(20_000, 4_000)
    assert query(flows, "SELECT count(*) FROM flows WHERE action = 'allow' AND (source_ip IS NOT NULL OR dest_name IS NOT NULL)") == [(0,)]
    denied = query(flows, "SELECT count(*), count(source_ip), count(dest_ip), count(source_port) FROM flows WHERE action = 'deny' AND reporter = 'dst'")
    n, source_ips, dest_ips, source_ports = denied[0]
    assert n > 0 and source_ips == dest_ips == n and source_ports == 0


def test_traffic_is_skewed_and_every_key_appears() -> None:
    flows = table(30_000, 1_000)
    counts = [c for (c,) in query(flows, f"SELECT count(*) FROM flows GROUP BY {REPLAY_KEY} ORDER BY 1 DESC")]
    # Busy flows are logged in every window, quiet ones now and then; every one at least once.
    windows = query(flows, "SELECT count(DISTINCT epoch(start_time)::BIGINT // 300) FROM flows")[0][0]
    assert len(counts) == 1_000 and counts[0] == windows and 1 <= counts[-1] < windows / 3
    bytes_by_key = [b for (b,) in query(flows, f"SELECT sum(bytes_in + bytes_out) FROM flows GROUP BY {REPLAY_KEY} ORDER BY 1 DESC")]
    assert sum(bytes_by_key[:10]) > 0.3 * sum(bytes_by_key)


def test_rows_per_key_follow_a_zipf_law_unless_skew_is_zero() -> None:
    per_key = f"SELECT count(*) FROM flows GROUP BY {REPLAY_KEY} ORDER BY 1 DESC"
    counts = [c for (c,) in query(table(50_000, 1_000), per_key)]
    # A tenth of the keys carry most rows; the typical key is logged far less often than the mean.
    assert sum(counts[:100]) > 0.5 * 50_000 and counts[500] < 50 / 2
    flat = [c for (c,) in query(table(50_000, 1_000, skew=0.0), per_key)]
    assert flat[0] - flat[-1] <= 1


def test_a_slice_of_the_period_holds_the_flows_alive_then() -> None:
    flows = table(50_000, 2_000)
    first_tenth = query(flows, f"SELECT count(*) FROM (SELECT DISTINCT {REPLAY_KEY} FROM flows WHERE source_line <= 5000)")
    assert first_tenth[0][0] < 2_000 / 2


def test_both_reporters_of_a_connection_are_logged_in_the_same_windows() -> None:
    windows_per_pair = query(table(20_000, 1_000), """
        SELECT count(DISTINCT windows) FROM (
            SELECT source_name_aggr, dest_name_aggr, dest_port, proto, reporter,
                   list_sort(list(DISTINCT epoch(start_time)::BIGINT // 300)) AS windows
            FROM flows WHERE source_type = 'wep' AND dest_type = 'wep' AND action = 'allow'
            GROUP BY ALL)
        GROUP BY source_name_aggr, dest_name_aggr, dest_port, proto HAVING count(*) = 2""")
    # The same windows, but for the rare pair where one half got the odd row that makes the total exact.
    assert len(windows_per_pair) > 100 and sum(n == 1 for (n,) in windows_per_pair) > 0.9 * len(windows_per_pair)


def test_rows_follow_the_windows_and_carry_policy_traces() -> None:
    flows = table(4_000, 500)
    assert query(flows, "SELECT count(*) FROM flows WHERE end_time - start_time <> INTERVAL 300 SECOND") == [(0,)]
    assert query(flows, "SELECT bool_and(len(enforced_policies) = 1 AND len(pending_policies) = 1) FROM flows") == [(True,)]
    kinds = {k for (k,) in query(flows, "SELECT DISTINCT enforced_policies[1].kind FROM flows")}
    assert {"pro", "knp"} <= kinds
    staged = query(flows, "SELECT count(*) FROM flows WHERE pending_policies[1].staged")
    assert staged[0][0] > 0


def test_the_same_seed_gives_the_same_rows() -> None:
    assert table(2_000, 300, seed=3).equals(table(2_000, 300, seed=3))
    assert not table(2_000, 300, seed=3).equals(table(2_000, 300, seed=4))


def test_batches_append_to_a_store_and_query_back(tmp_path) -> None:
    store = Store.open(tmp_path / "store", create=True)
    written = store.append_flows(flow_batches(3_000, 400, batch_rows=1_000), source="synth:test")
    assert written == 3_000
    con = store.connect()
    assert con.sql(f"SELECT count(*), count(DISTINCT ({REPLAY_KEY})) FROM flows").fetchall() == [(3_000, 400)]
