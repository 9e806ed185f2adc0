"""The staged-policy lesson end to end on sample_logs/: ingest, replay with the lesson's two policies, and again
with its safety net, asserting exactly what the lesson says promotion would and would not do."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_helpers import query

from flowstage.ingest.pipeline import ingest
from flowstage.replay import load_inputs, replay
from flowstage.store import Store

SAMPLE = Path(__file__).resolve().parents[1] / "sample_logs"
LESSON = SAMPLE / "policies" / "lesson.yaml"
SAFETY_NET = SAMPLE / "policies" / "safety-net.yaml"
INVENTORY = {"namespaces": SAMPLE / "inventory" / "namespaces.yaml", "pods": SAMPLE / "inventory" / "pods.yaml"}

BACKEND_TO_DATABASE = (
    "source_namespace = 'prod' AND source_name_aggr LIKE 'backend-%' "
    "AND dest_namespace = 'prod' AND dest_name_aggr LIKE 'database-%' AND dest_port = 8080"
)
FRONTEND_TO_BACKEND = (
    "source_namespace = 'prod' AND source_name_aggr LIKE 'frontend-%' "
    "AND dest_namespace = 'prod' AND dest_name_aggr LIKE 'backend-%'"
)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store.open(tmp_path_factory.mktemp("lesson") / "store", create=True)
    ingest([str(SAMPLE / "logs")], store)
    return store


@pytest.fixture(scope="module")
def lesson(sample_store: Store):
    summary = replay(sample_store, load_inputs([LESSON], **INVENTORY))
    return sample_store, summary


def distinct(store: Store, columns: str, where: str) -> list[dict]:
    return query(store, f"SELECT DISTINCT {columns} FROM replay WHERE {where} ORDER BY ALL")


def test_backend_to_database_stays_allowed_by_the_enforced_policy(lesson):
    store, _ = lesson
    assert distinct(
        store,
        "current_verdict, current_policy, current_rule, proposed_verdict, proposed_policy, proposed_rule, would_break",
        f"{BACKEND_TO_DATABASE} AND reporter = 'dst'",
    ) == [{
        "current_verdict": "allow", "current_policy": "database-allow-from-backend", "current_rule": 0,
        "proposed_verdict": "allow", "proposed_policy": "database-allow-from-backend", "proposed_rule": 0,
        "would_break": False,
    }]


def test_frontend_to_backend_is_allowed_now_and_breaks_at_the_end_of_the_default_tier(lesson):
    store, summary = lesson
    assert distinct(
        store,
        "action, current_verdict, current_tier, current_policy, proposed_verdict, proposed_tier, proposed_policy, "
        "proposed_rule, proposed_staged, would_break",
        f"{FRONTEND_TO_BACKEND} AND reporter = 'dst'",
    ) == [{
        "action": "allow", "current_verdict": "allow", "current_tier": "__PROFILE__", "current_policy": "kns.prod",
        "proposed_verdict": "deny", "proposed_tier": "default", "proposed_policy": "backend-lockdown-staged",
        "proposed_rule": -1, "proposed_staged": True, "would_break": True,
    }]
    # The client's egress is governed by no policy: its rows never break.
    assert distinct(store, "would_break", f"{FRONTEND_TO_BACKEND} AND reporter = 'src'") == [{"would_break": False}]
    # Only traffic into prod/backend breaks, and frontend -> backend is the busiest of it.
    assert distinct(store, "dest_namespace, split_part(dest_name_aggr, '-', 1) AS dest", "would_break") == [
        {"dest_namespace": "prod", "dest": "backend"}]
    (busiest,) = query(
        store,
        "SELECT source_namespace, split_part(source_name_aggr, '-', 1) AS source, breaking_policy, breaking_rule "
        "FROM connections WHERE would_break GROUP BY ALL ORDER BY sum(num_flows) DESC LIMIT 1",
    )
    assert busiest == {"source_namespace": "prod", "source": "frontend", "breaking_policy": "backend-lockdown-staged",
                       "breaking_rule": -1}
    assert summary.would_break_rows == query(store, "SELECT count(*) AS n FROM replay WHERE would_break")[0]["n"] > 0


def test_the_model_reproduces_what_the_dataplane_logged(lesson):
    store, summary = lesson
    # Every row, in every format, agrees with the logged action and the logged pending trace, decider included.
    assert query(
        store, "SELECT current_disagreement, pending_disagreement, count(*) AS n FROM fidelity GROUP BY ALL"
    ) == [{"current_disagreement": None, "pending_disagreement": None, "n": summary.current_compared_rows}]
    assert summary.current_compared_rows == query(store, "SELECT count(*) AS n FROM flows")[0]["n"]
    assert (summary.fidelity, summary.pending_fidelity) == (1.0, 1.0)
    # Whisker logs no endpoint types: the reporting side's is inferred, so its rows are judged like the others.
    assert query(
        store,
        "SELECT DISTINCT reporter, CASE reporter WHEN 'src' THEN source_type ELSE dest_type END AS reporting_type, "
        "current_verdict = 'unknown' AS undecided FROM replay WHERE format = 'whisker' ORDER BY ALL",
    ) == [{"reporter": "dst", "reporting_type": "wep", "undecided": False},
          {"reporter": "src", "reporting_type": "wep", "undecided": False}]


def test_with_the_safety_net_the_lockdown_breaks_nothing_and_the_net_is_why(sample_store):
    summary = replay(sample_store, load_inputs([LESSON, SAFETY_NET], **INVENTORY))

    assert summary.would_break_rows == 0
    assert query(sample_store, "SELECT count(*) AS n FROM replay WHERE would_break") == [{"n": 0}]
    assert summary.safety_nets == ["zzz-final-allow-everything"]
    # zzz (order 100000) sorts before the order-less lockdown: it decides, and without it the lockdown denies.
    assert distinct(
        sample_store,
        "proposed_verdict, proposed_policy, proposed_without_nets_verdict, proposed_without_nets_policy, "
        "proposed_without_nets_rule",
        f"{FRONTEND_TO_BACKEND} AND reporter = 'dst'",
    ) == [{
        "proposed_verdict": "allow", "proposed_policy": "zzz-final-allow-everything",
        "proposed_without_nets_verdict": "deny", "proposed_without_nets_policy": "backend-lockdown-staged",
        "proposed_without_nets_rule": -1,
    }]
    kept_open = query(
        sample_store,
        "SELECT count(*) AS n FROM replay WHERE proposed_verdict = 'allow' AND proposed_without_nets_verdict = 'deny'",
    )
    assert kept_open == [{"n": summary.kept_open_by_nets_rows}]
    assert summary.kept_open_by_nets_rows > 0
