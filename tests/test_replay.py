"""Replay: every stored row gets its verdict under the current, proposed and pending sets, through the views."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from replay_helpers import (
    LESSON_POLICIES,
    SAFETY_NET,
    flow,
    hit,
    make_store,
    pod,
    profile_allow,
    query,
    write_policies,
)

from flowstage.replay import PolicyProblemsError, load_inputs, replay
from flowstage.schema import COLUMN_NAMES
from flowstage.store import Store
from flowstage.synth.batches import flow_batches
from flowstage.synth.policies import write_policies as synth_policies

FRONTEND = pod("prod", "frontend", env="prod")
BACKEND = pod("prod", "backend", env="prod")
DATABASE = pod("prod", "database", env="prod")
LOADGEN = pod("staging", "loadgen", env="staging")


def lesson_rows() -> list[dict]:
    allow_db = [hit(0, "default", "gnp", "database-allow-from-backend", "allow", 0)]
    deny_db = [hit(0, "default", "gnp", "database-allow-from-backend", "deny", -1)]
    return [
        flow(FRONTEND, BACKEND, reporter="src", line=1, enforced_policies=[profile_allow("prod")]),
        flow(FRONTEND, BACKEND, reporter="dst", line=2, enforced_policies=[profile_allow("prod")]),
        flow(FRONTEND, BACKEND, reporter="src", line=3, minute=5, enforced_policies=[profile_allow("prod")]),
        flow(FRONTEND, BACKEND, reporter="dst", line=4, minute=5, enforced_policies=[profile_allow("prod")]),
        flow(BACKEND, DATABASE, reporter="src", line=5, enforced_policies=[profile_allow("prod")]),
        flow(BACKEND, DATABASE, reporter="dst", line=6, enforced_policies=allow_db),
        flow(LOADGEN, DATABASE, reporter="dst", line=7, action="deny", enforced_policies=deny_db),
    ]


@pytest.fixture
def lesson_store(tmp_path: Path):
    store = make_store(tmp_path / "store", lesson_rows())
    policies = write_policies(tmp_path / "lesson.yaml", LESSON_POLICIES)
    return store, policies


def by_line(store, columns: str) -> dict[int, dict]:
    return {r["source_line"]: r for r in query(store, f"SELECT source_line, {columns} FROM replay ORDER BY 1")}


def test_every_row_gets_the_verdict_of_its_key(lesson_store):
    store, policies = lesson_store
    summary = replay(store, load_inputs([policies]))

    rows = by_line(
        store,
        "reporter, current_verdict, current_tier, current_policy, current_rule, proposed_verdict, proposed_tier, "
        "proposed_policy, proposed_rule, proposed_staged, proposed_reason, would_break",
    )
    assert len(rows) == 7
    # The destination reports ingress: allowed by the namespace profile now, denied at the end of the default
    # tier once the staged lockdown is promoted; the lockdown is named as the trigger.
    for line in (2, 4):
        assert rows[line]["current_verdict"] == "allow"
        assert (rows[line]["current_tier"], rows[line]["current_policy"], rows[line]["current_rule"]) == (
            "__PROFILE__", "kns.prod", 0)
        assert rows[line]["proposed_verdict"] == "deny"
        assert (rows[line]["proposed_tier"], rows[line]["proposed_policy"], rows[line]["proposed_rule"]) == (
            "default", "backend-lockdown-staged", -1)
        assert rows[line]["proposed_staged"] is True
        assert rows[line]["proposed_reason"] is None
        assert rows[line]["would_break"] is True
    # The source reports egress, which no policy governs.
    for line in (1, 3, 5):
        assert (rows[line]["current_verdict"], rows[line]["proposed_verdict"]) == ("allow", "allow")
        assert rows[line]["would_break"] is False
    assert (rows[6]["current_policy"], rows[6]["current_rule"], rows[6]["proposed_verdict"]) == (
        "database-allow-from-backend", 0, "allow")
    assert (rows[7]["current_verdict"], rows[7]["current_policy"], rows[7]["current_rule"]) == (
        "deny", "database-allow-from-backend", -1)

    assert (summary.rows, summary.keys) == (7, 5)
    assert summary.would_break_rows == 2
    assert summary.would_break_bytes == 2 * 1100
    assert summary.unknown_rows == 0
    assert summary.fidelity == 1.0


def test_each_distinct_key_is_stored_once_and_every_flows_column_survives(lesson_store):
    store, policies = lesson_store
    replay(store, load_inputs([policies]))

    verdicts = query(store, "SELECT replay_key, rows, rows_allow, rows_deny FROM verdicts")
    assert len(verdicts) == 5
    assert len({v["replay_key"] for v in verdicts}) == 5
    assert sum(v["rows"] for v in verdicts) == 7
    columns = [r["column_name"] for r in query(store, "DESCRIBE replay")]
    assert columns[: len(COLUMN_NAMES)] == list(COLUMN_NAMES)
    for name in ("row_id", "replay_key", "current_policy_kind", "proposed_policy_kind", "pending_verdict",
                 "pending_policy", "would_break", "newly_allowed", "verdict_changed"):
        assert name in columns
    assert query(store, "SELECT row_id FROM replay WHERE source_line = 7") == [{"row_id": "/logs/flows.log:7"}]


def test_rows_ingested_after_the_replay_are_marked_not_replayed(lesson_store):
    store, policies = lesson_store
    replay(store, load_inputs([policies]))
    late = flow(FRONTEND, pod("prod", "cache", env="prod"), reporter="dst", line=99)
    make_store(store.root, [late])

    rows = query(store, "SELECT replayed, current_verdict, would_break FROM replay WHERE source_line = 99")
    assert rows == [{"replayed": False, "current_verdict": None, "would_break": False}]
    assert query(store, "SELECT count(*) AS n FROM replay") == [{"n": 8}]


def test_a_safety_net_keeps_the_lockdown_from_breaking_and_says_so(lesson_store, tmp_path):
    store, policies = lesson_store
    net = write_policies(tmp_path / "safety-net.yaml", SAFETY_NET)
    summary = replay(store, load_inputs([policies, net]))

    assert summary.would_break_rows == 0
    assert summary.safety_nets == ["zzz-final-allow-everything"]
    # The net sorts before the order-less lockdown: it is what keeps frontend -> backend open after promotion
    # (and, being applied here but not in the logged cluster, it would also open loadgen -> database).
    assert summary.kept_open_by_nets_rows == 3
    held = query(
        store,
        "SELECT source_line, proposed_without_nets_policy FROM replay "
        "WHERE proposed_policy = 'zzz-final-allow-everything' AND proposed_without_nets_verdict = 'deny' "
        "ORDER BY source_line",
    )
    assert held == [
        {"source_line": 2, "proposed_without_nets_policy": "backend-lockdown-staged"},
        {"source_line": 4, "proposed_without_nets_policy": "backend-lockdown-staged"},
        {"source_line": 7, "proposed_without_nets_policy": "database-allow-from-backend"},
    ]
    assert query(store, "SELECT policy, safety_net FROM replay_policies WHERE set_name = 'current' ORDER BY 1") == [
        {"policy": "database-allow-from-backend", "safety_net": False},
        {"policy": "zzz-final-allow-everything", "safety_net": True},
    ]


def test_pending_is_evaluated_only_for_rows_that_log_a_pending_trace(tmp_path):
    rows = [
        flow(FRONTEND, BACKEND, reporter="dst", line=1,
             pending_policies=[hit(0, "default", "sgnp", "backend-lockdown-staged", "deny", -1)]),
        flow(FRONTEND, BACKEND, reporter="src", line=2),
    ]
    store = make_store(tmp_path / "store", rows)
    summary = replay(store, load_inputs([write_policies(tmp_path / "p.yaml", LESSON_POLICIES)]))

    got = by_line(store, "pending_verdict, pending_policy, pending_rule")
    assert (got[1]["pending_verdict"], got[1]["pending_policy"], got[1]["pending_rule"]) == (
        "deny", "backend-lockdown-staged", -1)
    assert got[2]["pending_verdict"] is None
    assert (summary.pending_compared_rows, summary.pending_agree_rows) == (1, 1)


def test_unknown_verdicts_carry_their_reason_into_the_replay_view(tmp_path):
    office = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: database-from-office
spec:
  selector: app == 'database'
  ingress:
  - action: Allow
    source:
      nets: [10.20.0.0/16]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: backend-from-monitoring-namespaces
spec:
  selector: app == 'backend'
  ingress:
  - action: Allow
    source:
      namespaceSelector: purpose == 'monitoring'
"""
    private_peer = {"type": "net", "name_aggr": "pvt"}
    rows = [
        # A private address aggregated away: it may or may not be inside 10.20.0.0/16.
        flow(private_peer, DATABASE, reporter="dst", line=1),
        # A public address can never be inside a private CIDR: definite despite the missing IP.
        flow({"type": "net", "name_aggr": "pub"}, DATABASE, reporter="dst", line=2, action="deny"),
        # The namespace's labels decide, and no Namespace list was supplied.
        flow(pod("metrics", "prometheus"), BACKEND, reporter="dst", line=3),
        # The destination reports, but it is not an endpoint with policy.
        flow(FRONTEND, {"type": "net", "name_aggr": "pub"}, reporter="dst", line=4),
    ]
    store = make_store(tmp_path / "store", rows)
    summary = replay(store, load_inputs([write_policies(tmp_path / "p.yaml", office)]))

    got = by_line(store, "current_verdict, current_reason, current_policy")
    assert (got[1]["current_verdict"], got[1]["current_reason"]) == ("unknown", "source_ip_unknown")
    assert got[1]["current_policy"] == "database-from-office"
    assert (got[2]["current_verdict"], got[2]["current_reason"]) == ("deny", None)
    assert (got[3]["current_verdict"], got[3]["current_reason"]) == ("unknown", "namespace_labels_unknown")
    assert (got[4]["current_verdict"], got[4]["current_reason"]) == ("unknown", "not_a_policy_endpoint")
    assert summary.unknown_rows == 3


