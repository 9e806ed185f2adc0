"""Re-ingesting adds nothing; a grown file adds only its new lines; a rotated file is recognised by its content."""

from __future__ import annotations

import json
from pathlib import Path

import zstandard

from flowstage.ingest import ingest
from flowstage.store import Store


def _record(i: int) -> str:
    return json.dumps({"start_time": 1700000000 + i, "end_time": 1700000300 + i, "source_name_aggr": f"client-{i}-*",
                       "dest_name_aggr": "server-*", "proto": "tcp", "action": "allow", "reporter": "src",
                       "source_labels": {"labels": ["app=client", "pad=" + "x" * 60]}}) + "\n"


def _lines(start: int, stop: int) -> str:
    return "".join(_record(i) for i in range(start, stop))


def _rows(store: Store) -> list[tuple[str, int]]:
    return store.connect().execute("SELECT source_name_aggr, source_line FROM flows ORDER BY source_line").fetchall()


def test_reingesting_the_same_file_adds_nothing(tmp_path: Path):
    log = tmp_path / "flows.log"
    log.write_text(_lines(0, 5))
    store = Store.open(tmp_path / "store", create=True)
    first = ingest([str(log)], store)
    again = ingest([str(log)], store)
    assert first.stored == 5
    assert (again.read, again.stored, again.files[0].status) == (0, 0, "unchanged")
    assert len(_rows(store)) == 5


def test_appended_lines_are_the_only_ones_added(tmp_path: Path):
    log = tmp_path / "flows.log"
    log.write_text(_lines(0, 3))
    store = Store.open(tmp_path / "store", create=True)
    ingest([str(log)], store)
    with log.open("a") as fh:
        fh.write(_lines(3, 5))
    grown = ingest([str(log)], store)
    assert (grown.read, grown.stored) == (2, 2)
    assert _rows(store) == [(f"client-{i}-*", i + 1) for i in range(5)]


def test_a_cut_last_line_is_read_again_once_the_writer_finishes_it(tmp_path: Path):
    log = tmp_path / "flows.log"
    whole = _lines(0, 3)
    cut = len(whole) - 40
    log.write_text(whole[:cut])
    store = Store.open(tmp_path / "store", create=True)
    first = ingest([str(log)], store)
    assert (first.stored, dict(first.quarantined)) == (2, {"truncated_last_line": 1})
    assert ingest([str(log)], store).read == 0  # nothing new yet
    log.write_text(whole)
    finished = ingest([str(log)], store)
    assert (finished.read, finished.stored) == (1, 1)
    assert [line for _, line in _rows(store)] == [1, 2, 3]


def test_small_batches_resume_line_numbers(tmp_path: Path):
    log = tmp_path / "flows.log"
    log.write_text(_lines(0, 7))
    store = Store.open(tmp_path / "store", create=True)
    summary = ingest([str(log)], store, batch_rows=3)
    assert summary.stored == 7
    assert [line for _, line in _rows(store)] == list(range(1, 8))
    assert len(store.manifest()["datasets"]["flows"]["files"]) == 3


def test_rotated_and_compressed_file_is_recognised(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "flows.log").write_text(_lines(0, 60))
    store = Store.open(tmp_path / "store", create=True)
    ingest([str(logs)], store)
    # felix rotates: the old file is compressed under a new name, a new flows.log starts
    rotated = _lines(0, 80)
    (logs / "flows-2025-11-20T10-00-00.000-size.log.zst").write_bytes(zstandard.ZstdCompressor().compress(rotated.encode()))
    (logs / "flows.log").write_text(_lines(100, 102))
    summary = ingest([str(logs)], store)
    by_name = {Path(f.source).name: f for f in summary.files}
    assert by_name["flows-2025-11-20T10-00-00.000-size.log.zst"].read == 20
    assert by_name["flows.log"].read == 2
    assert len(_rows(store)) == 82


def test_a_replaced_file_is_read_from_the_start(tmp_path: Path):
    log = tmp_path / "flows.log"
    log.write_text(_lines(0, 3))
    store = Store.open(tmp_path / "store", create=True)
    ingest([str(log)], store)
    log.write_text(_lines(10, 14))
    summary = ingest([str(log)], store)
    assert summary.read == 4
    assert "replaced" in summary.files[0].note


def test_a_store_inside_the_ingested_folder_is_not_read_as_input(tmp_path: Path):
    (tmp_path / "flows.log").write_text(_lines(0, 2))
    store = Store.open(tmp_path / "store", create=True)
    ingest([str(tmp_path)], store)
    again = ingest([str(tmp_path)], store)
    assert [Path(f.source).name for f in again.files] == ["flows.log"]
    assert len(_rows(store)) == 2
