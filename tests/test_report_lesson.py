"""The demo's promise on the committed sample: ingest sample_logs/, replay the lesson's policies, and the ranked
would-break table starts with prod/frontend → prod/backend, denied at the end of the default tier by
`backend-lockdown-staged`; with the lesson's safety net added, nothing breaks and the safety-net report shows why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowstage.ingest import ingest
from flowstage.replay.run import load_inputs, replay
from flowstage.report import build_report, open_replay
from flowstage.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(repo_dir: Path) -> Path:
    return repo_dir / "sample_logs"


def replayed(sample: Path, root: Path, *policies: str) -> Path:
    store = Store.open(root / "store", create=True)
    ingest([str(sample / "logs")], store)
    replay(store, load_inputs([sample / "policies" / p for p in policies],
                              namespaces=sample / "inventory" / "namespaces.yaml",
                              pods=sample / "inventory" / "pods.yaml"))
    return root / "store"


def test_the_lesson_breaks_frontend_to_backend_first(sample, tmp_path):
    con = open_replay(replayed(sample, tmp_path, "lesson.yaml"))
    try:
        report = build_report(con, names=["would_break", "lockout_risk"], top=20)
    finally:
        con.close()
    top = report.sections["would_break"].table.to_pylist()[0]
    assert (top["dest_namespace"], top["dest_workload"], top["dest_port"], top["top_source"]) == (
        "prod", "backend", 8080, "prod/frontend",
    )
    assert (top["denied_by_policy"], top["denied_by_rule"], top["denied_by_staged"]) == (
        "backend-lockdown-staged", -1, True,
    )
    assert report.summary.verdict().startswith("Promoting 1 staged policy would break ")
    assert report.summary.lockout_risks == 0


def test_with_the_safety_net_nothing_breaks_and_the_net_is_named(sample, tmp_path):
    con = open_replay(replayed(sample, tmp_path, "lesson.yaml", "safety-net.yaml"))
    try:
        report = build_report(con, names=["would_break", "safety_net"])
    finally:
        con.close()
    assert report.sections["would_break"].table.num_rows == 0
    first = report.sections["safety_net"].table.to_pylist()[0]
    assert (first["dest_workload"], first["dest_port"], first["top_source"], first["kept_open_by"]) == (
        "backend", 8080, "prod/frontend", "zzz-final-allow-everything",
    )
    assert first["denied_without_net_by"] == "backend-lockdown-staged end of tier"
    assert report.summary.safety_nets == ("zzz-final-allow-everything",)