def test_an_empty_store_replays_to_empty_views(tmp_path):
    store = make_store(tmp_path / "store", [])
    summary = replay(store, load_inputs([write_policies(tmp_path / "p.yaml", LESSON_POLICIES)]))

    assert (summary.rows, summary.keys, summary.fidelity) == (0, 0, None)
    for view in ("verdicts", "replay", "connections", "fidelity"):
        assert query(store, f"SELECT count(*) AS n FROM {view}") == [{"n": 0}]
    assert query(store, "SELECT keys FROM replay_info") == [{"keys": 0}]


def test_source_ports_join_the_key_only_when_a_rule_matches_on_them(tmp_path):
    rows = [
        flow(FRONTEND, BACKEND, reporter="dst", line=1, source_port=40001),
        flow(FRONTEND, BACKEND, reporter="dst", line=2, source_port=40002),
    ]
    store = make_store(tmp_path / "store", rows)
    summary = replay(store, load_inputs([write_policies(tmp_path / "p.yaml", LESSON_POLICIES)]))
    assert (summary.keys, summary.source_port_in_key) == (1, False)

    by_source_port = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: backend-from-low-ports
spec:
  selector: app == 'backend'
  ingress:
  - action: Allow
    protocol: TCP
    source:
      ports: ["40000:40001"]
