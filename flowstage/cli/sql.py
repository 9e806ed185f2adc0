"""`flowstage sql`: run a read-only SQL query, or a query of queries/ by name, over a store and render the result.

Parses options and renders; flowstage.adhoc checks the statement (read-only, one statement) and binds parameters.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from flowstage.cli._engine import ENGINE, SPARK_MASTER, STORE_HELP_URI
from flowstage.engines import DUCKDB, SPARK, check_engine
from flowstage.errors import UsageError
from flowstage.options import OUTPUT_FORMATS

HELP = """Run a read-only SQL query over a store (DuckDB dialect), or a query of queries/ by name.

Views: `flows` (one row per flow record), `quarantine` (records that could not be read), and the views of
every published dataset (e.g. `replay` after `flowstage replay`). QUERY may be `-` to read it from stdin.

QUERY may also name a file in queries/ (`would_break` or `would_break.sql`; `flowstage report --list` names
them): its `$name` parameters are bound from --param NAME=VALUE (missing ones are NULL), never pasted into the
SQL. Plain SQL may use `$name` parameters too. Values that read as numbers are bound as numbers.

Examples:

    flowstage sql --store flows-store "SELECT reporter, action, count(*) FROM flows GROUP BY ALL"

    flowstage sql --store demo-store would_break --param top=5 --format csv

With --engine spark the query (still DuckDB's dialect) is translated and run by Apache Spark, over a store
folder or a URI Spark reads:

    flowstage sql --engine spark --store s3a://flows/store "SELECT dest_namespace, count(*) FROM replay WHERE would_break GROUP BY ALL"
"""


def register(app: typer.Typer) -> None:
    app.command("sql", help=HELP)(sql_command)


def sql_command(
    query: Annotated[
        str, typer.Argument(metavar="QUERY", help="One SQL query, a query of queries/ by name, or - to read it from stdin.")
    ],
    store: Annotated[str, typer.Option("--store", "-s", help="Store folder." + STORE_HELP_URI)],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-P", metavar="NAME=VALUE", help="A value for the query's $NAME; repeat for more."),
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(OUTPUT_FORMATS)}.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    engine: Annotated[str, ENGINE] = DUCKDB,
    spark_master: Annotated[str | None, SPARK_MASTER] = None,
) -> None:
    import duckdb

    from flowstage import adhoc, connect, sql
    from flowstage.interrupt import interruptible
    from flowstage.output import write_result

    if format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown --format {format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    text = sys.stdin.read() if query == "-" else query
    if not text.strip():
        raise UsageError("the query is empty")
    params = adhoc.parse_params(param or [])
    if check_engine(engine) == SPARK:
        write_result(adhoc.run_on_spark(store, text, params, spark_master), format, output)
        return
    con = connect(store)

    def answer() -> None:
        relation = sql(con, text, params)
        try:
            write_result(relation, format, output)
        except duckdb.Error as exc:
            raise UsageError(f"query failed: {exc}") from None

    try:
        interruptible(con, answer)  # Ctrl-C stops the query at once
    finally:
        con.close()
