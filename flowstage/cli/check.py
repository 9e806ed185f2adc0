"""`flowstage check`: the promotion gate for CI — exit 0 when promotion is safe by the thresholds, 1 when not
(saying why), 2 on bad input; optionally a JUnit XML file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowstage import console

if TYPE_CHECKING:
    from flowstage.report.check import CheckResult


def print_result(result: CheckResult) -> None:
    """The verdict, then one line per check; failing checks list their worst offenders."""
    out = console.out
    out.print(console.escape(result.verdict))
    for outcome in result.outcomes:
        mark = "[green]ok[/]  " if outcome.passed else "[bold red]FAIL[/]"
        out.print(f"{mark} {console.escape(outcome.name)}: {console.escape(outcome.message)}")
        if not outcome.passed:
            for line in outcome.evidence:
                out.print(f"       {console.escape(line)}")
    out.print("[green]promotion is safe by these thresholds[/]" if result.passed else "[bold red]promotion is not safe[/]")


def check(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder, ingested and replayed.")],
    max_would_break: Annotated[
        int, typer.Option("--max-would-break", min=0, help="Flows that may break (as the would-break report counts).")
    ] = 0,
    max_unknown: Annotated[
        int | None,
        typer.Option("--max-unknown", min=0, help="Flows whose verdict after promotion may be unknown. Default: no limit."),
    ] = None,
    allow_lockout: Annotated[
        bool,
        typer.Option(
            "--allow-lockout",
            help="Pass even when a would-be deny touches DNS, the API server, failsafe ports, kube-system / "
            "calico-system or host endpoints.",
        ),
    ] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write the result as JUnit XML to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of text.")] = False,
) -> None:
    """Is it safe to promote the staged policies? Exit 0 = yes, 1 = no (and why), 2 = bad input.

    Judges the same figures as `flowstage report`: would-break flows, unknown verdicts after promotion, and lockout risk (a would-be deny touching DNS, the API server, failsafe ports, cluster namespaces or host endpoints).

    Examples:

      flowstage check --store demo-store

      flowstage check --store demo-store --max-would-break 100 --max-unknown 0 --junit flowstage-check.xml
    """
    from flowstage import check as check_promotion

    result = check_promotion(store, max_would_break=max_would_break, max_unknown=max_unknown,
                             allow_lockout=allow_lockout, junit=junit)
    if as_json:
        payload = {
            "passed": result.passed,
            "verdict": result.verdict,
            "checks": [
                {"name": o.name, "passed": o.passed, "skipped": o.skipped, "message": o.message,
                 "evidence": list(o.evidence)}
                for o in result.outcomes
            ],
        }
        console.write_stdout(json.dumps(payload, indent=2) + "\n")
    else:
        print_result(result)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
