"""Malformed flow logs, hundreds of them: each gets a clear message or a quarantine entry naming file, line and
reason; nothing hangs, nothing prints a traceback, and every record read is either stored or quarantined.

The corpus is generated into a temporary folder (tests/badinput.py) and ingested by the real `flowstage` command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import badinput
import duckdb
import pytest

from flowstage.store import Store

CASES = badinput.corpus()
TIMEOUT = 600  # seconds for the whole corpus; running out of it is a hang, and fails the test


@dataclass
class Run:
    paths: dict[str, Path]  # case id → file
    files: dict[str, dict[str, Any]]  # file → its entry in the --json summary
    stderr: str
    returncode: int
    store: Path
    stored: dict[str, tuple[int, int, int]]  # file → rows, distinct lines, rows unlike the record at their line
    quarantined: dict[str, list[tuple[int, str, str, str]]]  # file → (line, reason, detail, raw)

    def connect(self) -> duckdb.DuckDBPyConnection:
        return Store.open(self.store).connect()


def flowstage(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process; wide columns so messages are never wrapped."""
    return subprocess.run([sys.executable, "-m", "flowstage", "--quiet", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "COLUMNS": "100000"})


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("bad-flow-input")
    paths = {case.id: badinput.write(case, folder / "in") for case in CASES}
    store = folder / "store"
    result = flowstage("ingest", *map(str, paths.values()), "--store", str(store), "--json")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    con = Store.open(store).connect()
    # `good(n)` records carry their index in bytes_in: a row unlike its line's record came out of damaged data.
    stored = {f: (n, lines, unlike) for f, n, lines, unlike in con.execute(
        "SELECT source_file, count(*), count(DISTINCT source_line), count(*) FILTER (bytes_in <> source_line - 1) "
        "FROM flows GROUP BY ALL").fetchall()}
    quarantined: dict[str, list[tuple[int, str, str, str]]] = {}
    for f, *row in con.execute("SELECT source_file, source_line, reason, detail, raw FROM quarantine").fetchall():
        quarantined.setdefault(f, []).append(tuple(row))
    return Run(paths, {f["source"]: f for f in summary["by_file"]}, result.stderr, result.returncode, store,
               stored, quarantined)


def test_the_corpus_covers_every_kind_of_bad_input():
    assert len(CASES) >= 200
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.family for case in CASES} == {
        "invalid-json", "truncated", "wrong-type", "long-line", "binary", "compressed", "empty", "bom", "crlf",
        "invalid-utf8", "deep", "unknown-format", "framing"}


def test_the_whole_corpus_ingests_without_a_traceback(corpus_run: Run):
    assert corpus_run.returncode == 0, corpus_run.stderr[-3000:]
    assert "Traceback" not in corpus_run.stderr
    assert len(corpus_run.files) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_each_bad_input_gets_its_outcome(case: badinput.Case, corpus_run: Run):
    path = str(corpus_run.paths[case.id])
    entry = corpus_run.files[path]
    expected = case.outcome
    assert "continues" not in entry["note"], "two corpus files start alike: give one a distinct first record"
    assert entry["status"] == expected.status, entry
    assert entry["records_read"] == entry["stored"] + sum(entry["quarantined"].values()), entry
    if expected.stored is not None:
        assert entry["stored"] == expected.stored, entry
    if expected.quarantined is not None:
        assert entry["quarantined"] == dict(expected.quarantined), entry

    stored, lines, unlike = corpus_run.stored.get(path, (0, 0, 0))
    assert stored == lines == entry["stored"]
    rows = corpus_run.quarantined.get(path, [])
    assert Counter(reason for _, reason, _, _ in rows) == Counter(entry["quarantined"])
    assert all(line >= 1 and detail and raw is not None for line, _, detail, raw in rows)

    if expected.status == badinput.INGESTED:
        assert all(expected.says in detail for _, _, detail, _ in rows), rows
    else:
        assert expected.says in entry["note"], entry
    if expected.status == badinput.ERROR:
        assert f"error: {path}: {entry['note']}" in corpus_run.stderr
    if case.family == "compressed" and ("-cut-" in case.name or "-corrupt-" in case.name):
        # What comes out of a damaged stream is either the record the file holds at that line, or quarantined.
        assert unlike == 0


def test_ingesting_the_corpus_again_adds_nothing(corpus_run: Run):
    before = corpus_run.connect().execute("SELECT count(*), (SELECT count(*) FROM quarantine) FROM flows").fetchone()
    result = flowstage("ingest", *map(str, corpus_run.paths.values()), "--store", str(corpus_run.store), "--json")
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["stored"] == 0
    after = corpus_run.connect().execute("SELECT count(*), (SELECT count(*) FROM quarantine) FROM flows").fetchone()
    assert after == before


def test_found_in_a_folder_what_is_no_flow_log_is_skipped_with_its_reason(tmp_path: Path):
    unreadable = [case for case in CASES if case.family in ("binary", "empty", "unknown-format", "bom")
                  and case.outcome.status == badinput.ERROR]
    for case in unreadable:
        badinput.write(case, tmp_path / "logs")
    result = flowstage("ingest", str(tmp_path / "logs"), "--store", str(tmp_path / "store"), "--json")
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    by_file = {Path(f["source"]).parent.name: f for f in summary["by_file"]}
    for case in unreadable:
        entry = by_file[case.id]
        assert (entry["status"], entry["stored"]) == ("skipped", 0), entry
        assert entry["note"].startswith("not a flow log (")
        assert case.outcome.says in entry["note"] or case.outcome.says.startswith("cannot tell")
    assert summary["records_read"] == summary["stored"] == 0