"""
    summary = replay(store, load_inputs([write_policies(tmp_path / "q.yaml", by_source_port)]))
    assert (summary.keys, summary.source_port_in_key) == (2, True)
    assert [r["current_verdict"] for r in query(store, "SELECT current_verdict FROM replay ORDER BY source_line")] == [
        "allow", "deny"]


def test_connections_count_a_double_reported_connection_once(lesson_store):
    store, policies = lesson_store
    replay(store, load_inputs([policies]))

    conns = query(
        store,
        "SELECT source_name_aggr, dest_name_aggr, start_time, reporters, rows, bytes, bytes_to_dest, action, "
        "current_verdict, proposed_verdict, would_break, breaking_policy, breaking_rule, breaking_staged "
        "FROM connections ORDER BY dest_name_aggr, source_name_aggr, start_time",
    )
    frontend_backend = [c for c in conns if c["dest_name_aggr"].startswith("backend")]
    assert len(frontend_backend) == 2  # two windows
    first = frontend_backend[0]
    assert first["reporters"] == ["dst", "src"]
    assert first["rows"] == 2
    # Both reporters saw the same exchange (1000 bytes one way, 100 back): counted once, not twice.
    assert (first["bytes_to_dest"], first["bytes"]) == (1000, 1100)
    assert (first["current_verdict"], first["proposed_verdict"], first["would_break"]) == ("allow", "deny", True)
    assert (first["breaking_policy"], first["breaking_rule"], first["breaking_staged"]) == (
        "backend-lockdown-staged", -1, True)
    denied = [c for c in conns if c["source_name_aggr"].startswith("loadgen")]
    assert [(c["reporters"], c["action"], c["would_break"]) for c in denied] == [(["dst"], "deny", False)]
    assert len(conns) == 4


def test_worker_processes_reach_the_same_verdicts_as_one_process(lesson_store, tmp_path):
    store, policies = lesson_store
    net = write_policies(tmp_path / "safety-net.yaml", SAFETY_NET)
    inputs = load_inputs([policies, net])
    columns = "* EXCLUDE (replay_key)"
    alone = replay(store, inputs, workers=1)
    one = query(store, f"SELECT {columns} FROM verdicts ORDER BY ALL")
    shared = replay(store, inputs, workers=2, batch_keys=2)
    two = query(store, f"SELECT {columns} FROM verdicts ORDER BY ALL")

    assert (alone.workers, shared.workers) == (1, 2)
    assert one == two
    assert shared.decisions == alone.decisions
    assert (shared.rows, shared.keys, shared.kept_open_by_nets_rows) == (alone.rows, alone.keys, alone.kept_open_by_nets_rows)


def test_every_key_counts_its_rows_by_logged_action_and_pending_verdict_with_zeros_not_nulls(lesson_store):
    # A key none of whose rows carries a pending trace (or a logged deny) counts 0 such rows, not NULL.
    store, policies = lesson_store
    replay(store, load_inputs([policies]))
    counts = "rows, rows_allow, rows_deny, bytes, bytes_allow, rows_pending, rows_pending_allow, rows_pending_deny"
    found = query(store, f"SELECT {counts} FROM verdicts")
    assert found and all(value is not None for row in found for value in row.values())
    assert any(row["rows_pending"] == 0 for row in found)  # keys without pending rows are there
    assert all(row["rows"] == row["rows_allow"] + row["rows_deny"] for row in found)
    assert all(row["rows_pending"] >= row["rows_pending_allow"] + row["rows_pending_deny"] for row in found)


def test_a_replay_leaves_the_callers_garbage_collector_as_it_found_it(lesson_store):
    # Judging freezes the heap and raises the collector's thresholds while it runs (in this process with one
    # worker, before forking with two); a notebook that replays must get its collector back unchanged.
    store, policies = lesson_store
    inputs = load_inputs([policies])
    before = gc.get_threshold()
    for workers in (1, 2):
        replay(store, inputs, workers=workers, batch_keys=2)
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0


def test_worker_processes_take_batches_larger_than_a_pipe_holds(tmp_path):
    # Thousands of keys per batch: neither a batch nor its verdicts fit in a pipe at once, and the next batch goes
    # out while this one is written.
    store = Store.open(tmp_path / "store", create=True)
    store.append_flows(flow_batches(16_000, 8_000, allowed_level=1), source="synth")
    synth_policies(tmp_path / "policies.yaml", 50)
    inputs = load_inputs([tmp_path / "policies.yaml"])
    alone = replay(store, inputs, workers=1)
    one = query(store, "SELECT * EXCLUDE (replay_key) FROM verdicts ORDER BY ALL")
    finished: dict[str, object] = {}
    judging = threading.Thread(
        target=lambda: finished.update(summary=replay(store, inputs, workers=2, batch_keys=4_000)), daemon=True
    )
    judging.start()
    judging.join(timeout=300)
    assert "summary" in finished, "two workers did not finish judging what one worker judged"
    assert query(store, "SELECT * EXCLUDE (replay_key) FROM verdicts ORDER BY ALL") == one
    assert finished["summary"].decisions == alone.decisions and alone.keys == 8_000


def test_replay_info_records_the_inputs_and_what_promotion_does(lesson_store):
    store, policies = lesson_store
    summary = replay(store, load_inputs([policies]))

    (info,) = query(store, "SELECT * FROM replay_info")
    assert info["run_id"] == summary.run_id
    assert [(i["role"], Path(i["path"]).name) for i in info["inputs"]] == [("policies", "lesson.yaml")]
    assert len(info["inputs"][0]["sha256"]) == 64
    assert [(p["policy"], p["action"]) for p in info["promotion"]] == [("backend-lockdown-staged", "adds")]
    assert (info["rows"], info["keys"], info["would_break_rows"]) == (7, 5, 2)
    rules = query(store, "SELECT set_name, policy, direction, rule, action FROM replay_rules ORDER BY 1, 2")
    assert {"set_name": "current", "policy": "database-allow-from-backend", "direction": "ingress", "rule": 0,
            "action": "allow"} in rules


def test_a_new_replay_replaces_the_previous_one(lesson_store, tmp_path):
    store, policies = lesson_store
    first = replay(store, load_inputs([policies]))
    net = write_policies(tmp_path / "safety-net.yaml", SAFETY_NET)
    second = replay(store, load_inputs([policies, net]))

    assert query(store, "SELECT run_id FROM replay_info") == [{"run_id": second.run_id}]
    assert first.run_id != second.run_id
    assert query(store, "SELECT count(*) AS n FROM verdicts") == [{"n": 5}]
    assert query(store, "SELECT count(*) AS n FROM replay WHERE would_break") == [{"n": 0}]


def test_an_interrupted_replay_leaves_the_previous_replay_visible(lesson_store, tmp_path):
    store, policies = lesson_store
    first = replay(store, load_inputs([policies]))
    net = write_policies(tmp_path / "safety-net.yaml", SAFETY_NET)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay(store, load_inputs([policies, net]), batch_keys=2, on_progress=interrupt)

    assert query(store, "SELECT run_id FROM replay_info") == [{"run_id": first.run_id}]
    assert query(store, "SELECT count(*) AS n FROM replay WHERE would_break") == [{"n": 2}]
    assert not list(store.root.glob(".replay-*"))


def test_a_replay_killed_mid_run_leaves_the_previous_replay_visible(lesson_store, tmp_path):
    store, policies = lesson_store
    first = replay(store, load_inputs([policies]))
    net = write_policies(tmp_path / "safety-net.yaml", SAFETY_NET)
    script = textwrap.dedent(
        f"""
        import os, signal
        from flowstage.replay import load_inputs, replay
        from flowstage.store import Store

        def die(done, total):
            os.kill(os.getpid(), signal.SIGKILL)

        replay(Store.open({str(store.root)!r}), load_inputs([{str(policies)!r}, {str(net)!r}]),
               batch_keys=2, on_progress=die)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr

    assert query(store, "SELECT run_id FROM replay_info") == [{"run_id": first.run_id}]
    assert query(store, "SELECT count(*) AS n FROM replay WHERE would_break") == [{"n": 2}]
    # The dead run's private folder is invisible to readers and cleared by the next replay.
    assert len(list(store.root.glob(".replay-*"))) == 1
    replay(store, load_inputs([policies]))
    assert not list(store.root.glob(".replay-*"))


