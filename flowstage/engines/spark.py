"""flowstage on Apache Spark: replay, reports and SQL over a store at a local path or any URI Spark reads.

Spark runs the row-heavy SQL — distinct replay keys, the verdict join, every query in queries/ — translated from
DuckDB's dialect; the driver judges each distinct key with the same Python engine as `flowstage replay`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from flowstage import sqlfuncs
from flowstage.engines.spark_session import spark_session
from flowstage.engines.spark_store import SparkConnection, SparkQueryError, SparkStore, hadoop_files, is_uri
from flowstage.errors import StoreError, UsageError
from flowstage.replay.run import (
    DATASET,
    REPLAY_FILES,
    PolicyInputs,
    ProgressCallback,
    ReplaySummary,
    judge_keys,
)
from flowstage.store import RETAINED_VERSIONS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def open_store(store: str | Path, master: str | None = None) -> SparkStore:
    """The store at a local path or URI, its views registered on the Spark session (started if need be)."""
    return SparkStore.open(spark_session(master), store)


def open_replay(store: str | Path, master: str | None = None) -> SparkConnection:
    """A DuckDB-dialect connection on Spark to a replayed store, for `flowstage.report.build_report`."""
    from flowstage.report import ReplayMissingError

    opened = open_store(store, master)
    if "replay" not in opened.views:
        raise ReplayMissingError(
            f"{store} has no replay yet: run `flowstage replay --store {store} --policies POLICIES` first"
        )
    return opened.connect()


# --- replay ----------------------------------------------------------------------------------------------------


def replay(
    store: str | Path,
    inputs: PolicyInputs,
    *,
    master: str | None = None,
    batch_keys: int = 4096,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """`flowstage.replay.replay` with the keys extracted on Spark: judge every distinct key on this driver,
    then publish the verdicts into the store (its own folder, or the URI it lives at)."""
    return replay_store(open_store(store, master), inputs, batch_keys=batch_keys, workers=workers,
                        on_progress=on_progress)


def replay_store(
    store: SparkStore,
    inputs: PolicyInputs,
    *,
    batch_keys: int = 4096,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """Replay an opened Spark store; its views are registered again afterwards, showing the new replay."""
    root = store.local.root if store.local is not None else None
    # Beside the store when it is local, so publishing renames instead of copying; named as replay names its own.
    staging = Path(tempfile.mkdtemp(prefix=f".replay-{os.getpid()}-", dir=root))
    frames: list[DataFrame] = []

    def spark_keys(sql: str, path: Path, batch_rows: int) -> None:
        from pyspark import StorageLevel

        frame = store.sql(sql).persist(StorageLevel.MEMORY_AND_DISK)
        frames.append(frame)
        reader = arrow_reader(frame, batch_rows)
        try:
            with pq.ParquetWriter(path, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch, row_group_size=batch_rows)
        except SparkQueryError:
            raise
        except Exception as exc:
            raise SparkQueryError(f"Spark failed extracting the replay keys: {_first_line(exc)}") from None

    try:
        summary, views = judge_keys(inputs, spark_keys, staging, batch_keys=batch_keys, workers=workers,
                                    on_progress=on_progress)
        for frame in frames:
            frame.unpersist()
        published = time.perf_counter()
        files = [staging / f"{tag}.parquet" for tag in REPLAY_FILES]
        if store.local is not None:
            store.local.publish(DATASET, files, views)
        else:
            publish_uri(store, DATASET, files, views)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.timings["publish"] = time.perf_counter() - published
    summary.seconds += summary.timings["publish"]
    store.register_views()
    return summary


def arrow_reader(frame: DataFrame, batch_rows: int) -> pa.RecordBatchReader:
    """A Spark result streamed to this driver one partition at a time, as Arrow batches of `batch_rows` rows.

    Rows pass through Python objects: maps travel as their entry lists, because a map handed to Python loses the
    order of its entries, and the order is part of the value replay keys hash. Timestamps would take this
    process's local zone, so results with timestamps are refused (`DataFrame.toArrow()` carries them exactly).
    """
    from pyspark.sql import functions
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import MapType, TimestampNTZType, TimestampType

    if any(isinstance(f.dataType, TimestampType | TimestampNTZType) for f in frame.schema.fields):
        raise UsageError("arrow_reader streams rows without timestamps; read timestamped results with toArrow()")
    schema = to_arrow_schema(frame.schema)
    maps = [f.name for f in frame.schema.fields if isinstance(f.dataType, MapType)]
    ordered = frame.select(
        *(functions.map_entries(functions.col(f"`{f.name}`")).alias(f.name) if f.name in maps
          else functions.col(f"`{f.name}`") for f in frame.schema.fields)
    )

    def record(row: Any) -> dict[str, Any]:
        values = row.asDict(recursive=True)
        for name in maps:
            entries = values[name]
            values[name] = None if entries is None else [(e["key"], e["value"]) for e in entries]
        return values

    def batches() -> Iterator[pa.RecordBatch]:
        rows: list[dict[str, Any]] = []
        try:
            for row in ordered.toLocalIterator(prefetchPartitions=True):
                rows.append(record(row))
                if len(rows) >= batch_rows:
                    yield pa.RecordBatch.from_pylist(rows, schema=schema)
                    rows = []
        except Exception as exc:
            raise SparkQueryError(f"Spark failed while streaming rows: {_first_line(exc)}") from None
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def publish_uri(store: SparkStore, name: str, files: list[Path], views: dict[str, str]) -> None:
    """`Store.publish` for a store on object storage or HDFS: upload the files into `<name>/v<N>/`, then write the
    manifest in one go (on object storage a single object write is all-or-nothing; there is no writer lock, so
    run one writer at a time)."""
    fs = hadoop_files(store.session)
    manifest = store.manifest()
    previous = manifest["datasets"].get(name)
    version = (previous or {}).get("version", 0) + 1
    folder = f"{name}/v{version}"
    fs.delete(f"{store.location}/{folder}")  # left by a publish that stopped before its manifest write
    committed = []
    for local in files:
        if not local.is_file():
            raise StoreError(f"publish {name}: {local} is not a file")
        fs.upload(local, f"{store.location}/{folder}/{local.name}")
        committed.append({"path": f"{folder}/{local.name}"})
    retired = list((previous or {}).get("retired", []))
    if previous is not None:
        retired.append([f["path"] for f in previous["files"]])
    keep = RETAINED_VERSIONS - 1
    doomed, retired = (retired[:-keep], retired[-keep:]) if keep else (retired, [])
    manifest["datasets"][name] = {"version": version, "files": committed, "views": dict(views), "retired": retired,
                                  "published_at": datetime.now(UTC).isoformat()}
    manifest["generation"] = manifest.get("generation", 0) + 1
    manifest["updated_at"] = datetime.now(UTC).isoformat()
    fs.write_text(f"{store.location}/manifest.json", json.dumps(manifest, indent=1))
    for old in doomed:
        for relative in old:
            fs.delete(f"{store.location}/{relative}")


# --- ad-hoc SQL ------------------------------------------------------------------------------------------------


def query(store: str | Path, sql: str, master: str | None = None, params: dict[str, Any] | None = None) -> pa.Table:
    """One read-only DuckDB-dialect query over a store's views, run on Spark, as an Arrow table; `$name`
    parameters are bound from `params` (as values, never pasted into the SQL).

    The statement is checked before Spark starts: only queries (SELECT, WITH, VALUES, set operations) run.
    """
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise UsageError(f"the query does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise UsageError(f"give exactly one SQL statement (got {len(statements)})")
    if not isinstance(statements[0], exp.Query):
        kind = statements[0].key.upper()
        raise UsageError(f"flowstage sql is read-only: {kind} statements are refused; use SELECT")
    try:
        return open_store(store, master).run(sqlfuncs.rewrite(sql), params)
    except SparkQueryError as exc:
        raise UsageError(f"query failed: {exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def local_or_uri(store: str) -> str | Path:
    """A --store value as the Spark engine takes it: a URI stays text, anything else is a local path."""
    return store if is_uri(store) else Path(store)
