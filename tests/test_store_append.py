"""Appending Arrow batches to a store: rows land in their day's folder, parts commit as they complete, and what
was handed over before a failure stays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowstage import schema, store
from flowstage.errors import StoreError
from flowstage.store import Store
from flowstage.synth.batches import flow_batches

HIT = {"position": 0, "tier": "default", "kind": "np", "namespace": "shop", "name": "allow-web", "staged": False,
       "action": "allow", "rule_index": 1, "end_of_tier": False, "raw": "0|default|shop/default.allow-web|allow|1"}


def flows(*starts: datetime | None, first_line: int = 1) -> pa.Table:
    return pa.Table.from_pylist(
        [{"start_time": start, "end_time": None, "proto": "tcp", "source_labels": [("app", "web")],
          "enforced_policies": [HIT], "format": "synth", "source_line": first_line + i} for i, start in enumerate(starts)],
        schema=schema.FLOW_SCHEMA,
    )


def day(d: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, d, hour, tzinfo=UTC)


@pytest.fixture
def target(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store", create=True)


def folders(target: Store) -> dict[str, int]:
    rows: dict[str, int] = {}
    for part in target.manifest()["datasets"]["flows"]["files"]:
        folder = Path(part["path"]).parent.name
        rows[folder] = rows.get(folder, 0) + part["rows"]
    return rows


def test_rows_land_in_the_folder_of_their_day_and_read_back_unchanged(target: Store):
    batch = flows(day(1, 23), day(2, 0), None, day(1, 1))
    assert target.append_flows([batch], source="synth:test") == 4
    assert folders(target) == {"date=2026-03-01": 2, "date=2026-03-02": 1, "date=unknown": 1}
    back = target.connect().sql("SELECT * FROM flows ORDER BY source_line").to_arrow_table()
    assert back.cast(schema.FLOW_SCHEMA).to_pylist() == batch.to_pylist()


def test_a_day_is_told_by_the_end_of_the_window_when_the_start_is_missing(target: Store):
    batch = flows(None).set_column(1, "end_time", pa.array([day(5)], schema.UTC_TIMESTAMP))
    target.append_flows([batch], source="synth:test")
    assert folders(target) == {"date=2026-03-05": 1}


def test_parts_are_plain_parquet_any_reader_opens(target: Store):
    target.append_flows([flows(day(1), day(1))], source="synth:test")
    [part] = target.files("flows")
    table = pq.read_table(part)
    assert table.schema.equals(schema.FLOW_SCHEMA)
    assert table.column("enforced_policies").to_pylist() == [[HIT], [HIT]]


def test_a_long_append_commits_part_after_part(target: Store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(store, "PART_ROWS", 1_000)
    assert target.append_flows(flow_batches(10_000, 50, batch_rows=500), source="synth:long") == 10_000
    parts = target.manifest()["datasets"]["flows"]["files"]
    assert len(parts) >= 8
    assert sum(p["rows"] for p in parts) == 10_000
    assert target.manifest()["sources"]["synth:long"]["records"] == 10_000
    assert target.connect().execute("SELECT count(DISTINCT source_line) FROM flows").fetchone()[0] == 10_000


def test_days_in_any_order_with_few_files_open_at_once(target: Store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(store, "OPEN_DAYS", 2)
    batches = [flows(day(d), first_line=i) for i, d in enumerate([1, 2, 3, 1, 3, 2, 4, 1])]
    assert target.append_flows(batches, source="synth:test") == 8
    assert folders(target) == {"date=2026-03-01": 3, "date=2026-03-02": 2, "date=2026-03-03": 2, "date=2026-03-04": 1}


def test_what_was_handed_over_before_the_input_failed_stays_committed(target: Store):
    def batches() -> Iterator[pa.Table]:
        yield flows(day(1), day(1))
        yield flows(day(2), first_line=3)
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError, match="generator broke"):
        target.append_flows(batches(), source="synth:broken")
    assert folders(target) == {"date=2026-03-01": 2, "date=2026-03-02": 1}
    assert target.manifest()["sources"]["synth:broken"]["records"] == 3


def test_a_batch_without_the_canonical_columns_is_refused_by_name(target: Store):
    bad = pa.table({"start_time": pa.array([day(1)], schema.UTC_TIMESTAMP)})
    with pytest.raises(StoreError, match="batch lacks columns end_time, source_type"):
        target.append_flows([flows(day(1)), bad], source="synth:test")
    assert folders(target) == {"date=2026-03-01": 1}
