"""`flowstage ingest` as a user runs it: summary, --json, exit codes, skipped and undetectable files, stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli

RECORD = {"start_time": 1700000000, "end_time": 1700000300, "source_name_aggr": "a-*", "dest_name_aggr": "b-*",
          "proto": "tcp", "action": "allow", "reporter": "src"}


@pytest.fixture
def flowstage(capsys, monkeypatch):
    return lambda *args, stdin=None: run_cli(capsys, monkeypatch, *args, stdin=stdin)


def _logs(tmp_path: Path, bad: bool = False) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir(parents=True)
    text = json.dumps(RECORD) + "\n" + ("{not json\n" if bad else "") + json.dumps(RECORD) + "\n"
    (logs / "flows.log").write_text(text)
    (logs / "README.md").write_text("# notes about these logs\n")
    return logs


def test_json_summary_counts_and_skips_non_flow_files(tmp_path: Path, flowstage):
    result = flowstage("ingest", str(_logs(tmp_path, bad=True)), "--store", str(tmp_path / "s"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["files"], summary["records_read"], summary["stored"], summary["quarantined"]) == (2, 3, 2, 1)
    assert summary["quarantined_by_reason"] == {"invalid_json": 1}
    statuses = {Path(f["source"]).name: f["status"] for f in summary["by_file"]}
    assert statuses == {"README.md": "skipped", "flows.log": "ingested"}


def test_strict_exits_1_when_anything_was_quarantined(tmp_path: Path, flowstage):
    logs = _logs(tmp_path, bad=True)
    assert flowstage("ingest", str(logs), "--store", str(tmp_path / "s"), "--strict").returncode == 1
    clean = flowstage("ingest", str(_logs(tmp_path / "clean")), "--store", str(tmp_path / "c"), "--strict")
    assert clean.returncode == 0, clean.stderr


def test_table_summary_names_the_quarantine_view(tmp_path: Path, flowstage):
    result = flowstage("ingest", str(_logs(tmp_path, bad=True)), "--store", str(tmp_path / "s"))
    assert "3 records read, 2 stored, 1 quarantined (invalid_json 1)" in " ".join(result.stdout.split())
    assert "FROM quarantine" in result.stdout


def test_usage_errors_exit_2_without_traceback(tmp_path: Path, flowstage):
    for args in (["ingest", str(tmp_path / "missing.log"), "--store", str(tmp_path / "s")],
                 ["ingest", str(_logs(tmp_path)), "--store", str(tmp_path / "s"), "--format", "csv"],
                 ["ingest", str(tmp_path / "logs"), "--store", str(tmp_path / "logs" / "flows.log")],
                 ["sql", "--store", str(tmp_path / "nowhere"), "SELECT 1"]):
        result = flowstage(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "error" in result.stderr.lower(), result.stderr


def test_an_explicitly_named_file_of_unknown_format_is_an_error_for_that_file_only(tmp_path: Path, flowstage):
    logs = _logs(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("just some words\n")
    result = flowstage("ingest", str(notes), str(logs / "flows.log"), "--store", str(tmp_path / "s"), "--json")
    assert result.returncode == 0
    summary = json.loads(result.stdout)
    assert summary["stored"] == 2
    assert "cannot tell which flow-log format" in result.stderr
    alone = flowstage("ingest", str(notes), "--store", str(tmp_path / "s2"))
    assert alone.returncode == 1


def test_stdin(tmp_path: Path, flowstage):
    result = flowstage("ingest", "-", "--store", str(tmp_path / "s"), "--json", stdin=json.dumps(RECORD) + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stored"] == 1
    rows = flowstage("sql", "--store", str(tmp_path / "s"), "SELECT source_file, source_line FROM flows", "--format", "json")
    assert json.loads(rows.stdout) == [{"source_file": "<stdin>", "source_line": 1}]


def test_glob(tmp_path: Path, flowstage):
    logs = _logs(tmp_path)
    (logs / "flows-2025.log").write_text(json.dumps(RECORD) + "\n")
    result = flowstage("ingest", str(logs / "flows*.log"), "--store", str(tmp_path / "s"), "--json")
    assert json.loads(result.stdout)["stored"] == 3


def test_the_installed_command_prints_errors_without_traceback(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "flowstage", "ingest", str(tmp_path / "missing.log"), "--store",
                             str(tmp_path / "s")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "missing.log: no such file or folder" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
