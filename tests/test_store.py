"""The store folder: what readers see is what the manifest lists; writers are atomic, exclusive and clean up."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowstage
from flowstage import schema
from flowstage.errors import StoreError
from flowstage.ingest import ingest
from flowstage.store import Store

RECORD = {"start_time": 1700000000, "end_time": 1700000300, "source_name_aggr": "a-*", "dest_name_aggr": "b-*",
          "proto": "tcp", "action": "allow", "reporter": "src"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    log = tmp_path / "flows.log"
    log.write_text(json.dumps(RECORD) + "\n" + json.dumps({**RECORD, "start_time": 1700090000}) + "\n")
    store = Store.open(tmp_path / "store", create=True)
    ingest([str(log)], store)
    return store


def test_layout_manifest_and_date_partitions(store: Store):
    manifest = json.loads((store.root / "manifest.json").read_text())
    files = [f["path"] for f in manifest["datasets"]["flows"]["files"]]
    assert sorted(Path(f).parent.name for f in files) == ["date=2023-11-14", "date=2023-11-15"]
    assert all(Path(f).name.startswith("part-") and f.endswith(".parquet") for f in files)
    assert sum(f["rows"] for f in manifest["datasets"]["flows"]["files"]) == 2


def test_views_have_the_canonical_schema(store: Store):
    con = store.connect()
    described = con.execute("DESCRIBE flows").fetchall()
    assert [(name, kind.replace('"', "")) for name, kind, *_ in described] == [
        (c.name, schema.duckdb_type(c.type).replace('"', "")) for c in schema.COLUMNS]
    assert [r[0] for r in con.execute("DESCRIBE quarantine").fetchall()] == schema.QUARANTINE_SCHEMA.names


def test_open_refuses_missing_and_foreign_folders(tmp_path: Path):
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "nowhere")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    with pytest.raises(StoreError, match="not a flowstage store"):
        Store.open(tmp_path / "other")
    with pytest.raises(StoreError, match="not a flowstage store"):
        Store.open(tmp_path / "other", create=True)


def test_a_crashed_writer_leaves_nothing_visible_and_the_next_writer_cleans_up(store: Store):
    # A writer renamed a part into place and died before its manifest swap, and left a staging folder.
    orphan = store.root / "flows" / "date=2023-11-14" / "part-orphan.parquet"
    duckdb.connect().execute(f"COPY (SELECT * FROM read_parquet('{store.files('flows')[0]}')) TO '{orphan}'").fetchall()
    staging = store.root / ".staging" / "dead"
    staging.mkdir(parents=True)
    (staging / "half.parquet").write_bytes(b"PAR1 half written")
    assert store.connect().execute("SELECT count(*) FROM flows").fetchone()[0] == 2
    with store.writer():
        pass
    assert not orphan.exists()
    assert not (store.root / ".staging").exists()
    assert store.connect().execute("SELECT count(*) FROM flows").fetchone()[0] == 2


@pytest.mark.parametrize("swapped", [False, True], ids=["before the manifest swap", "after the manifest swap"])
def test_a_commit_interrupted_at_its_manifest_swap_leaves_the_store_as_on_disk(store: Store, monkeypatch, swapped):
    # Ctrl-C inside commit(): the writer's copy of the manifest lists the new part either way; the parts kept
    # afterwards must be those the manifest file lists, no stray one and no committed one deleted.
    table = pa.Table.from_pylist([{"start_time": 1700200000_000000, "proto": "udp", "format": "synth"}],
                                 schema=schema.FLOW_SCHEMA)
    with store.writer() as writer:
        parts = writer.write_flow_table(table)
        write = writer._write_manifest

        def interrupted() -> None:
            if swapped:
                write()
            raise KeyboardInterrupt

        monkeypatch.setattr(writer, "_write_manifest", interrupted)
        with pytest.raises(KeyboardInterrupt):
            writer.commit(flows=parts)
        writer.clean_orphans()
    rows = 3 if swapped else 2
    assert store.connect().execute("SELECT count(*) FROM flows").fetchone()[0] == rows
    listed = {f["path"] for f in store.manifest()["datasets"]["flows"]["files"]}
    assert {p.relative_to(store.root).as_posix() for p in (store.root / "flows").rglob("*.parquet")} == listed


def test_second_writer_waits_then_refuses(store: Store):
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.writer():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        with pytest.raises(StoreError, match="another flowstage process is writing"), store.writer(timeout=0.3):
            pass
    finally:
        release.set()
        thread.join()
    with store.writer(timeout=1):
        pass


def test_read_only_connection_cannot_write_files(store: Store, tmp_path: Path):
    con = store.connect()
    target = store.root / "flows" / "injected.parquet"
    for statement in (f"COPY (SELECT 1) TO '{target}'", f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
                      f"COPY flows TO '{store.files('flows')[0]}'", f"EXPORT DATABASE '{tmp_path / 'dump'}'"):
        with pytest.raises(duckdb.Error):
            con.execute(statement).fetchall()
    with pytest.raises(duckdb.Error):
        con.execute("SET enable_external_access = true").fetchall()
    assert not target.exists() and not (tmp_path / "out.csv").exists()
    assert con.execute("SELECT count(*) FROM flows").fetchone()[0] == 2
    assert flowstage.connect(store.root).execute("SELECT count(*) FROM flows").fetchone()[0] == 2


def test_connections_draw_no_progress_bar(store: Store):
    # DuckDB's progress bar goes to standard output, where `--json` and CSV results go.
    for con in (store.connect(), store.connect(read_only=False), flowstage.connect(store.root)):
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)


def _verdicts(tmp_path: Path, name: str, value: int) -> Path:
    path = tmp_path / name
    duckdb.connect().execute(f"COPY (SELECT {value} AS verdict) TO '{path}'").fetchall()
    return path


def test_publish_defines_views_and_keeps_the_previous_version_for_running_readers(store: Store, tmp_path: Path):
    views = {"replay": "SELECT * FROM read_parquet({files:verdicts})",
             "replay_count": "SELECT count(*) AS n FROM replay"}
    store.publish("verdicts", [_verdicts(tmp_path, "a.parquet", 1)], views)
    reader = store.connect()
    assert reader.execute("SELECT verdict FROM replay").fetchall() == [(1,)]
    store.publish("verdicts", [_verdicts(tmp_path, "b.parquet", 2)], views)
    assert reader.execute("SELECT verdict FROM replay").fetchall() == [(1,)]  # opened before: still reads v1
    assert store.connect().execute("SELECT verdict FROM replay").fetchall() == [(2,)]
    assert store.connect().execute("SELECT n FROM replay_count").fetchall() == [(1,)]
    store.publish("verdicts", [_verdicts(tmp_path, "c.parquet", 3)], views)
    assert sorted(p.name for p in (store.root / "verdicts").iterdir()) == ["v2", "v3"]


def test_publish_refuses_builtin_names(store: Store, tmp_path: Path):
    with pytest.raises(StoreError):
        store.publish("flows", [_verdicts(tmp_path, "a.parquet", 1)], {})


def test_append_flows_writes_canonical_batches(store: Store):
    table = pa.Table.from_pylist(
        [{"start_time": pa.scalar(1700200000_000000, pa.timestamp("us", tz="UTC")).as_py(), "proto": "udp",
          "format": "synth", "source_line": i} for i in range(3)],
        schema=schema.FLOW_SCHEMA,
    )
    assert store.append_flows([table, table.to_batches()[0]], source="synth:test") == 6
    con = store.connect()
    assert con.execute("SELECT count(*) FROM flows WHERE format = 'synth'").fetchone()[0] == 6
    assert store.manifest()["sources"]["synth:test"]["records"] == 6


def test_an_ingest_batch_spanning_many_days_stores_every_day(tmp_path: Path):
    # One batch holding more days than a writer keeps files open for: the days closed first are stored too.
    log = tmp_path / "flows.log"
    log.write_text("".join(json.dumps({**RECORD, "start_time": 1700000000 + day * 86_400}) + "\n" for day in range(40)))
    store = Store.open(tmp_path / "store", create=True)
    assert ingest([str(log)], store).stored == 40
    con = store.connect()
    assert con.execute("SELECT count(DISTINCT start_time::DATE), count(*) FROM flows").fetchone() == (40, 40)
    assert sum(part["rows"] for part in store.manifest()["datasets"]["flows"]["files"]) == 40


_HIT_ACTIONS = st.sampled_from(["allow", "deny", "pass", None])
_TRACES = st.lists(st.one_of(st.none(), st.lists(_HIT_ACTIONS, max_size=4)), max_size=12)


def _hits(actions: list[str | None] | None) -> list[dict] | None:
    if actions is None:
        return None
    return [{"position": i, "tier": "default", "kind": "gnp", "namespace": None, "name": f"p{i}", "staged": False,
             "action": action, "rule_index": 0, "end_of_tier": False, "raw": None} for i, action in enumerate(actions)]


@settings(max_examples=200, deadline=None)
@given(traces=_TRACES, cut=st.integers(0, 12))
def test_the_stored_pending_action_is_what_the_view_computes_for_older_parts(traces, cut):
    # The store writes pending_action from Arrow; over parts written before it kept the column, the flows view
    # computes it in SQL. Both must say the same for every trace: none, empty, unreadable last hit, sliced arrays.
    column = pa.array([_hits(t) for t in traces], schema.POLICY_HITS).slice(min(cut, len(traces)))
    con = duckdb.connect()
    con.register("traces", pa.table({"i": pa.array(range(len(column)), pa.int64()), "pending_policies": column}))
    derived = schema.DERIVED_COLUMNS["pending_action"]
    in_sql = [r[0] for r in con.execute(f"SELECT {derived} FROM traces ORDER BY i").fetchall()]
    assert schema._last_action(column).to_pylist() == in_sql


def test_parts_written_before_the_store_kept_pending_action_get_it_from_the_view(store: Store, tmp_path: Path):
    # A part of layout 1: its file lacks pending_action and its manifest entry names no layout.
    trace = _hits(["pass", "deny"])
    old_schema = pa.schema([f for f in schema.FLOW_SCHEMA if f.name != "pending_action"])
    rows = [{"start_time": 1700000000 * 10**6, "reporter": "dst", "action": "allow", "pending_policies": trace,
             "source_file": "old.log", "source_line": 1},
            {"start_time": 1700000000 * 10**6, "reporter": "dst", "action": "allow", "source_file": "old.log",
             "source_line": 2}]
    path = store.root / "flows" / "date=2023-11-14" / "part-old.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=old_schema), path)
    manifest = json.loads((store.root / "manifest.json").read_text())
    manifest["datasets"]["flows"]["files"].append({"path": path.relative_to(store.root).as_posix(), "rows": 2})
    (store.root / "manifest.json").write_text(json.dumps(manifest))
    # ...next to parts this store writes, which keep the column
    store.append_flows([_appended(trace)], "appended")

    got = store.connect().execute(
        "SELECT source_file, source_line, pending_action FROM flows ORDER BY ALL").fetchall()
    assert [r for r in got if r[0] in ("old.log", "new.log")] == [
        ("new.log", 1, "deny"), ("old.log", 1, "deny"), ("old.log", 2, None)]
    assert [r[2] for r in got if r[0] not in ("old.log", "new.log")] == [None, None]
    layouts = [f.get("layout") for f in json.loads((store.root / "manifest.json").read_text())["datasets"]["flows"]["files"]]
    assert layouts.count(None) == 1 and layouts.count(2) == len(layouts) - 1


def _appended(trace: list[dict]) -> pa.Table:
    # A batch without the derived column: the store computes it.
    names = [n for n in schema.COLUMN_NAMES if n not in schema.DERIVED_COLUMNS]
    row = {n: None for n in names} | {"start_time": 1700000000 * 10**6, "reporter": "dst", "action": "allow",
                                       "pending_policies": trace, "source_file": "new.log", "source_line": 1}
    return pa.Table.from_pylist([row], schema=pa.schema([schema.FLOW_SCHEMA.field(n) for n in names]))
