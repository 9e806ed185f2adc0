"""DuckDB SQL → Spark SQL with sqlglot, for the store's views, replay's key extraction and the queries in queries/.

sqlglot bridges most of the dialect gap (lambdas, list functions, 1-based indexes, NULL ordering, parameters); the
rules here cover what it leaves: Parquet scans, hashing, ordered list aggregates, map lookups, catalog functions.
SQL with no faithful Spark spelling is refused with the reason: fix the query, not the translator.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import duckdb
import sqlglot
from sqlglot import exp

from flowstage.errors import FlowstageError

ParquetTable = Callable[[list[str]], str]  # the files a `read_parquet(...)` names -> a Spark table reading them

# read_parquet options the Spark store reproduces: it always reads with mergeSchema (union by name).
_PARQUET_OPTIONS = {"union_by_name"}


class TranslationError(FlowstageError):
    """SQL that has no faithful Spark spelling: names the construct and what to write instead."""


def to_spark(sql: str, parquet_table: ParquetTable | None = None) -> str:
    """One DuckDB statement as Spark SQL; `read_parquet(files)` becomes the table `parquet_table(files)` names.

    `$name` parameters become Spark's `:name` markers (bind them with `spark.sql(text, args=...)`).
    """
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise TranslationError(f"the SQL does not parse as DuckDB SQL: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise TranslationError(f"give exactly one SQL statement (got {len(statements)})")
    tree = statements[0].transform(partial(_rewrite, parquet_table), copy=True)
    try:
        return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.SqlglotError as exc:
        raise TranslationError(f"no Spark spelling for this SQL: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _rewrite(parquet_table: ParquetTable | None, node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Table) and isinstance(node.this, exp.ReadParquet):
        return _parquet_scan(node, node.this, parquet_table)
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous) and not node.this.expressions:
        # A catalog function such as duckdb_views(): the caller registers a Spark view of that name.
        return exp.Table(this=exp.to_identifier(node.this.name), alias=node.args.get("alias"))
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "hash":
            return _hash(node)
        if name == "map_extract_value":
            # DuckDB's map lookup; Spark's element_at gives NULL for a missing key as well (ANSI mode off).
            return exp.Anonymous(this="element_at", expressions=list(node.expressions))
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        return _ordered_list(node)
    return node


def _parquet_scan(table: exp.Table, scan: exp.ReadParquet, parquet_table: ParquetTable | None) -> exp.Table:
    if parquet_table is None:
        raise TranslationError("read_parquet(...) needs a store: run the SQL through a Spark store's views")
    files_arg, *options = scan.expressions
    for option in options:
        name = option.this.name if isinstance(option, exp.EQ) else option.sql()
        if name.lower() not in _PARQUET_OPTIONS:
            raise TranslationError(f"read_parquet option {name!r} has no Spark counterpart here; drop it")
    files = _constant_files(files_arg)
    return exp.Table(this=exp.to_identifier(parquet_table(files)), alias=table.args.get("alias"))


def _constant_files(files_arg: exp.Expression) -> list[str]:
    """The file list a read_parquet argument names, evaluated by DuckDB (it is a constant: a list literal,
    possibly filtered, as the store writes it)."""
    text = files_arg.sql(dialect="duckdb")
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        (value,) = con.execute(f"SELECT {text}").fetchone()  # type: ignore[misc]
    except duckdb.Error as exc:
        raise TranslationError(f"read_parquet({text[:200]}): the file list must be a constant ({_first_line(exc)})") from None
    finally:
        con.close()
    files = [value] if isinstance(value, str) else list(value or [])
    if not files or not all(isinstance(f, str) for f in files):
        raise TranslationError(f"read_parquet({text[:200]}) names no files")
    return files


def _hash(node: exp.Anonymous) -> exp.Expression:
    """DuckDB's hash → Spark's xxhash64. The values differ, so a hash is only ever compared with one the same
    engine computed. Spark's hash skips NULL arguments, which would make (NULL, 'x') and ('x', NULL) collide:
    a flag per argument keeps where the NULLs are."""
    arguments: list[exp.Expression] = []
    for argument in node.expressions:
        arguments += [argument, exp.Is(this=argument.copy(), expression=exp.Null())]
    return exp.Anonymous(this="xxhash64", expressions=arguments)


def _ordered_list(node: exp.ArrayAgg) -> exp.Expression:
    """`array_agg(x ORDER BY x)` → `array_sort(collect_list(x))`; Spark cannot order a list by another column."""
    order: exp.Order = node.this
    value = order.this
    keys = order.expressions
    if len(keys) != 1 or keys[0].this != value or keys[0].args.get("desc"):
        raise TranslationError(
            f"{node.sql(dialect='duckdb')}: Spark can only sort a list by its own values, ascending; "
            "sort the list afterwards (list_sort) or order by the aggregated value"
        )
    return exp.Anonymous(this="array_sort", expressions=[exp.Anonymous(this="collect_list", expressions=[value])])
