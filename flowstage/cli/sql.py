"""`flowstage sql`: run a read-only SQL query over a store's views and render the result.

Only queries are accepted (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); the connection itself also
refuses to write files.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowstage.cli._engine import ENGINE, SPARK_MASTER, STORE_HELP_URI
from flowstage.engines import DUCKDB, SPARK, check_engine
from flowstage.errors import UsageError
from flowstage.options import OUTPUT_FORMATS

if TYPE_CHECKING:
    import duckdb

HELP = """Run a read-only SQL query over a store (DuckDB dialect).

Views: `flows` (one row per flow record), `quarantine` (records that could not be read), and the views of
every published dataset (e.g. `replay` after `flowstage replay`). QUERY may be `-` to read it from stdin.

Example:

    flowstage sql --store flows-store "SELECT reporter, action, count(*) FROM flows GROUP BY ALL"

With --engine spark the query (still DuckDB's dialect) is translated and run by Apache Spark, over a store
folder or a URI Spark reads:

    flowstage sql --engine spark --store s3a://flows/store "SELECT dest_namespace, count(*) FROM replay WHERE would_break GROUP BY ALL"
"""

_READ_ONLY = {"SELECT", "EXPLAIN", "PRAGMA"}


def register(app: typer.Typer) -> None:
    app.command("sql", help=HELP)(sql_command)


def _rewrite(query: str) -> str:
    try:
        sqlfuncs = importlib.import_module("flowstage.sqlfuncs")
    except ModuleNotFoundError as exc:
        if exc.name != "flowstage.sqlfuncs":
            raise
        return query
    return sqlfuncs.rewrite(query)


def run_query(con: duckdb.DuckDBPyConnection, query: str) -> duckdb.DuckDBPyRelation:
    """Check that `query` is a single read-only statement and return it as a relation."""
    import duckdb

    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise UsageError(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise UsageError(f"give exactly one SQL statement (got {len(statements)})")
    kind = statements[0].type.name
    if kind not in _READ_ONLY:
        raise UsageError(f"flowstage sql is read-only: {kind} statements are refused; use SELECT")
    try:
        return con.sql(query)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {exc}") from None


def sql_command(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="One SQL query, or - to read it from stdin.")],
    store: Annotated[str, typer.Option("--store", "-s", help="Store folder." + STORE_HELP_URI)],
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(OUTPUT_FORMATS)}.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    engine: Annotated[str, ENGINE] = DUCKDB,
    spark_master: Annotated[str | None, SPARK_MASTER] = None,
) -> None:
    import duckdb

    from flowstage.output import write_result
    from flowstage.store import Store

    if format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown --format {format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    text = sys.stdin.read() if query == "-" else query
    if not text.strip():
        raise UsageError("the query is empty")
    if check_engine(engine) == SPARK:
        from flowstage.engines import spark

        write_result(spark.query(spark.local_or_uri(store), text, spark_master), format, output)
        return
    con = Store.open(store).connect(read_only=True)
    try:
        relation = run_query(con, _rewrite(text))
        try:
            write_result(relation, format, output)
        except duckdb.Error as exc:
            raise UsageError(f"query failed: {exc}") from None
    finally:
        con.close()
