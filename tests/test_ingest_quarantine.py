"""Records that cannot be read are quarantined with file, line, reason and text; the good ones around them are kept."""

from __future__ import annotations

import json
from pathlib import Path

from flowstage.ingest import ingest
from flowstage.store import Store

GOOD = {"start_time": 1700000000, "end_time": 1700000300, "source_name_aggr": "a-*", "dest_name_aggr": "b-*",
        "proto": "tcp", "action": "allow", "reporter": "src", "source_labels": {"labels": ["app=a"]}}


def _ingest(tmp_path: Path, text: bytes):
    log = tmp_path / "flows.log"
    log.write_bytes(text)
    store = Store.open(tmp_path / "store", create=True)
    return ingest([str(log)], store), store.connect()


def test_each_kind_of_unreadable_record_has_its_reason(tmp_path: Path):
    lines = [
        json.dumps(GOOD),
        '{"start_time": 1700000000, "proto": ',  # cut JSON in the middle of the file
        json.dumps({**GOOD, "dest_port": "http"}),  # a port that is not a number
        json.dumps({**GOOD, "policies": "0|t|t.p|allow|0"}),  # a trace that is not an object
        json.dumps({**GOOD, "source_labels": 7}),  # labels in no known encoding
        json.dumps({"hello": "world"}),  # valid JSON, no flow fields
        "[1, 2, 3]",
        "",  # blank lines are not records
        json.dumps(GOOD),
    ]
    summary, con = _ingest(tmp_path, ("\n".join(lines) + "\n").encode() + b'{"start_time": "\xff"}\n')
    rows = con.execute("SELECT source_line, reason, detail FROM quarantine ORDER BY source_line").fetchall()
    assert [(line, reason) for line, reason, _ in rows] == [
        (2, "invalid_json"), (3, "wrong_type"), (4, "wrong_type"), (5, "wrong_type"), (6, "not_a_flow_record"),
        (7, "not_a_flow_record"), (10, "invalid_utf8")]
    details = {line: detail for line, _, detail in rows}
    assert "dest_port" in details[3] and "policies" in details[4] and "source_labels" in details[5]
    assert con.execute("SELECT list(source_line ORDER BY source_line) FROM flows").fetchone()[0] == [1, 9]
    assert summary.read == summary.stored + sum(summary.quarantined.values()) == 9


def test_quarantine_keeps_the_raw_text(tmp_path: Path):
    _, con = _ingest(tmp_path, b'{"start_time": 1700000000,, "proto": "tcp"}\n')
    assert con.execute("SELECT raw, format FROM quarantine").fetchone() == ('{"start_time": 1700000000,, "proto": "tcp"}',
                                                                          "felix")
