"""`flowstage explain`: the whole evaluation trace of one stored flow under the current, proposed and pending sets.

Parses options, calls flowstage.replay.explain, renders the row and each set's trace with rich (escaped).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from flowstage import console

if TYPE_CHECKING:
    from flowstage.replay import Explanation

HELP = """Print how one stored flow was judged: the row as logged, then for the current set, the proposed set
(and the pending set when the row logs a pending trace) every tier entered, every applicable policy, every rule
tried and why it did or did not match.

Name the row by the file and line it was ingested from (`--line flows.log:42`; a path suffix is enough when it
is unique) or by its row id (`--row`, the `row_id` column of the `replay` view). By default the policy and
inventory files of the last replay are used; pass --policies (and --namespaces / --pods) to try others.

Example:

  flowstage explain --store demo-store --line sample_logs/logs/flows.log:1
"""


def register(app: typer.Typer) -> None:
    app.command(name="explain", help=HELP)(explain_command)


def explain_command(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder.")],
    line: Annotated[str | None, typer.Option(help="FILE:LINE the row was ingested from.")] = None,
    row: Annotated[str | None, typer.Option("--row", help="Row id (`source_file:source_line`).")] = None,
    policies: Annotated[
        list[Path] | None,
        typer.Option("--policies", "-p", help="Policy file or folder (default: those of the last replay)."),
    ] = None,
    namespaces: Annotated[Path | None, typer.Option(help="`kubectl get namespaces -o yaml` output.")] = None,
    pods: Annotated[Path | None, typer.Option(help="`kubectl get pods -A -o yaml` output.")] = None,
) -> None:
    # Imported here so other commands start without loading the engine.
    from flowstage import explain, load_policies, open_store
    from flowstage.replay import PolicyProblemsError

    opened = open_store(store)
    inputs = None
    if policies:
        inputs = load_policies(policies, namespaces=namespaces, pods=pods)
        for problem in inputs.warnings:
            console.err.print(f"[yellow]warning:[/] {console.escape(str(problem))}")
        if inputs.errors:
            raise PolicyProblemsError(inputs.errors)
    render(explain(opened, line=line, row=row, policies=inputs))


_ROW_FIELDS = (
    "start_time",
    "end_time",
    "reporter",
    "action",
    "proto",
    "source_type",
    "source_namespace",
    "source_name",
    "source_name_aggr",
    "source_ip",
    "source_port",
    "source_labels",
    "dest_type",
    "dest_namespace",
    "dest_name",
    "dest_name_aggr",
    "dest_ip",
    "dest_port",
    "dest_labels",
    "dest_service_namespace",
    "dest_service_name",
    "enforced_policies",
    "pending_policies",
)


def _hit(hit: dict[str, Any]) -> str:
    """A policy-trace hit as logged, or in the 3.32+ string grammar when the raw string was not kept."""
    if hit.get("raw"):
        return str(hit["raw"])
    name = f"{hit['namespace']}/{hit['name']}" if hit.get("namespace") else hit.get("name")
    return f"{hit.get('position')}|{hit.get('tier')}|{hit.get('kind')}:{name}|{hit.get('action')}|{hit.get('rule_index')}"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return "  ".join(_hit(item) if isinstance(item, dict) else str(item) for item in value)
    return str(value)


def render(result: Explanation) -> None:
    from flowstage.policy.engine import trace_table, verdict_summary

    out = console.out
    table = Table(title=f"row {console.escape(result.row_id)}", show_header=False)
    table.add_column("field", style="dim")
    table.add_column("value", overflow="fold")
    for name in _ROW_FIELDS:
        value = result.row.get(name)
        if value is not None and value != []:
            table.add_row(name, console.escape(_show(value)))
    out.print(table)
    for note in result.notes:
        console.err.print(f"[yellow]note:[/] {console.escape(note)}")
    for set_name, verdict in result.verdicts.items():
        out.print(trace_table(verdict, title=f"{set_name} ({result.reporter} row)"))
    if result.stored is None:
        out.print("not in the last replay (run `flowstage replay` to store verdicts for it)")
        return
    stored = ", ".join(
        f"{s}: {result.stored.get(f'{s}_verdict')} by {result.stored.get(f'{s}_policy') or '-'} "
        f"rule {result.stored.get(f'{s}_rule')}"
        for s in ("current", "proposed")
    )
    out.print(f"stored by the last replay: {console.escape(stored)}", soft_wrap=True)
    for set_name, verdict in result.verdicts.items():
        if result.stored.get(f"{set_name}_verdict") not in (None, verdict.outcome.value):
            out.print(
                f"[yellow]the {set_name} verdict differs from the stored one "
                f"({console.escape(verdict_summary(verdict))}): the policies changed since the replay[/]"
            )
