"""`flowstage synth …` from a shell: sample, logs, policies and store, with runnable help and clean usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_runner import run_cli

from flowstage.store import Store


def test_synth_sample_writes_the_sample_into_a_folder(capsys, monkeypatch, tmp_path: Path) -> None:
    run = run_cli(capsys, monkeypatch, "synth", "sample", "--output", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "wrote 13 files" in run.stdout
    assert (tmp_path / "logs" / "goldmane" / "emitter.ndjson").is_file()
    assert (tmp_path / "policies" / "lesson.yaml").is_file()


def test_synth_logs_reports_what_it_wrote_as_json(capsys, monkeypatch, tmp_path: Path) -> None:
    out = tmp_path / "flows.log.gz"
    run = run_cli(capsys, monkeypatch, "synth", "logs", "--rows", "500", "--keys", "90", "--output", str(out), "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["records"] == 500 and summary["keys"] == 90 and summary["files"] == [str(out)]
    assert out.read_bytes()[:2] == b"\x1f\x8b"


def test_synth_policies_counts_what_it_wrote(capsys, monkeypatch, tmp_path: Path) -> None:
    out = tmp_path / "policies.yaml"
    run = run_cli(capsys, monkeypatch, "synth", "policies", "--count", "50", "--output", str(out))
    assert run.returncode == 0, run.stderr
    assert "wrote 50 policies" in run.stdout
    assert len([d for d in yaml.safe_load_all(out.read_text()) if d["kind"] != "Tier" and "NetworkSet" not in d["kind"]]) == 50


def test_synth_store_builds_a_store_from_arrow(capsys, monkeypatch, tmp_path: Path) -> None:
    run = run_cli(capsys, monkeypatch, "synth", "store", "--rows", "2000", "--keys", "300", "--store", str(tmp_path / "s"))
    assert run.returncode == 0, run.stderr
    con = Store.open(tmp_path / "s").connect()
    assert con.sql("SELECT count(*), any_value(format) FROM flows").fetchall() == [(2000, "synth")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["logs", "--rows", "5", "--keys", "10", "--output", "x.log"], "must be at least --keys"),
        (["logs", "--rows", "50", "--keys", "10", "--format", "csv", "--output", "x.log"], "--format 'csv'"),
        (["policies", "--count", "0", "--output", "p.yaml"], "--count must be at least 1"),
    ],
)
def test_usage_errors_exit_2_with_a_message_and_no_traceback(capsys, monkeypatch, tmp_path: Path, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    run = run_cli(capsys, monkeypatch, "synth", *args)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("command", ["sample", "logs", "policies", "store"])
def test_every_command_helps_with_a_runnable_example(capsys, monkeypatch, command: str) -> None:
    run = run_cli(capsys, monkeypatch, "synth", command, "--help")
    assert run.returncode == 0
    assert f"flowstage synth {command} " in " ".join(run.stdout.split())
