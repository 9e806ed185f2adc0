"""`flowstage ingest`: read flow-log files, folders, globs or stdin into a store and print what happened.

Exit codes: 0 stored what could be read; 1 with --strict when anything was quarantined or a named file could
not be read, and always when inputs were given but no record could be read at all; 2 usage errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flowstage import console
from flowstage.ingest.detect import FORMATS
from flowstage.options import INGEST_BATCH_ROWS, LOCK_TIMEOUT

if TYPE_CHECKING:
    from flowstage.ingest import IngestSummary

HELP = """Read Calico flow logs into a store (created if missing).

PATH may be a file, a folder (walked recursively; files that are not flow logs are skipped), a glob, or `-`
for standard input. Formats are detected per file: Calico Enterprise/Cloud felix flows.log (plain, .gz, .zst),
Elasticsearch/Linseed exports, S3 archives, Calico OSS Goldmane and Whisker. Records that cannot be read go
to the store's `quarantine` view with file, line and reason. Re-running adds only what is new.

Exit status: 0 when everything readable was stored; 1 with --strict if a record was quarantined or a named
file could not be read, and 1 whenever no record at all could be read from failing files; 2 on usage errors.

Example:

    flowstage ingest /var/log/calico/flowlogs/ --store flows-store
"""


def register(app: typer.Typer) -> None:
    app.command("ingest", help=HELP)(ingest_command)


def ingest_command(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Files, folders, globs, or - for stdin.")],
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (created if missing).")],
    format: Annotated[
        str, typer.Option("--format", "-f", help=f"auto, or force one of: {', '.join(FORMATS)}.")
    ] = "auto",
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any record was quarantined or a file failed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", help="Lines per batch: memory use grows with it, not with file size.")
    ] = INGEST_BATCH_ROWS,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="Seconds to wait for another writer of the store.")
    ] = LOCK_TIMEOUT,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes reading at once (default: one per CPU core); memory "
                                 "grows with it. Large plain files are read in pieces, compressed ones side by side.")
    ] = None,
) -> None:
    from flowstage import ingest_logs, open_store

    target = open_store(store, create=True)
    with console.progress("ingesting (bytes)") as bar:

        def advance(done: int, total: int) -> None:
            if bar is not None:
                bar.update(bar.task_ids[0], completed=done, total=total)

        summary = ingest_logs(paths, target, format=format, batch_rows=batch_rows, lock_timeout=lock_timeout,
                              progress=advance, workers=workers)
    if as_json:
        console.out.print_json(json.dumps(summary.to_dict()))
    else:
        _print_summary(summary, store)
    for failed in summary.errors:
        console.err.print(f"[bold red]error:[/] {console.escape(failed.source)}: {console.escape(failed.note)}")
    raise typer.Exit(_exit_code(summary, strict))


def _exit_code(summary: IngestSummary, strict: bool) -> int:
    if summary.errors and summary.read == 0:
        return 1
    if strict and (summary.errors or summary.quarantined):
        return 1
    return 0


def _print_summary(summary: IngestSummary, store: Path) -> None:
    table = Table(title=f"ingest into {console.escape(str(store))}", title_justify="left")
    for column in ("file", "format", "status", "read", "stored", "quarantined"):
        numeric = column in ("read", "stored", "quarantined")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for f in summary.files:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(f.quarantined.items()))
        status = f.status + (f": {f.note}" if f.note else "")
        table.add_row(console.escape(f.source), f.format or "-", console.escape(status), str(f.read),
                      str(f.stored), console.escape(reasons) or "0")
    console.out.print(table)
    quarantined = summary.quarantined
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(quarantined.items()))
    console.out.print(
        f"{len(summary.files)} files, {summary.read} records read, {summary.stored} stored, "
        f"{sum(quarantined.values())} quarantined" + (f" ({reasons})" if reasons else "")
    )
    if quarantined:
        console.out.print(f"see them with: flowstage sql --store {console.escape(str(store))} "
                          "\"SELECT source_file, source_line, reason, detail FROM quarantine\"")
