"""Ad-hoc SQL over a store: one read-only statement with `selector_match` inlined, or a file of `queries/` run by
name with its `$name` parameters bound as values, never pasted into the SQL text.

`flowstage sql` and `flowstage.sql()` both run their text through `statement()`; DuckDB runs it in `run()`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from flowstage import sqlfuncs
from flowstage.errors import UsageError
from flowstage.report import queries
from flowstage.report.build import ReplayMissingError

if TYPE_CHECKING:
    import pyarrow as pa

# DuckDB's statement types that only read: SELECT covers WITH, VALUES, DESCRIBE, SHOW and SUMMARIZE.
_READ_ONLY = {"SELECT", "EXPLAIN", "PRAGMA"}
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.sql)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Statement:
    """What runs: the SQL text, the values bound to its `$name` parameters, and the queries/ file it came from."""

    sql: str
    params: dict[str, Any] | None
    query: queries.Query | None = None


def param_value(text: str) -> Any:
    """A `--param` value as the query sees it: integers and decimals as numbers, `true` / `false` as booleans,
    `null` as NULL, anything else as text."""
    lowered = text.strip().lower()
    if _INTEGER.fullmatch(lowered):
        return int(lowered)
    if _DECIMAL.fullmatch(lowered):
        return float(lowered)
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    return text


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """`["top=10", "ns=prod"]` → `{"top": 10, "ns": "prod"}`; a malformed item names itself and the form."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().removeprefix("$")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"--param {item!r}: write a parameter as NAME=VALUE, e.g. --param top=10")
        params[name] = param_value(value)
    return params


def statement(text: str, params: Mapping[str, Any] | None = None, directory: Path = queries.QUERIES_DIR) -> Statement:
    """The statement `text` stands for: a query file named `would_break` (or `would_break.sql`) in `directory`,
    with `params` bound to the parameters it declares (missing ones NULL), or else `text` itself as SQL."""
    if not text.strip():
        raise UsageError("the query is empty")
    named = queries.resolve_named(text, directory)
    if named is None and _BARE_NAME.fullmatch(text.strip()):
        # A bare name is never a read-only SQL statement: say which names exist instead of a parser error.
        named = queries.find(text.strip(), directory)
    if named is None:
        return Statement(text, dict(params) if params else None)
    unknown = sorted(set(params or {}) - set(named.parameters))
    if unknown:
        takes = ", ".join(named.parameters) or "no parameters"
        raise UsageError(f"{named.path.name} has no parameter {', '.join(unknown)}; it takes: {takes}")
    return Statement(named.sql, named.bind(**(params or {})), named)


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one read-only statement, before DuckDB runs any of it."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise UsageError(f"give exactly one SQL statement (got {len(statements)})")
    kind = statements[0].type.name
    if kind not in _READ_ONLY:
        raise UsageError(f"flowstage sql is read-only: {kind} statements are refused; use SELECT")


def run(con: duckdb.DuckDBPyConnection, text: str, params: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyRelation:
    """Run SQL text or a queries/ file by name on `con` (a store connection) and return the result as a relation.

    Rows are fetched when the relation is read, so a failure can still surface then as a `duckdb.Error`.
    """
    chosen = statement(text, params)
    check_read_only(con, chosen.sql)
    if chosen.query is not None:
        _require_replay(con, chosen.query)
    try:
        relation = con.sql(sqlfuncs.rewrite(chosen.sql), params=chosen.params)
        return relation if chosen.query is None else _as_reported(relation)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {exc}") from None


def _as_reported(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """A report's counts as `flowstage report` gives them: DuckDB sums BIGINT into HUGEINT, a report's counts
    fit BIGINT, and BIGINT stays a number in JSON and pandas."""
    if not any(str(t) == "HUGEINT" for t in relation.types):
        return relation
    quoted = {name: '"' + name.replace('"', '""') + '"' for name in relation.columns}
    columns = [
        f"CAST({quoted[name]} AS BIGINT) AS {quoted[name]}" if str(t) == "HUGEINT" else quoted[name]
        for name, t in zip(relation.columns, relation.types, strict=True)
    ]
    return relation.project(", ".join(columns))


def run_on_spark(store: str, text: str, params: Mapping[str, Any] | None = None,
                 master: str | None = None) -> pa.Table:
    """`run` with Apache Spark doing the work (store: a folder or a URI Spark reads); the rows as Arrow."""
    from flowstage.engines import spark

    chosen = statement(text, params)
    location = spark.local_or_uri(store)
    if chosen.query is None:
        if chosen.params:
            raise UsageError("--param binds values only in a query of queries/ run by name, or with --engine duckdb")
        return spark.query(location, chosen.sql, master)
    con = spark.open_replay(location, master=master)
    try:
        return queries.run(con, chosen.query, **(params or {}))
    finally:
        con.close()


def _require_replay(con: duckdb.DuckDBPyConnection, query: queries.Query) -> None:
    views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    if "replay" not in views:
        raise ReplayMissingError(
            f"{query.path.name} reads the replay, and this store has none yet: run "
            "`flowstage replay --store STORE --policies POLICIES` first"
        )
