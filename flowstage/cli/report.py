"""`flowstage report`: run the reports in `queries/` over a replayed store and render them.

A thin skin over `flowstage.report`: parse options, build the report, write it in the chosen format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowstage import console
from flowstage.cli._engine import ENGINE, SPARK_MASTER, STORE_HELP_URI
from flowstage.engines import DUCKDB
from flowstage.errors import UsageError

FORMATS = ("table", "markdown", "json", "csv", "html")
SCREEN_TOP = 20  # rows per report when a person reads the result


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        console.write_stdout(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{output}: cannot write the report ({exc.strerror})") from exc
    console.err.print(f"wrote {console.escape(str(output))}")


def report(
    store: Annotated[
        str | None, typer.Option("--store", "-s", help="Store folder, ingested and replayed." + STORE_HELP_URI)
    ] = None,
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NAME]...", help="Reports to run (file names in queries/ without .sql); all when omitted."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | markdown | json | csv | html.")] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (a folder for csv with several reports), not stdout."),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(
            "--top", "-n", min=1,
            help=f"Rows per report. Default: {SCREEN_TOP} for table, markdown and html; every row for json and csv.",
        ),
    ] = None,
    list_reports: Annotated[
        bool, typer.Option("--list", help="List the available reports and the question each answers.")
    ] = False,
    engine: Annotated[str, ENGINE] = DUCKDB,
    spark_master: Annotated[str | None, SPARK_MASTER] = None,
) -> None:
    """What promoting the staged policies would break, ranked, then the evidence.

    Runs every query in queries/ over the store's replay: would-break by destination and by source, lockout risk, per staged policy, safety-net reliance, newly allowed, unknown verdicts, model fidelity. The terminal output starts with a one-paragraph verdict; `flowstage report --list` names every report.

    Examples:

      flowstage report --store demo-store

      flowstage report would_break --store demo-store --top 5

      flowstage report --store demo-store --format html --output report.html

      flowstage report --engine spark --store s3a://flows/store --format json --output report.json
    """
    from flowstage import run_report
    from flowstage.report import discover, render
    from flowstage.report import html as html_report

    if list_reports:
        for query in discover().values():
            console.out.print(f"[bold]{console.escape(query.name)}[/]  {console.escape(query.question)}", soft_wrap=True)
        return
    if store is None:
        raise UsageError("--store is required: the store folder that `flowstage replay` judged")
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if top is None and fmt in ("table", "markdown", "html"):
        top = SCREEN_TOP
    built = run_report(store, names=names or None, top=top, engine=engine, spark_master=spark_master)
    if fmt == "table":
        if output is not None:
            raise UsageError("--output needs a file format: use --format markdown, json, csv or html")
        render.write_terminal(built)
    elif fmt == "markdown":
        _emit(render.markdown(built), output)
    elif fmt == "json":
        _emit(render.to_json(built), output)
    elif fmt == "html":
        _emit(html_report.render_html(built), output)
    else:
        text = render.write_csv(built, output)
        if text is not None:
            _emit(text, None)
        else:
            console.err.print(f"wrote {console.escape(str(output))}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
