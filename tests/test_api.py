"""The Python API in `flowstage/__init__.py`: every docstring example runs, each CLI command answers what the
API answers, and bad input is a FlowstageError that says what to fix."""

from __future__ import annotations

import doctest
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli
from replay_helpers import replayed_sample

import flowstage
from flowstage.errors import FlowstageError, UsageError
from flowstage.replay import PolicyProblemsError
from flowstage.report import CheckFailed


@pytest.fixture(scope="module")
def lesson(repo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed sample ingested and replayed against the lesson's policies, with its inventory."""
    return replayed_sample(repo_dir, tmp_path_factory.mktemp("api") / "lesson-store")


@pytest.mark.slow
def test_every_docstring_example_runs(lesson: Path, repo_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_dir)  # the examples name sample_logs/ as a user at the repository root does
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in finder.find(flowstage, "flowstage", extraglobs={"flowstage": flowstage, "tmp": tmp_path, "store": lesson}):
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, report.getvalue()
    assert result.attempted >= 40


@pytest.mark.parametrize("name", flowstage.__all__)
def test_every_public_function_documents_a_runnable_example(name: str) -> None:
    doc = getattr(flowstage, name).__doc__ or ""
    assert ">>> " in doc, f"flowstage.{name} has no example in its docstring"


def test_importing_flowstage_loads_no_heavy_library() -> None:
    probe = "import json, sys, flowstage\nprint(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                           text=True).stdout))
    assert sorted(m for m in ("duckdb", "pyarrow", "pandas", "sqlglot", "yaml") if m in loaded) == []


def test_the_report_command_prints_what_run_report_returns(lesson: Path, capsys, monkeypatch) -> None:
    done = run_cli(capsys, monkeypatch, "report", "would_break", "lockout_risk", "--store", str(lesson),
                   "--format", "json")
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(done.stdout)
    from_api = json.loads(flowstage.run_report(lesson, ["would_break", "lockout_risk"]).to_json())
    assert from_cli["reports"] == from_api["reports"]
    assert from_cli["summary"] == from_api["summary"]


def test_the_check_command_exits_with_what_check_returns(lesson: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    result = flowstage.check(lesson, max_would_break=0, junit=tmp_path / "api.xml")
    done = run_cli(capsys, monkeypatch, "check", "--store", str(lesson), "--json")
    assert done.returncode == result.exit_code == 1
    assert json.loads(done.stdout)["verdict"] == result.verdict
    assert '<failure message="' in (tmp_path / "api.xml").read_text()


def test_a_report_gives_dataframes_and_renders_whole(lesson: Path) -> None:
    report = flowstage.run_report(lesson, top=1)
    frame = report.df("would_break")
    assert len(frame) == 1 and frame.loc[0, "dest_labels"]["app"] == "backend"
    assert report.question("would_break").startswith("which services would lose traffic")
    assert str(report) == report.summary.verdict()
    assert report.html().lstrip().lower().startswith("<!doctype html>")
    assert json.loads(report.to_json())["top"] == 1
    assert report._repr_markdown_().startswith("# flowstage report")


def test_asking_a_report_for_a_section_it_does_not_hold_names_those_it_holds(lesson: Path) -> None:
    report = flowstage.run_report(lesson, "fidelity")
    with pytest.raises(UsageError, match="holds no 'would_break'; it holds: fidelity"):
        report.df("would_break")


def test_a_report_on_a_store_never_replayed_says_to_replay_first(tmp_path: Path) -> None:
    flowstage.open_store(tmp_path / "fresh", create=True)
    with pytest.raises(FlowstageError, match="has no replay yet: run `flowstage replay"):
        flowstage.run_report(tmp_path / "fresh")


def test_a_store_object_and_its_path_are_interchangeable(repo_dir: Path, tmp_path: Path) -> None:
    store = flowstage.open_store(tmp_path / "s", create=True)
    flowstage.ingest_logs([repo_dir / "sample_logs" / "logs" / "whisker"], store)
    by_object = flowstage.sql(store, "SELECT count(*) FROM flows").fetchall()
    by_path = flowstage.sql(tmp_path / "s", "SELECT count(*) FROM flows").fetchall()
    con = flowstage.connect(store)
    try:
        by_connection = flowstage.sql(con, "SELECT count(*) FROM flows").fetchall()
    finally:
        con.close()
    assert by_object == by_path == by_connection == [(170,)]


def test_replay_refuses_policies_with_errors_naming_the_file(lesson: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\n"
                      "spec:\n  selector: '&&'\n")
    inputs = flowstage.load_policies(broken)
    assert inputs.errors and "broken.yaml" in str(inputs.errors[0])
    with pytest.raises(PolicyProblemsError, match="broken.yaml"):
        flowstage.replay_flows(lesson, inputs)


def test_inventory_goes_with_the_policies_it_belongs_to(repo_dir: Path, lesson: Path) -> None:
    inputs = flowstage.load_policies(repo_dir / "sample_logs" / "policies" / "lesson.yaml")
    with pytest.raises(UsageError, match="pass namespaces and pods to load_policies"):
        flowstage.replay_flows(lesson, inputs, namespaces=repo_dir / "sample_logs" / "inventory" / "namespaces.yaml")


def test_explain_with_other_policies_judges_the_row_under_them(repo_dir: Path, lesson: Path) -> None:
    policies = repo_dir / "sample_logs" / "policies"
    [(row,)] = flowstage.sql(lesson, "SELECT min(row_id) FROM replay WHERE would_break").fetchall()
    explained = flowstage.explain(lesson, row=row, policies=[policies / "lesson.yaml", policies / "safety-net.yaml"])
    assert explained.verdict("proposed") == "allow by tier default gnp:zzz-final-allow-everything rule 0"
    assert explained.stored is not None and explained.stored["proposed_verdict"] == "deny"
    assert f"row {row}:" in explained.text()


def test_explain_names_a_row_it_cannot_find(lesson: Path) -> None:
    with pytest.raises(FlowstageError, match="no stored row comes from line 999999"):
        flowstage.explain(lesson, line="flows.log:999999")


def test_a_forced_promotion_lists_the_checks_it_overrode(repo_dir: Path, lesson: Path, tmp_path: Path) -> None:
    lesson_yaml = repo_dir / "sample_logs" / "policies" / "lesson.yaml"
    with pytest.raises(CheckFailed, match="pass --force to promote anyway"):
        flowstage.promote(lesson_yaml, tmp_path / "refused", store=lesson)
    promotion = flowstage.promote(lesson_yaml, tmp_path / "forced", store=lesson, force=True)
    assert [reason.split(":")[0] for reason in promotion.overridden] == ["would-break"]
    assert not (tmp_path / "forced").exists()  # nothing is written before .write()
    written = promotion.write()
    assert "kind: GlobalNetworkPolicy\nmetadata:\n  name: backend-lockdown-staged" in written[0].read_text()
