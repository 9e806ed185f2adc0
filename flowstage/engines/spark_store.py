"""A flowstage store opened on Spark: its manifest read from a local folder or any URI Spark reads (s3a://, gs://,
abfss://, hdfs://, file://), every view of the store registered as a Spark temporary view translated from DuckDB's
dialect, and a connection object that runs DuckDB-dialect SQL (the report library's calls) on Spark.

Local folders keep the store's own lock and atomic renames; on object storage a publish is one manifest write.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from flowstage.engines.translate import to_spark
from flowstage.errors import FlowstageError, StoreError
from flowstage.store import MANIFEST, STORE_FORMAT, STORE_VERSION, Store

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_URI_ROOT = Path("/flowstage-store")  # where view SQL of a URI store places its files before they are rebased
CATALOG_VIEW = "duckdb_views"  # what DuckDB's duckdb_views() becomes: the views this store registered


class SparkQueryError(FlowstageError):
    """Spark refused or failed a query: the first line of its message, and where the SQL came from."""


def is_uri(store: str | Path) -> bool:
    """Whether `store` names a location by URI (scheme:…) rather than a local folder."""
    return isinstance(store, str) and bool(_URI.match(store)) and not re.match(r"^[A-Za-z]:[\\/]", store)


class SparkStore:
    """A store's Parquet files and views on a Spark session. Open with `SparkStore.open(session, store)`."""

    def __init__(self, session: SparkSession, location: str, local: Store | None) -> None:
        self.session = session
        self.location = location.rstrip("/")  # URI of the store folder, e.g. file:/data/store or s3a://b/store
        self.local = local  # the Store when the folder is on this machine
        self._tables: dict[tuple[str, ...], str] = {}
        self.views: list[str] = []

    @classmethod
    def open(cls, session: SparkSession, store: str | Path) -> SparkStore:
        """Open the store at a local path or a URI and register its views on `session`."""
        if is_uri(store):
            opened = cls(session, str(store), None)
        else:
            local = Store.open(store)
            opened = cls(session, f"file:{local.root.as_posix()}", local)
        opened.register_views()
        return opened

    # --- files ---------------------------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        """The committed manifest, read fresh."""
        if self.local is not None:
            return self.local.manifest()
        path = f"{self.location}/{MANIFEST}"
        try:
            text = hadoop_files(self.session).read_text(path)
        except FileNotFoundError:
            raise StoreError(f"no store at {self.location} (no {MANIFEST}): ingest into a folder, then copy it there") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StoreError(f"{path} is damaged ({exc}); restore it from a backup or copy the store again") from None
        if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
            raise StoreError(f"{path} is not a flowstage manifest")
        if data.get("version", 0) > STORE_VERSION:
            raise StoreError(f"{self.location} was written by a newer flowstage (store version {data['version']}); upgrade flowstage")
        return data

    def _sql_root(self) -> Path:
        return self.local.root if self.local is not None else _URI_ROOT

    def uri(self, path: str) -> str:
        """The URI Spark reads for a file path as the store's view SQL names it."""
        relative = PurePosixPath(path).relative_to(self._sql_root().as_posix())
        return f"{self.location}/{relative.as_posix()}"

    def parquet_table(self, files: list[str]) -> str:
        """A temporary view reading these Parquet files (union by name, as DuckDB's union_by_name)."""
        key = tuple(files)
        name = self._tables.get(key)
        if name is None:
            name = f"flowstage_parquet_{len(self._tables)}_{uuid.uuid4().hex[:8]}"
            reader = self.session.read.option("mergeSchema", "true")
            reader.parquet(*(self.uri(f) for f in files)).createOrReplaceTempView(name)
            self._tables[key] = name
        return name

    # --- views ---------------------------------------------------------------------------------------------

    def register_views(self) -> list[str]:
        """Create every view of the store (flows, quarantine, and each published dataset's) as a temp view."""
        manifest = self.manifest()
        pending = {name: _duckdb_view_text(text) for name, text in Store(self._sql_root()).view_sql(manifest).items()}
        translated = {name: self.translate(text) for name, text in pending.items()}
        created: list[str] = []
        # Views may build on each other (replay reads flows and verdicts): create until nothing is left.
        while translated:
            failed: dict[str, str] = {}
            errors: list[str] = []
            for name, text in translated.items():
                try:
                    self.session.sql(f"CREATE OR REPLACE TEMP VIEW `{name}` AS {text}")
                    created.append(name)
                except Exception as exc:
                    failed[name] = text
                    errors.append(f"{name}: {_spark_message(exc)}")
            if len(failed) == len(translated):
                raise StoreError(f"views of {self.location} cannot be built on Spark: {'; '.join(errors)}")
            translated = failed
        self.views = created
        rows = [(name, False) for name in created]
        self.session.createDataFrame(rows, "view_name string, internal boolean").createOrReplaceTempView(CATALOG_VIEW)
        _register_functions(self.session)
        return created

    def translate(self, sql: str) -> str:
        """DuckDB-dialect SQL over this store's views as Spark SQL."""
        return to_spark(sql, self.parquet_table)

    def sql(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> DataFrame:
        """Run DuckDB-dialect SQL on Spark (translated); `$name` parameters bound from `params`."""
        text = self.translate(sql)
        try:
            if params is None:
                return self.session.sql(text)
            return self.session.sql(text, args=dict(params) if isinstance(params, dict) else list(params))
        except Exception as exc:
            raise SparkQueryError(f"Spark could not run the query{_origin(sql)}: {_spark_message(exc)}") from None

    def run(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> pa.Table:
        """Run DuckDB-dialect SQL on Spark and collect the answer as Arrow.

        A CTE the statement reads more than once is computed once, as DuckDB does: Spark would inline it at
        every reference and scan the replay again each time.
        """
        text = self.translate(sql)
        origin = _origin(sql)
        shared: list[DataFrame] = []
        try:
            text = self._materialize_shared_ctes(text, shared)
            if params is None:
                frame = self.session.sql(text)
            else:
                frame = self.session.sql(text, args=dict(params) if isinstance(params, dict) else list(params))
            return frame.toArrow()
        except SparkQueryError:
            raise
        except Exception as exc:
            raise SparkQueryError(f"Spark could not run the query{origin}: {_spark_message(exc)}") from None
        finally:
            for frame in shared:
                frame.unpersist()

    def _materialize_shared_ctes(self, text: str, shared: list[DataFrame]) -> str:
        tree = sqlglot.parse_one(text, read="spark")
        with_ = tree.args.get("with_")
        if with_ is None:
            return text
        for cte in list(with_.expressions):
            name = cte.alias
            readers = [t for t in tree.find_all(exp.Table) if t.name == name and not t.db]
            if len(readers) < 2 or cte.this.find(exp.Placeholder) is not None:
                continue
            # The body with the CTEs before it (those still inline), as a query of its own.
            earlier = [c.copy() for c in with_.expressions[: with_.expressions.index(cte)]]
            body = cte.this.copy()
            if earlier:
                body.set("with_", exp.With(expressions=earlier))
            frame = self.session.sql(body.sql(dialect="spark"))
            columns = [c.name for c in cte.args["alias"].columns]
            if columns:  # `name (a, b) AS (…)`: the CTE's own column names
                frame = frame.toDF(*columns)
            frame = frame.localCheckpoint(eager=True)
            shared.append(frame)
            table = f"flowstage_cte_{name}_{uuid.uuid4().hex[:8]}"
            frame.createOrReplaceTempView(table)
            for reader in readers:
                reader.set("this", exp.to_identifier(table))
                if not reader.alias:
                    reader.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
            cte.pop()
        if not with_.expressions:
            tree.set("with_", None)
        return tree.sql(dialect="spark")

    def connect(self) -> SparkConnection:
        return SparkConnection(self)


def _duckdb_view_text(text: str) -> str:
    """View SQL as the store writes it, without leading comment lines (sqlglot keeps them as /* */)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def _origin(sql: str) -> str:
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("-- Question:"):
            return f" ({stripped.removeprefix('--').strip()[:120]})"
        if stripped and not stripped.startswith("--"):
            break
    return ""


def _spark_message(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


class SparkResult:
    """A Spark query's answer, read the ways the report library reads a DuckDB result (run on first read)."""

    def __init__(self, store: SparkStore, sql: str, params: dict[str, Any] | Sequence[Any] | None) -> None:
        self._store = store
        self._sql = sql
        self._params = params
        self._table: pa.Table | None = None

    def to_arrow_table(self) -> pa.Table:
        if self._table is None:
            self._table = self._store.run(self._sql, self._params)
        return self._table

    def fetchall(self) -> list[tuple[Any, ...]]:
        table = self.to_arrow_table()
        columns = [c.to_pylist() for c in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    @property
    def description(self) -> list[tuple[str, ...]]:
        return [(name,) for name in self.to_arrow_table().column_names]


class SparkConnection:
    """DuckDB-dialect SQL over a Spark store: `sql`, `execute` and `close` as the report library calls them on a
    DuckDB connection, each statement translated and run on Spark."""

    def __init__(self, store: SparkStore) -> None:
        self.store = store

    def sql(self, query: str, params: dict[str, Any] | Sequence[Any] | None = None) -> SparkResult:
        return SparkResult(self.store, query, params)

    def execute(self, query: str, parameters: dict[str, Any] | Sequence[Any] | None = None) -> SparkResult:
        return self.sql(query, parameters)

    def close(self) -> None:
        """Nothing to release: the session belongs to whoever opened it."""


# --- SQL functions ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _selector(text: str) -> Any:
    from flowstage.selector import parse_selector

    return parse_selector(text)


def selector_match(selector: str | None, labels: dict[str, str | None] | None) -> bool | None:
    """flowstage's `selector_match(selector, labels)` for Spark: the same answers as the DuckDB function."""
    if selector is None:
        return None
    return _selector(selector).matches({k: v for k, v in (labels or {}).items() if v is not None})


def _register_functions(session: SparkSession) -> None:
    from pyspark.sql.types import BooleanType

    session.udf.register("selector_match", selector_match, BooleanType())


# --- files by URI (Hadoop FileSystem, through the session's JVM) -----------------------------------------------


class HadoopFiles:
    """Reading and writing files at any URI the Spark session's Hadoop configuration can reach."""

    def __init__(self, session: SparkSession) -> None:
        self.jvm = session.sparkContext._jvm  # type: ignore[attr-defined]
        self.conf = session.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]

    def _fs(self, uri: str) -> tuple[Any, Any]:
        path = self.jvm.org.apache.hadoop.fs.Path(uri)
        fs = path.getFileSystem(self.conf)
        # No .crc side files on a local disk: flowstage itself rewrites the manifest, which would leave one stale.
        fs.setWriteChecksum(False)
        fs.setVerifyChecksum(False)
        return fs, path

    def exists(self, uri: str) -> bool:
        fs, path = self._fs(uri)
        return bool(fs.exists(path))

    def read_text(self, uri: str) -> str:
        fs, path = self._fs(uri)
        if not fs.exists(path):
            raise FileNotFoundError(uri)
        stream = fs.open(path)
        try:
            return str(self.jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def write_text(self, uri: str, text: str) -> None:
        """Write a whole file in one go: on object storage the object appears complete or not at all."""
        fs, path = self._fs(uri)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def upload(self, local: Path, uri: str) -> None:
        fs, path = self._fs(uri)
        fs.copyFromLocalFile(False, True, self.jvm.org.apache.hadoop.fs.Path(local.absolute().as_uri()), path)

    def delete(self, uri: str) -> None:
        fs, path = self._fs(uri)
        fs.delete(path, True)

    def listing(self, uri: str) -> Iterator[str]:
        fs, path = self._fs(uri)
        if fs.exists(path):
            for status in fs.listStatus(path):
                yield str(status.getPath().toString())


def hadoop_files(session: SparkSession) -> HadoopFiles:
    """Files at the URIs the session's Hadoop configuration reaches (credentials, endpoints: spark.hadoop.*)."""
    return HadoopFiles(session)