def test_policy_errors_stop_the_replay_and_are_listed(lesson_store, tmp_path):
    store, _ = lesson_store
    broken = write_policies(
        tmp_path / "broken.yaml",
        """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: broken
spec:
  selector: app == 'backend
  ingress:
  - action: Allow
""",
    )
    with pytest.raises(PolicyProblemsError) as caught:
        replay(store, load_inputs([broken]))
    assert "broken.yaml" in str(caught.value)
    assert "spec.selector" in str(caught.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "flowstage", *args], capture_output=True, text=True, env=env)


def test_cli_prints_the_summary_line_and_json(lesson_store):
    store, policies = lesson_store
    done = run_cli("replay", "--store", str(store.root), "--policies", str(policies))
    assert done.returncode == 0, done.stderr
    assert "replayed 7 rows (5 distinct keys): 2 would break (2.1 KiB), 0 unknown, fidelity 100.0% current" in (
        done.stdout)

    as_json = run_cli("replay", "--store", str(store.root), "--policies", str(policies), "--json")
    summary = json.loads(as_json.stdout)
    assert (summary["rows"], summary["keys"], summary["would_break_rows"], summary["fidelity"]) == (7, 5, 2, 1.0)


def test_cli_refuses_policy_errors_with_exit_2_and_no_traceback(lesson_store, tmp_path):
    store, _ = lesson_store
    broken = write_policies(tmp_path / "broken.yaml", "kind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  selector: '&&'\n")
    done = run_cli("replay", "--store", str(store.root), "--policies", str(broken))
    assert done.returncode == 2
    assert "broken.yaml" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_help_says_what_is_not_replayed():
    done = run_cli("replay", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "forwarded_not_modelled" in text
    assert "not_a_policy_endpoint" in text
    assert "flowstage replay --store" in text
