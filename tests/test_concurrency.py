"""Readers beside a writer: `flowstage sql` and `flowstage report` run again and again while `flowstage ingest`
writes; every run succeeds and sees whole batches only. A second writer waits its turn or refuses clearly.

The loops live in tests/reliability.py (`python -m tests.reliability --report` prints their figures).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import reliability

from flowstage.store import Store


@pytest.mark.slow
def test_sql_and_report_beside_a_writer_never_fail_and_never_see_partial_data(tmp_path: Path):
    report = reliability.concurrent_runs(tmp_path, writer_rounds=3)
    assert report.problems == []
    assert report.writer_runs == 3
    assert report.reader_runs >= 4  # readers really ran beside the writer
    assert (report.refused, report.waited) == (1, 1)
    assert report.final_rows == report.expected_rows


def test_two_ingests_creating_the_same_store_at_once_both_succeed(tmp_path: Path):
    logs = {**reliability.write_logs(tmp_path / "a", files=1, lines=500),
            **reliability.write_logs(tmp_path / "b", files=1, lines=500, first_file=1)}
    store = tmp_path / "store"
    procs = [subprocess.Popen(reliability.command("ingest", str(tmp_path / name), "--store", str(store)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    errors = [proc.communicate(timeout=reliability.RUN_TIMEOUT)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert reliability.check_flows(store, logs, complete=True) == []


def test_a_second_writer_refuses_with_a_message_that_says_what_to_do(tmp_path: Path):
    logs = reliability.write_logs(tmp_path / "logs", files=1, lines=100)
    store = Store.open(tmp_path / "store", create=True)
    with store.writer():
        result = reliability.run("ingest", str(tmp_path / "logs"), "--store", str(store.root), "--lock-timeout", "0.3")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"another flowstage process is writing to {store.root}" in " ".join(result.stderr.split())
    assert "--lock-timeout" in result.stderr
    assert store.connect().execute("SELECT count(*) FROM flows").fetchone()[0] == 0
    assert reliability.run("ingest", str(tmp_path / "logs"), "--store", str(store.root)).returncode == 0
    assert reliability.check_flows(store.root, logs, complete=True) == []


def test_sql_reads_while_a_writer_holds_the_lock(tmp_path: Path):
    logs = reliability.write_logs(tmp_path / "logs", files=1, lines=100)
    store = tmp_path / "store"
    assert reliability.run("ingest", str(tmp_path / "logs"), "--store", str(store)).returncode == 0
    with Store.open(store).writer():  # readers never take the writer's lock: a held one does not stop them
        result = reliability.run("sql", "--store", str(store), "--format", "json", "SELECT count(*) AS n FROM flows")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": sum(logs.values())}]
