"""Every report in queries/ on a small hand-made cluster, run through the real ingest and replay.

The cluster: the lesson's `prod` namespace (frontend → backend → database), Prometheus scraping the backend, a
staging load generator the database refuses, CoreDNS in kube-system. Three staged objects: the lesson's
`backend-lockdown-staged`, a `dns-lockdown-staged` that only lets the frontend (from a namespace labelled
team=web) reach DNS, and a staged Delete of `database-allow-from-backend`. Both reporters log most
connections; one record is logged twice with copied counters (a split record).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import sqlglot
from report_stores import LESSON, SAFETY_NET, build_store, felix, hit, pod, profile
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from flowstage.policy.traffic import Reason
from flowstage.report import build_report, open_replay
from flowstage.report.build import findings_at_hand
from flowstage.report.queries import QUERIES_DIR, discover, resolve_named, run

FRONTEND = pod("prod", "frontend", env="prod")
BACKEND = pod("prod", "backend", "5c8bd9d4f", env="prod")
DATABASE = pod("prod", "database", "6f7b9c4d8", env="prod")
PROMETHEUS = pod("monitoring", "prometheus", "8675bd7b4")
LOADGEN = pod("staging", "loadgen", "9f8d7c6b5")
COREDNS = pod("kube-system", "coredns", "5d78c9869d", **{"k8s-app": "kube-dns"})

LOCKDOWN_END = hit("default", "sgnp:backend-lockdown-staged", "deny", -1)
DATABASE_ALLOW = hit("default", "gnp:database-allow-from-backend", "allow", 0)
DATABASE_END = hit("default", "gnp:database-allow-from-backend", "deny", -1)
DNS_END = hit("default", "sgnp:dns-lockdown-staged", "deny", -1)

RECORDS = [
    # line 1-4: the lesson's connection, in two hours; only the backend's ingress would deny it
    felix(FRONTEND, BACKEND, reporter="src", port=8080, flows=10, sent=5000, answered=20000,
          enforced=[profile("prod")], pending=[profile("prod")]),
    felix(FRONTEND, BACKEND, reporter="dst", port=8080, flows=10, sent=5000, answered=20000,
          enforced=[profile("prod")], pending=[LOCKDOWN_END]),
    felix(FRONTEND, BACKEND, reporter="src", port=8080, flows=6, sent=3000, answered=12000, minute=65,
          enforced=[profile("prod")], pending=[profile("prod")]),
    felix(FRONTEND, BACKEND, reporter="dst", port=8080, flows=6, sent=3000, answered=12000, minute=65,
          enforced=[profile("prod")], pending=[LOCKDOWN_END]),
    # line 5-6: Prometheus scrapes the backend's metrics port
    felix(PROMETHEUS, BACKEND, reporter="src", port=9090, flows=4,
          enforced=[profile("monitoring")], pending=[profile("monitoring")]),
    felix(PROMETHEUS, BACKEND, reporter="dst", port=9090, flows=4, enforced=[profile("prod")], pending=[LOCKDOWN_END]),
    # line 7-8: backend → database, allowed by the enforced policy
    felix(BACKEND, DATABASE, reporter="src", port=8080, flows=3, enforced=[profile("prod")], pending=[profile("prod")]),
    felix(BACKEND, DATABASE, reporter="dst", port=8080, flows=3, enforced=[DATABASE_ALLOW], pending=[DATABASE_ALLOW]),
    # line 9-10: the load generator is refused by the database today
    felix(LOADGEN, DATABASE, reporter="src", port=8080, flows=2,
          enforced=[profile("staging")], pending=[profile("staging")]),
    felix(LOADGEN, DATABASE, reporter="dst", port=8080, flows=2, action="deny",
          enforced=[DATABASE_END], pending=[DATABASE_END]),
    # line 11-13: DNS; the frontend's verdict needs the namespace labels nobody supplied
    felix(BACKEND, COREDNS, reporter="src", port=53, proto="udp", flows=20, sent=2000, answered=4000,
          enforced=[profile("prod")], pending=[profile("prod")]),
    felix(BACKEND, COREDNS, reporter="dst", port=53, proto="udp", flows=20, sent=2000, answered=4000,
          enforced=[profile("kube-system")], pending=[DNS_END]),
    felix(FRONTEND, COREDNS, reporter="dst", port=53, proto="udp", flows=8, sent=800, answered=1600,
          enforced=[profile("kube-system")], pending=[hit("default", "sgnp:dns-lockdown-staged", "allow", 0)]),
    # line 14: allowed by a policy that is not among the inputs
    felix(LOADGEN, DATABASE, reporter="dst", port=5432, flows=1,
          enforced=[hit("default", "gnp:legacy-allow", "allow", 0)],
          pending=[hit("default", "gnp:legacy-allow", "allow", 0)]),
    # line 15: line 2 again with another enforced trace and the same counters (felix split the record)
    felix(FRONTEND, BACKEND, reporter="dst", port=8080, flows=10, sent=5000, answered=20000,
          enforced=[hit("default", "gnp:tmp-allow", "allow", 0)], pending=[LOCKDOWN_END]),
]

POLICIES = LESSON + """
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: dns-lockdown-staged
spec:
  selector: k8s-app == 'kube-dns'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: UDP
    source:
      selector: app == 'frontend'
      namespaceSelector: team == 'web'
    destination:
      ports: [53]
  - action: Allow
    protocol: TCP
    source:
      selector: app == 'batch'
    destination:
      ports: [53]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: database-allow-from-backend
