"""Fidelity: row by row, does the replayed model reproduce what the dataplane logged, and if not, why?"""

from __future__ import annotations

from pathlib import Path

from replay_helpers import LESSON_POLICIES, flow, hit, make_store, pod, profile_allow, query, write_policies

from flowstage.replay import load_inputs, replay

FRONTEND = pod("prod", "frontend", env="prod")
BACKEND = pod("prod", "backend", env="prod")
DATABASE = pod("prod", "database", env="prod")
LOADGEN = pod("staging", "loadgen", env="staging")

LOCKDOWN_EOT = hit(0, "default", "sgnp", "backend-lockdown-staged", "deny", -1)
DB_ALLOW = hit(0, "default", "gnp", "database-allow-from-backend", "allow", 0)
DB_EOT = hit(0, "default", "gnp", "database-allow-from-backend", "deny", -1)


def fidelity(tmp_path: Path, rows: list[dict], policies: str = LESSON_POLICIES) -> dict[int, dict]:
    store = make_store(tmp_path / "store", rows)
    replay(store, load_inputs([write_policies(tmp_path / "policies.yaml", policies)]))
    found = query(store, "SELECT * FROM fidelity ORDER BY source_line")
    assert len(found) == len(rows)
    return {r["source_line"]: r for r in found}


def test_agreeing_rows_have_no_disagreement(tmp_path):
    got = fidelity(tmp_path, [
        flow(BACKEND, DATABASE, reporter="dst", line=1, enforced_policies=[DB_ALLOW], pending_policies=[DB_ALLOW]),
        flow(FRONTEND, BACKEND, reporter="dst", line=2, enforced_policies=[profile_allow("prod")],
             pending_policies=[LOCKDOWN_EOT]),
        flow(LOADGEN, DATABASE, reporter="dst", line=3, action="deny", enforced_policies=[DB_EOT]),
    ])
    for line in (1, 2, 3):
        assert got[line]["current_agrees"] is True
        assert got[line]["current_same_decider"] is True
        assert got[line]["current_disagreement"] is None
    assert (got[2]["logged_pending_action"], got[2]["pending_verdict"], got[2]["pending_agrees"]) == (
        "deny", "deny", True)
    assert got[2]["pending_same_decider"] is True
    assert got[2]["pending_disagreement"] is None
    assert got[3]["pending_disagreement"] == "no_logged_trace"
    assert got[3]["pending_agrees"] is None


def test_end_of_tier_hits_agree_whichever_policy_the_dataplane_named_as_trigger(tmp_path):
    # The dataplane names the last enforced policy of the tier as the trigger; flowstage names the first.
    other_trigger = hit(0, "default", "gnp", "some-other-policy-in-the-tier", "deny", -1)
    got = fidelity(tmp_path, [
        flow(LOADGEN, DATABASE, reporter="dst", line=1, action="deny", enforced_policies=[other_trigger]),
    ])
    assert (got[1]["current_agrees"], got[1]["current_same_decider"]) == (True, True)


def test_a_logged_policy_missing_from_the_supplied_set_is_named_as_the_cause(tmp_path):
    # The dataplane denied with a policy the user did not pass to the replay.
    unsupplied_deny = hit(0, "security", "gnp", "quarantine-hosts", "deny", 0)
    got = fidelity(tmp_path, [
        flow(FRONTEND, BACKEND, reporter="dst", line=1, action="deny", enforced_policies=[unsupplied_deny]),
    ])
    assert got[1]["current_agrees"] is False
    assert got[1]["current_disagreement"] == "policy_not_supplied"
    assert (got[1]["logged_tier"], got[1]["logged_policy"], got[1]["logged_rule"]) == (
        "security", "quarantine-hosts", 0)


def test_a_different_verdict_with_every_policy_supplied_is_verdict_differs(tmp_path):
    got = fidelity(tmp_path, [
        flow(LOADGEN, DATABASE, reporter="dst", line=1, action="allow", enforced_policies=[DB_ALLOW]),
    ])
    assert got[1]["current_agrees"] is False
    assert got[1]["current_disagreement"] == "verdict_differs"


def test_the_same_verdict_by_another_decider_is_flagged(tmp_path):
    got = fidelity(tmp_path, [
        flow(FRONTEND, BACKEND, reporter="src", line=1, enforced_policies=[DB_ALLOW]),
    ])
    assert (got[1]["current_agrees"], got[1]["current_same_decider"]) == (True, False)
    assert got[1]["current_disagreement"] == "different_deciding_policy"


def test_unknown_replayed_verdicts_are_not_counted_as_agreement(tmp_path):
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
"""
    got = fidelity(tmp_path, [flow({"type": "net", "name_aggr": "pvt"}, DATABASE, reporter="dst", line=1)], office)
    assert got[1]["current_agrees"] is None
    assert got[1]["current_disagreement"] == "unknown_verdict"
    assert got[1]["current_reason"] == "source_ip_unknown"


def test_legacy_all_policies_traces_are_compared_without_their_staged_hits(tmp_path):
    legacy = [
        hit(0, "default", "sgnp", "backend-lockdown-staged", "deny", -1),
        hit(1, "__PROFILE__", "pro", "kns.prod", "allow", 0),
    ]
    got = fidelity(tmp_path, [flow(FRONTEND, BACKEND, reporter="dst", line=1, all_policies=legacy)])
    assert got[1]["logged_trace"] == "all_policies"
    assert (got[1]["logged_tier"], got[1]["logged_policy"]) == ("__PROFILE__", "kns.prod")
    assert (got[1]["current_agrees"], got[1]["current_same_decider"]) == (True, True)


def test_legacy_tier_prefixed_policy_names_match_the_resource_names(tmp_path):
    tiered = """
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: security
spec:
  order: 100
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: security.block-loadgen
spec:
  tier: security
  order: 10
  selector: app == 'database'
  ingress:
  - action: Deny
    source:
      selector: app == 'loadgen'
  - action: Pass
"""
    # Pre-3.32 logs strip the tier prefix from the name: `security.block-loadgen` is logged as `block-loadgen`.
    logged = hit(0, "security", "gnp", "block-loadgen", "deny", 0, raw="0|security|security.block-loadgen|deny|0")
    got = fidelity(tmp_path, [flow(LOADGEN, DATABASE, reporter="dst", line=1, action="deny",
                                   enforced_policies=[logged])], tiered)
    assert (got[1]["current_policy"], got[1]["current_agrees"], got[1]["current_same_decider"]) == (
        "security.block-loadgen", True, True)
    assert got[1]["current_disagreement"] is None
