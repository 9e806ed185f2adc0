"""The store folder: atomic Parquet parts, the manifest that commits them, the writer lock, and `connect()`.

Readers see exactly the files `manifest.json` lists; writers stage, fsync, rename, then swap the manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from flowstage.errors import StoreError
from flowstage.options import LOCK_TIMEOUT

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

# DuckDB, Arrow and the schema are imported where they are used: a writer that only commits what other processes
# staged (a parallel ingest's parent) needs none of them.

MANIFEST = "manifest.json"
LOCK = ".lock"
STAGING = ".staging"
STORE_FORMAT = "flowstage-store"
STORE_VERSION = 1
# Flow part layouts: 2 stores schema.DERIVED_COLUMNS; parts of layout 1 (no `layout` in the manifest) do not,
# and the flows view computes those columns for them.
FLOWS_LAYOUT = 2
RETAINED_VERSIONS = 2  # a replaced dataset version stays on disk so running readers can finish
DEFAULT_LOCK_TIMEOUT = LOCK_TIMEOUT
MEMORY_LIMIT_ENV = "FLOWSTAGE_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GiB"
FLOWS = "flows"
QUARANTINE = "quarantine"
_BUILTIN = (FLOWS, QUARANTINE)
T = TypeVar("T")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _sql_list(paths: Iterable[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _empty_select(fields: pa.Schema) -> str:
    from flowstage import schema

    cols = ", ".join(f'CAST(NULL AS {schema.duckdb_type(f.type)}) AS "{f.name}"' for f in fields)
    return f"SELECT {cols} WHERE false"


def _typed_select(fields: pa.Schema, files: list[Path], computed: dict[str, str] | None = None) -> str:
    """Schema columns in schema order over the listed Parquet files (older parts may lack newer columns; those
    in `computed` are computed by its SQL instead of read)."""
    from flowstage import schema

    if not files:
        return _empty_select(fields)
    computed = computed or {}

    def value(name: str) -> str:
        return computed.get(name, f'"{name}"')

    cols = ", ".join(f'CAST({value(f.name)} AS {schema.duckdb_type(f.type)}) AS "{f.name}"' for f in fields)
    return f"SELECT {cols} FROM read_parquet({_sql_list(files)}, union_by_name = true)"


@dataclass(frozen=True)
class Part:
    """One committed Parquet file: its path relative to the store and its row count."""

    path: str
    rows: int


class Store:
    """A flowstage store folder. Open with `Store.open(path)`; query with `connect()`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- opening -------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], create: bool = False) -> Store:
        """Open the store at `path`; with `create`, make an empty store there if there is none yet."""
        root = Path(path).expanduser().absolute()
        manifest = root / MANIFEST
        if manifest.is_file():
            store = cls(root)
            store.manifest()  # fail early on a damaged manifest
            return store
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file, not a store folder; point --store at a folder")
        if not create:
            if not root.exists():
                raise StoreError(f"no store at {root}: run `flowstage ingest LOGS --store {root}` to create one")
            raise StoreError(f"{root} is not a flowstage store (no {MANIFEST}); point --store at a store folder")
        if root.exists() and not all(_store_own(p.name) for p in root.iterdir()):
            raise StoreError(f"{root} exists and is not a flowstage store; choose an empty or new folder")
        root.mkdir(parents=True, exist_ok=True)
        store = cls(root)
        with store.writer() as writer:
            if not manifest.is_file():
                writer.commit()
        return store

    def manifest(self) -> dict[str, Any]:
        """The committed manifest (a fresh read: another writer may have committed since)."""
        path = self.root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{self.root} is not a flowstage store (no {MANIFEST})") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path} is damaged ({exc}); restore it from a backup or re-ingest into a new store") from None
        if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
            raise StoreError(f"{path} is not a flowstage manifest")
        if data.get("version", 0) > STORE_VERSION:
            raise StoreError(f"{self.root} was written by a newer flowstage (store version {data['version']}); upgrade flowstage")
        return data

    # --- reading -------------------------------------------------------------------------------------------

    def files(self, dataset: str, manifest: dict[str, Any] | None = None) -> list[Path]:
        """Absolute paths of the committed files of `dataset` (flows, quarantine or a published dataset)."""
        m = manifest or self.manifest()
        entry = m["datasets"].get(dataset)
        if entry is None:
            raise StoreError(f"the store has no dataset {dataset!r} (it has: {', '.join(sorted(m['datasets']))})")
        return [self.root / p["path"] for p in entry["files"]]

    def view_sql(self, manifest: dict[str, Any] | None = None) -> dict[str, str]:
        """Every view the store defines, name → SELECT text, in creation order."""
        from flowstage import schema

        m = manifest or self.manifest()
        views = {
            FLOWS: self._flows_select(m),
            QUARANTINE: _typed_select(schema.QUARANTINE_SCHEMA, self.files(QUARANTINE, m)),
        }
        for entry in m["datasets"].values():
            for view, text in entry.get("views", {}).items():
                views[view] = self._expand(text, m)
        return views

    def _flows_select(self, manifest: dict[str, Any]) -> str:
        """The flows view: every part in the schema's columns, the derived ones computed for older parts."""
        from flowstage import schema

        parts = manifest["datasets"][FLOWS]["files"]
        older = [self.root / p["path"] for p in parts if p.get("layout", 1) < FLOWS_LAYOUT]
        if not older:
            return _typed_select(schema.FLOW_SCHEMA, [self.root / p["path"] for p in parts])
        current = [self.root / p["path"] for p in parts if p.get("layout", 1) >= FLOWS_LAYOUT]
        selects = [_typed_select(schema.FLOW_SCHEMA, older, computed=schema.DERIVED_COLUMNS)]
        if current:
            selects.append(_typed_select(schema.FLOW_SCHEMA, current))
        return "\nUNION ALL\n".join(selects)

    def _expand(self, text: str, manifest: dict[str, Any]) -> str:
        for name in manifest["datasets"]:
            token = "{files:" + name + "}"
            if token in text:
                text = text.replace(token, _sql_list(self.files(name, manifest)))
        return text

    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view per dataset; read-only unless asked otherwise.

        Read-only connections cannot write files: DuckDB may only open the store's committed files, and the
        configuration is locked, so `COPY … TO`, `EXPORT DATABASE` and re-enabling access all fail.
        """
        import duckdb

        m = self.manifest()
        con = _connection()
        pending = self.view_sql(m)
        # Views may build on each other (a dataset's view reading `flows`): create until nothing is left.
        while pending:
            failed: dict[str, str] = {}
            errors: list[str] = []
            for name, text in pending.items():
                try:
                    con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {text}').fetchall()
                except duckdb.Error as exc:
                    failed[name] = text
                    errors.append(f"{name}: {exc}")
            if len(failed) == len(pending):
                raise StoreError(f"views of {self.root} cannot be built: {'; '.join(errors)}")
            pending = failed
        _install_sql_functions(con)
        if read_only:
            _lock_read_only(con, [f for name in m["datasets"] for f in self.files(name, m)])
        return con

    # --- writing -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[StoreWriter]:
        """Hold the store's writer lock (waiting up to `timeout` seconds for another writer to finish)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            f"another flowstage process is writing to {self.root} (waited {timeout:g} s); "
                            "wait for it to finish or raise --lock-timeout"
                        ) from None
                    time.sleep(0.1)
            writer = StoreWriter(self)
            writer.clean_orphans()
            try:
                yield writer
            finally:
                shutil.rmtree(writer.staging, ignore_errors=True)
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def append_flows(self, batches: Iterable[pa.RecordBatch | pa.Table], source: str) -> int:
        """Write canonical-schema batches as flow parts; rows written.

        Batches go straight from Arrow to Parquet, one file per day folder, in a thread of their own while the
        caller makes the next batch: memory holds a few batches, never the whole input. A part is committed
        (with the source's record count) once it holds PART_ROWS rows, and every open part when the batches
        end or the caller's iterator fails; a failed write commits nothing more.
        """
        import pyarrow as pa

        from flowstage import schema

        total = 0
        with self.writer() as writer:
            day_files = [_DayFiles(writer.staging / f"append-{i}") for i in range(APPEND_THREADS)]
            committing = threading.Lock()

            def commit(done: list[tuple[Path, str, int]]) -> None:
                nonlocal total
                with committing:
                    parts = writer.place_days(done)
                    if not parts:
                        return
                    rows = sum(p.rows for p in parts)
                    entry = writer.source(source) or {"kind": "append", "records": 0}
                    entry["records"] += rows
                    writer.commit(flows=parts, sources={source: entry})
                    total += rows

            behind: WriteBehind[pa.Table] = WriteBehind(
                [lambda table, files=files: commit(files.write(table)) for files in day_files])
            try:
                for batch in batches:
                    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
                    missing = [n for n in schema.COLUMN_NAMES if n not in table.column_names]
                    if [n for n in missing if n not in schema.DERIVED_COLUMNS]:
                        raise StoreError(f"append_flows from {source}: batch lacks columns {', '.join(missing)}")
                    for name in missing:  # derived ones, computed below
                        field = schema.FLOW_SCHEMA.field(name)
                        table = table.append_column(field, pa.nulls(table.num_rows, field.type))
                    if table.num_rows:
                        typed = table.select(list(schema.COLUMN_NAMES)).cast(schema.FLOW_SCHEMA)
                        behind.put(schema.with_derived_columns(typed))
            finally:
                try:
                    behind.finish()
                except BaseException:
                    for files in day_files:
                        files.abandon()
                    raise
                commit([done for files in day_files for done in files.close()])
        return total

    def publish(self, name: str, files: list[Path], views: dict[str, str]) -> None:
        """Replace dataset `name` by `files` and define `views` over it (`{files:NAME}` stands for a file list).

        Files move into `<store>/<name>/v<N>/` and the manifest swaps in one step; the previous version's
        files stay until a later version replaces them, so connections opened before still read.
        """
        if name in _BUILTIN or not name.isidentifier():
            raise StoreError(f"cannot publish dataset {name!r}: use a plain identifier other than {', '.join(_BUILTIN)}")
        names = [Path(f).name for f in files]
        if len(set(names)) != len(names):
            raise StoreError(f"publish {name}: file names must be unique, got {names}")
        with self.writer() as writer:
            writer.publish(name, [Path(f) for f in files], views)