spec:
  stagedAction: Delete
"""


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("cluster"), RECORDS, POLICIES)


@pytest.fixture(scope="module")
def report(cluster: Path):
    con = open_replay(cluster)
    try:
        yield build_report(con)
    finally:
        con.close()


def rows(report, name: str, *columns: str) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in report.sections[name].table.to_pylist()]


def test_would_break_ranks_destinations_by_flows_counting_each_connection_once(report):
    # frontend → backend:8080 is logged by both ends (and once more as a split copy): 10 + 6 flows, not 32
    assert rows(report, "would_break", "rank", "dest_namespace", "dest_workload", "dest_port", "proto", "flows",
                "bytes", "sources", "top_source") == [
        (1, "kube-system", "coredns", 53, "udp", 20, 6000, 1, "prod/backend"),
        (2, "prod", "backend", 8080, "tcp", 16, 40000, 1, "prod/frontend"),
        (3, "prod", "backend", 9090, "tcp", 4, 1100, 1, "monitoring/prometheus"),
    ]


def test_would_break_names_the_staged_policy_and_rule_that_would_deny(report):
    assert rows(report, "would_break", "dest_workload", "dest_port", "denied_by_tier", "denied_by_policy",
                "denied_by_rule", "denied_by_staged", "first_seen", "last_seen") == [
        ("coredns", 53, "default", "dns-lockdown-staged", -1, True, at(10, 0), at(10, 5)),
        ("backend", 8080, "default", "backend-lockdown-staged", -1, True, at(10, 0), at(11, 10)),
        ("backend", 9090, "default", "backend-lockdown-staged", -1, True, at(10, 0), at(10, 5)),
    ]


def test_would_break_by_source_is_the_clients_view(report):
    assert rows(report, "would_break_by_source", "rank", "source_namespace", "source_workload", "flows", "bytes",
                "destinations", "top_destination", "denied_by_policy") == [
        (1, "prod", "backend", 20, 6000, 1, "kube-system/coredns:53/udp", "dns-lockdown-staged"),
        (2, "prod", "frontend", 16, 40000, 1, "prod/backend:8080/tcp", "backend-lockdown-staged"),
        (3, "monitoring", "prometheus", 4, 1100, 1, "prod/backend:9090/tcp", "backend-lockdown-staged"),
    ]


def test_lockout_risk_says_why_and_separates_certain_from_possible(report):
    why = (
        "DNS: server kube-system/coredns; DNS: udp:53; destination in kube-system (Kubernetes system components); "
        "udp:53 is a Calico failsafe port (DNS, outbound), but failsafes cover host endpoints only"
    )
    assert rows(report, "lockout_risk", "rank", "source_workload", "dest_namespace", "dest_workload", "dest_port",
                "why", "certainty", "flows", "denied_by") == [
        (1, "backend", "kube-system", "coredns", 53, why, "deny", 20, "dns-lockdown-staged end of tier"),
        (2, "frontend", "kube-system", "coredns", 53, why, "unknown", 8, "unknown: namespace_labels_unknown"),
    ]


def test_staged_policies_report_what_each_object_would_do(report):
    # backend-lockdown denies 3 records (lines 2, 4 and 6; line 15 is a copy of line 2) holding 20 flows (16 + 4)
    assert rows(report, "staged_policies", "rank", "policy", "promotion_action", "deny_rows", "deny_flows",
                "allow_rows", "allow_flows", "would_break_flows", "newly_allowed_flows", "changed_flows",
                "changes_anything") == [
        (1, "dns-lockdown-staged", "adds", 1, 20, 0, 0, 20, 0, 28, True),
        (2, "backend-lockdown-staged", "adds", 3, 20, 0, 0, 20, 0, 20, True),
        (3, "database-allow-from-backend", "deletes", 0, 0, 2, 3, 0, 2, 3, True),
    ]


def test_staged_policies_report_selected_endpoints_and_dead_rules(report):
    # dns-lockdown's TCP rule for `app == 'batch'` decided nothing; its UDP rule was reached (undecided, unknown)
    assert rows(report, "staged_policies", "policy", "kind", "tier", "endpoints_selected", "rules", "dead_rules",
                "dead_rule_list") == [
        ("dns-lockdown-staged", "StagedGlobalNetworkPolicy", "default", 1, 2, 1, "ingress[1]"),
        ("backend-lockdown-staged", "StagedGlobalNetworkPolicy", "default", 1, 0, 0, None),
        ("database-allow-from-backend", "StagedGlobalNetworkPolicy", None, None, None, None, None),
    ]


def test_newly_allowed_shows_what_the_staged_delete_opens(report):
    assert rows(report, "newly_allowed", "rank", "dest_namespace", "dest_workload", "dest_port", "flows", "bytes",
                "top_source", "denied_now_by_policy", "denied_now_by_rule", "allowed_by_tier", "allowed_by_policy",
                "allowed_by_staged") == [
        (1, "prod", "database", 8080, 2, 1100, "staging/loadgen", "database-allow-from-backend", -1,
         "__PROFILE__", "kns.prod", False),
    ]


def test_unknown_verdicts_are_grouped_by_reason_with_the_input_that_resolves_them(report, cluster):
    assert rows(report, "unknown_verdicts", "rank", "policy_set", "reason", "flows", "allowed_today", "pairs",
                "top_pair", "example_row", "remedy") == [
        (1, "proposed", "namespace_labels_unknown", 8, 8, 1, "prod/frontend → kube-system/coredns:53/udp",
         f"{cluster.parent / 'flows.log'}:13", "supply a Namespace list (--namespaces, `kubectl get ns -o yaml`)"),
    ]


def test_fidelity_groups_disagreements_by_reason(report):
    assert rows(report, "fidelity", "comparison", "outcome", "verdict_agrees", "rows", "logged_decider",
                "replayed_decider") == [
        ("current", "agree", True, 13, "__PROFILE__/kns.prod rule 0", "__PROFILE__/kns.prod rule 0"),
        ("current", "policy_not_supplied", False, 1, "default/legacy-allow rule 0",
         "default/database-allow-from-backend end of tier"),
        ("current", "policy_not_supplied", True, 1, "default/tmp-allow rule 0", "__PROFILE__/kns.prod rule 0"),
        ("pending", "agree", True, 13, "__PROFILE__/kns.prod rule 0", "__PROFILE__/kns.prod rule 0"),
        ("pending", "policy_not_supplied", False, 1, "default/legacy-allow rule 0",
         "default/database-allow-from-backend end of tier"),
        ("pending", "unknown_verdict", None, 1, "default/dns-lockdown-staged rule 0",
         "default/dns-lockdown-staged rule 0"),
    ]


def test_matrix_and_timeline_feed_the_charts(report):
    assert rows(report, "would_break_matrix", "source_namespace", "dest_namespace", "flows", "pairs") == [
        ("prod", "kube-system", 20, 1),
        ("prod", "prod", 16, 1),
        ("monitoring", "prod", 4, 1),
    ]
    assert rows(report, "would_break_timeline", "hour", "flows", "pairs") == [(at(10, 0), 34, 3), (at(11, 0), 6, 1)]


def test_the_verdict_paragraph_gives_the_answer_first(report):
    assert report.summary.verdict() == (
        "Promoting 3 staged policies would break 40 flows (46.0 KiB) to 3 services from 3 clients; "
        "2 lockout risks (1 only possible: verdict unknown). 8 flows could not be judged after promotion "
        "(see unknown verdicts for the input that would decide them). Promotion would also allow 2 denied flows. "
        "The model reproduces 93.3% of logged verdicts. "
        "Based on 15 logged rows from 2026-03-02 10:00 UTC to 2026-03-02 11:10 UTC."
    )


def test_top_n_is_a_bound_parameter_and_the_verdict_still_counts_everything(cluster):
    con = open_replay(cluster)
    try:
        top = build_report(con, names=["would_break"], top=1)
    finally:
        con.close()
    section = top.sections["would_break"]
    assert [r["dest_workload"] for r in section.table.to_pylist()] == ["coredns"]
    assert (section.total_rows, section.truncated) == (3, True)
    assert top.summary.would_break_flows == 40
    assert "$top" in section.query.sql and "top" in section.query.parameters


def test_a_safety_net_hides_the_breakage_and_the_safety_net_report_reveals_it(tmp_path):
    records = RECORDS[:4]
    con = open_replay(build_store(tmp_path, records, LESSON + SAFETY_NET))
    try:
        net = build_report(con)
    finally:
        con.close()
    assert net.sections["would_break"].table.num_rows == 0
    assert rows(net, "safety_net", "rank", "dest_namespace", "dest_workload", "dest_port", "flows_after_promotion",
                "flows_today", "top_source", "kept_open_by", "denied_without_net_by") == [
        (1, "prod", "backend", 8080, 16, 0, "prod/frontend", "zzz-final-allow-everything",
         "backend-lockdown-staged end of tier"),
    ]
    assert net.summary.verdict().startswith(
        "Promoting 1 staged policy would break none of the logged traffic; no lockout risk. 16 flows would stay "
        "open only because of zzz-final-allow-everything: they break the day it is removed."
    )


def test_a_report_run_reads_the_findings_once_and_answers_as_each_query_alone_does(cluster, report):
    con = open_replay(cluster)
    try:
        [(findings, replayed, breaking)] = con.execute(
            "SELECT (SELECT count(*) FROM findings), count(*), count(*) FILTER (WHERE would_break) FROM replay"
        ).fetchall()
        assert 0 < breaking <= findings < replayed  # rows nothing is reported about stay out
        # Each query alone reads the `findings` view, which joins the rows to their verdicts again.
        alone = {name: run(con, query, top=None) for name, query in discover().items()}
        with findings_at_hand(con):
            tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
            assert tables == [("findings",)]
            assert con.execute("SELECT count(*) FROM findings").fetchall() == [(findings,)]
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]
    finally:
        con.close()
    for name, section in report.sections.items():
        assert section.table.to_pylist() == alone[name].to_pylist(), name


def test_every_query_documents_its_question_and_every_column_it_returns(report):
    for name, query in discover().items():
        assert query.question.endswith("?"), name
        returned = report.sections[name].table.column_names
        assert list(query.column_docs) == returned, name
        assert set(query.shown) <= set(returned), name


def test_every_query_translates_to_spark_sql_and_back():
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        spark = sqlglot.transpile(path.read_text(), read="duckdb", write="spark", unsupported_level=ErrorLevel.RAISE)[0]
        assert sqlglot.parse_one(spark, read="spark").find(exp.Select) is not None, path.name


def test_unknown_verdicts_give_the_remedy_the_engine_documents_for_every_reason():
    tree = sqlglot.parse_one((QUERIES_DIR / "unknown_verdicts.sql").read_text(), read="duckdb")
    [remedies] = [cte for cte in tree.find_all(exp.CTE) if cte.alias == "remedies"]
    con = duckdb.connect()
    listed = dict(con.sql(f"SELECT * FROM ({remedies.this.sql(dialect='duckdb')})").fetchall())
    assert listed == {reason.value: reason.remedy for reason in Reason}


def test_a_query_named_on_the_command_line_resolves_to_its_file_with_bound_parameters(cluster):
    query = resolve_named("would_break")
    assert query is not None and query.path == QUERIES_DIR / "would_break.sql"
    assert resolve_named("would_break.sql") == query
    assert resolve_named("SELECT * FROM replay") is None
    assert resolve_named("no_such_report") is None
    con = open_replay(cluster)
    try:
        rows = con.sql(query.sql, params=query.bind(top=2)).fetchall()
    finally:
        con.close()
    assert len(rows) == 2
