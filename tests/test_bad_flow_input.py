"""Malformed flow logs, hundreds of them: each gets a clear message or a quarantine entry naming file, line and
reason; nothing hangs, nothing prints a traceback, and every record read is either stored or quarantined.

The corpus is generated into a temporary folder (tests/badinput.py) and ingested by the real `flowstage` command.
"""

from __future__ import annotations

import json
from pathlib import Path

import badinput
import pytest
from badinput import CorpusRun, flowstage

from flowstage.store import Store

CASES = badinput.corpus()


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    run = badinput.ingest_corpus(tmp_path_factory.mktemp("bad-flow-input"), CASES)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return run


def test_the_corpus_covers_every_kind_of_bad_input():
    assert len(CASES) >= 200
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.family for case in CASES} == {
        "invalid-json", "truncated", "wrong-type", "long-line", "binary", "compressed", "empty", "bom", "crlf",
        "invalid-utf8", "deep", "unknown-format", "framing"}


def test_the_whole_corpus_ingests_without_a_traceback(corpus_run: CorpusRun):
    assert corpus_run.returncode == 0, corpus_run.stderr[-3000:]
    assert "Traceback" not in corpus_run.stderr
    assert len(corpus_run.files) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_each_bad_input_gets_its_outcome(case: badinput.Case, corpus_run: CorpusRun):
    assert badinput.check(case, corpus_run) == []


def test_ingesting_the_corpus_again_adds_nothing(corpus_run: CorpusRun):
    before = Store.open(corpus_run.store).connect().execute(
        "SELECT count(*), (SELECT count(*) FROM quarantine) FROM flows").fetchone()
    result = flowstage("ingest", *map(str, corpus_run.paths.values()), "--store", str(corpus_run.store), "--json")
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["stored"] == 0
    after = Store.open(corpus_run.store).connect().execute(
        "SELECT count(*), (SELECT count(*) FROM quarantine) FROM flows").fetchone()
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