class StoreWriter:
    """What a writer may do while it holds the lock: stage Parquet parts and commit them with the manifest."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.root
        self.staging = self.root / STAGING / uuid.uuid4().hex
        self._manifest: dict[str, Any] | None = None

    @property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            path = self.root / MANIFEST
            self._manifest = self.store.manifest() if path.exists() else _new_manifest()
        return self._manifest

    def source(self, key: str) -> dict[str, Any] | None:
        """What the store has consumed of an input (by absolute path or append label), or None."""
        entry = self.manifest["sources"].get(key)
        return dict(entry) if entry is not None else None

    def sources(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.manifest["sources"].items()}

    # --- orphans -------------------------------------------------------------------------------------------

    def clean_orphans(self) -> None:
        """Remove what a crashed writer left: staging folders and parts renamed in but never committed."""
        shutil.rmtree(self.root / STAGING, ignore_errors=True)
        for tmp in self.root.glob(f".{MANIFEST}.*.tmp"):
            tmp.unlink(missing_ok=True)
        if not (self.root / MANIFEST).exists():
            return
        # The manifest on disk decides what is committed, not this writer's copy: a commit interrupted (Ctrl-C)
        # between updating the copy and swapping the file in lists parts the store never committed.
        self._manifest = None
        keep = set()
        for entry in self.manifest["datasets"].values():
            keep.update(p["path"] for p in entry["files"])
            for old in entry.get("retired", []):
                keep.update(old)
        for dataset in self.manifest["datasets"]:
            folder = self.root / dataset
            if not folder.is_dir():
                continue
            for path in folder.rglob("*"):
                if path.is_file() and path.relative_to(self.root).as_posix() not in keep:
                    path.unlink()
            for path in sorted(folder.rglob("*"), reverse=True):
                if path.is_dir() and not any(path.iterdir()):
                    path.rmdir()

    # --- staging -------------------------------------------------------------------------------------------

    def write_flow_table(self, table: pa.Table) -> list[Part]:
        """Write canonical rows as one part per day under `flows/date=…/`, renamed in, not yet committed."""
        from flowstage import schema

        files = _DayFiles(self.staging / uuid.uuid4().hex)
        try:
            # More days than stay open at once: the days closed early are parts too.
            done = files.write(schema.with_derived_columns(table.cast(schema.FLOW_SCHEMA)))
        except BaseException:
            files.abandon()
            raise
        return self.place_days(done + files.close())

    def place_days(self, files: list[tuple[Path, str, int]]) -> list[Part]:
        """Rename finished flow files, (path, day, rows), under `flows/date=<day>/`; not yet committed."""
        return [part for path, day, rows in files
                for part in self._place(path.parent, FLOWS, [(path, rows)], folder=f"date={day}")]

    def write_quarantine(self, con: duckdb.DuckDBPyConnection, select_sql: str) -> list[Part]:
        """Run `select_sql` (quarantine columns) into one quarantine part, renamed into place, not yet committed."""
        out = self.staging / uuid.uuid4().hex
        out.mkdir(parents=True)
        target = out / f"part-{uuid.uuid4().hex}.parquet"
        written = con.execute(
            f"COPY ({select_sql}) TO $path (FORMAT parquet, COMPRESSION zstd, RETURN_STATS)", {"path": str(target)}
        ).fetchall()
        return self._place(out, QUARANTINE, [(Path(name), rows) for name, rows, *_ in written])

    def _place(self, staged: Path, dataset: str, written: list[tuple[Path, int]], folder: str = "") -> list[Part]:
        """fsync each staged file and rename it under `dataset` (into `folder`, or its folder below `staged`)."""
        parts = []
        for path, rows in sorted(written):
            if rows == 0:
                path.unlink()
                continue
            _fsync_file(path)
            relative = Path(dataset) / (folder or path.parent.relative_to(staged)) / path.name
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            _fsync_dir(target.parent)
            parts.append(Part(relative.as_posix(), rows))
        return parts

    # --- committing ----------------------------------------------------------------------------------------

    def commit(self, flows: Iterable[Part] = (), quarantine: Iterable[Part] = (),
               sources: dict[str, dict[str, Any]] | None = None) -> None:
        """Make staged parts and source progress visible in one atomic manifest swap."""
        m = self.manifest
        for dataset, parts in ((FLOWS, flows), (QUARANTINE, quarantine)):
            # Flow parts record their layout: the view computes what an older part does not store.
            layout = {"layout": FLOWS_LAYOUT} if dataset == FLOWS else {}
            m["datasets"][dataset]["files"].extend({"path": p.path, "rows": p.rows, **layout} for p in parts)
        for key, entry in (sources or {}).items():
            m["sources"][key] = entry
        self._write_manifest()

    def publish(self, name: str, files: list[Path], views: dict[str, str]) -> None:
        m = self.manifest
        previous = m["datasets"].get(name)
        version = (previous or {}).get("version", 0) + 1
        folder = self.root / name / f"v{version}"
        if folder.exists():
            shutil.rmtree(folder)  # left by a publish that crashed before its commit
        folder.mkdir(parents=True)
        committed = []
        for src in files:
            if not src.is_file():
                raise StoreError(f"publish {name}: {src} is not a file")
            target = folder / src.name
            try:
                os.replace(src, target)
            except OSError:
                # Another filesystem: copy under a temporary name in the store, then rename into place.
                tmp = folder / f".{src.name}.{uuid.uuid4().hex}.tmp"
                shutil.copyfile(src, tmp)
                _fsync_file(tmp)
                os.replace(tmp, target)
                src.unlink()
            committed.append({"path": target.relative_to(self.root).as_posix()})
        _fsync_dir(folder)
        retired = list((previous or {}).get("retired", []))
        if previous is not None:
            retired.append([f["path"] for f in previous["files"]])
        # The current version plus RETAINED_VERSIONS - 1 retired ones stay on disk.
        cut = max(len(retired) - (RETAINED_VERSIONS - 1), 0)
        doomed, retired = retired[:cut], retired[cut:]
        m["datasets"][name] = {"version": version, "files": committed, "views": dict(views), "retired": retired,
                               "published_at": datetime.now(UTC).isoformat()}
        self._write_manifest()
        for old in doomed:
            for rel in old:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / rel).unlink()
                with contextlib.suppress(OSError):
                    (self.root / rel).parent.rmdir()  # once its last file is gone

    def _write_manifest(self) -> None:
        m = self.manifest
        m["generation"] = m.get("generation", 0) + 1
        m["updated_at"] = datetime.now(UTC).isoformat()
        tmp = self.root / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(m, fh, indent=1, sort_keys=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / MANIFEST)
        _fsync_dir(self.root)


PART_ROWS = 4 * 1024 * 1024  # rows per appended part: a few hundred MB of Parquet at most
# Parquet encoding is single-threaded per file: two files written at once keep both cores busy.
APPEND_THREADS = 2
OPEN_DAYS = 16  # appended days with a part open at once; the least recently written closes first
_DAY_MICROS = 86_400 * 1_000_000
_NO_DAY = -(2**63)  # numpy's smallest int64: rows with neither start nor end


def _with_statistics() -> list[str]:
    """Columns whose min/max statistics serve filters: plain ones. For label maps and policy traces they only cost
    time."""
    import pyarrow as pa

    from flowstage import schema

    return [f.name for f in schema.FLOW_SCHEMA if not pa.types.is_nested(f.type)]


def _by_day(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """Split canonical rows by the UTC day of their window (`unknown` when it has neither start nor end)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    start = table.column("start_time")
    if start.null_count == 0:
        # The usual batch: one day, told by the extremes without a pass per row in Python.
        extremes = pc.min_max(start.cast(pa.int64()))
        first, last = (extremes[k].as_py() // _DAY_MICROS for k in ("min", "max"))
        if first == last:
            return [(_day_name(first), table)]
    when = pc.coalesce(start, table.column("end_time"))
    known = np.asarray(pc.is_valid(when).to_numpy(zero_copy_only=False))
    micros = np.asarray(pc.fill_null(when.cast(pa.int64()), 0).to_numpy())
    days = np.where(known, np.floor_divide(micros, _DAY_MICROS), _NO_DAY)
    distinct = np.unique(days)
    if len(distinct) == 1:
        return [(_day_name(int(distinct[0])), table)]
    return [(_day_name(int(day)), table.filter(pa.array(days == day))) for day in distinct]


def _day_name(day: int) -> str:
    import numpy as np

    return "unknown" if day == _NO_DAY else str(np.datetime64(day, "D"))


class _DayFiles:
    """The Parquet files one append is writing: one open file per day, closed at PART_ROWS rows or at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.open: dict[str, tuple[pq.ParquetWriter, Path, int]] = {}

    def write(self, table: pa.Table) -> list[tuple[Path, str, int]]:
        """Write the rows into their days' files; returns the files that are now complete (path, day, rows)."""
        done = []
        for day, rows in _by_day(table):
            if day in self.open:
                file, path, count = self.open.pop(day)
            else:
                if len(self.open) >= OPEN_DAYS:
                    done.append(self._close(next(iter(self.open))))
                (file, path), count = self._start(), 0
            file.write_table(rows)
            count += rows.num_rows
            self.open[day] = (file, path, count)  # re-inserted last: the dict runs from least recently written
            if count >= PART_ROWS:
                done.append(self._close(day))
        return done

    def close(self) -> list[tuple[Path, str, int]]:
        return [self._close(day) for day in list(self.open)]

    def abandon(self) -> None:
        """Close the files without committing them (their folder is staging, removed with the writer)."""
        for file, _, _ in self.open.values():
            with contextlib.suppress(Exception):
                file.close()
        self.open.clear()

    def _start(self) -> tuple[pq.ParquetWriter, Path]:
        import pyarrow.parquet as pq

        from flowstage import schema

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{uuid.uuid4()}.parquet"
        # Snappy, as DuckDB writes by default: the store's parts read alike whichever writer made them.
        return pq.ParquetWriter(path, schema.FLOW_SCHEMA, compression="snappy",
                                write_statistics=_with_statistics()), path

    def _close(self, day: str) -> tuple[Path, str, int]:
        file, path, count = self.open.pop(day)
        file.close()
        return path, day, count


class WriteBehind(Generic[T]):
    """Writes behind the caller: queued items go through `workers`, a thread each, while the caller makes the
    next one. One item waits in the queue, so memory holds a few items; a worker's error is raised in the
    caller's thread at its next `put` or at `finish`. With one worker, items are handled in order."""

    def __init__(self, workers: list[Callable[[T], None]]) -> None:
        self.queue: queue.Queue[T | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self._run, args=(work,), name="flowstage-write", daemon=True)
                        for work in workers]
        for thread in self.threads:
            thread.start()

    def _run(self, work: Callable[[T], None]) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    work(item)
                except BaseException as exc:  # raised in the caller's thread at its next put or at finish
                    self.error = exc

    def put(self, item: T) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait for the queued work; raise the error the work met, if any."""
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error


def _store_own(name: str) -> bool:
    """Whether a name in a store folder is the store's own: an empty store being created holds only these (the
    manifest too, when another process creates the same store at the same moment)."""
    return name in (LOCK, STAGING, MANIFEST) or (name.startswith(f".{MANIFEST}.") and name.endswith(".tmp"))


def memory_limit() -> str:
    """DuckDB's memory limit for flowstage's connections: $FLOWSTAGE_MEMORY_LIMIT (e.g. `8GiB`), else 1 GiB."""
    return os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT


def _connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that shows and partitions times in UTC and draws no progress bar, and whose
    memory is bounded: what a big join or aggregate needs beyond the limit spills to a temporary folder."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'").fetchall()
    # DuckDB's own default is 80% of the machine, and an in-memory database spills into ./.tmp of whatever folder
    # the command runs in. A fixed limit keeps a report over 10 million rows as small as one over 10 thousand.
    try:
        con.execute(f"SET memory_limit = '{memory_limit()}'").fetchall()
    except duckdb.Error as exc:
        raise StoreError(f"${MEMORY_LIMIT_ENV}={memory_limit()!r} is not a memory size DuckDB accepts (e.g. 4GiB): "
                         f"{str(exc).splitlines()[0]}") from None
    # One folder per connection, made only when DuckDB spills and removed when it closes: DuckDB names its spill
    # files alike in every process.
    spill = Path(tempfile.gettempdir()) / f"flowstage-duckdb-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'").fetchall()
    # DuckDB draws its progress bar on standard output, which carries results (`--json`, CSV). In Jupyter without
    # ipywidgets the bar is already off and DuckDB refuses any change to the setting.
    if con.execute("SELECT current_setting('enable_progress_bar')").fetchall() != [(False,)]:
        con.execute("SET enable_progress_bar = false").fetchall()
    return con


def _new_manifest() -> dict[str, Any]:
    return {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "generation": 0,
        "datasets": {FLOWS: {"files": []}, QUARANTINE: {"files": []}},
        "sources": {},
    }


def _install_sql_functions(con: duckdb.DuckDBPyConnection) -> None:
    try:
        sqlfuncs = importlib.import_module("flowstage.sqlfuncs")
    except ModuleNotFoundError as exc:
        if exc.name != "flowstage.sqlfuncs":
            raise
        return
    sqlfuncs.install(con)


def _lock_read_only(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    # With external access off DuckDB opens only the listed files. Exact files, not the store folder: an
    # allowed folder would also accept `COPY … TO` new files in it, while an allowed file cannot be
    # overwritten because DuckDB writes through a temporary name next to it. The locked configuration keeps
    # a query from switching access back on.
    con.execute(f"SET allowed_paths = {_sql_list(files)}").fetchall()
    con.execute("SET enable_external_access = false").fetchall()
    con.execute("SET lock_configuration = true").fetchall()


def connect(path: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with the views of the store at `path` (for notebooks and scripts)."""
    return Store.open(path).connect()
