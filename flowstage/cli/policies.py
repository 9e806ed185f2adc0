"""`flowstage policies lint | show`: check policy files the way Calico would, and list policies in evaluation order.

Both read files and directories (YAML, JSON, List wrappers) through flowstage.policy.loader.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from flowstage import console
from flowstage.errors import UsageError

if TYPE_CHECKING:
    from flowstage.policy.loader import PolicyBundle
    from flowstage.policy.validate import Problem

policies_app = typer.Typer(
    help="Check Calico and Kubernetes policy files, and list policies in the order Calico evaluates them.",
    no_args_is_help=True,
)

Paths = Annotated[
    list[Path], typer.Argument(metavar="PATH", help="Policy files or directories (.yaml, .yml, .json).")
]
NamespaceFiles = Annotated[
    list[Path],
    typer.Option(
        "--namespaces", metavar="FILE", help="Namespace list, e.g. `kubectl get ns -o yaml` (repeatable)."
    ),
]
PodFiles = Annotated[
    list[Path],
    typer.Option("--pods", metavar="FILE", help="Pod list, e.g. `kubectl get pods -A -o yaml` (repeatable)."),
]


def print_problems(problems: Iterable[Problem], to: Console = console.out) -> None:
    """Each problem on its own line(s), errors in red and warnings in yellow; text from files is escaped."""
    for problem in problems:
        to.print(console.escape(str(problem)), style="red" if problem.is_error else "yellow", soft_wrap=True)


def _summary(bundle: PolicyBundle) -> str:
    errors, warnings = len(bundle.errors), len(bundle.warnings)
    objects = {
        "policies": len(bundle.policies),
        "tiers": len(bundle.tiers),
        "profiles": len(bundle.profiles),
        "network sets": len(bundle.network_sets),
        "host endpoints": len(bundle.host_endpoints),
        "namespaces": len(bundle.namespaces),
        "pods": len(bundle.pods),
    }
    loaded = ", ".join(f"{count} {what}" for what, count in objects.items() if count) or "nothing"
    text = (
        f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} in "
        f"{len(bundle.files)} file{'s' * (len(bundle.files) != 1)}; loaded {loaded}"
    )
    if bundle.skipped:
        kinds = collections.Counter(s.kind for s in bundle.skipped)
        text += "; skipped (not modelled): " + ", ".join(f"{kind} ×{n}" for kind, n in sorted(kinds.items()))
    return text


@policies_app.command("lint")
def lint(
    paths: Paths,
    namespaces: NamespaceFiles = [],  # noqa: B006 - Typer reads the default, never mutates it
    pods: PodFiles = [],  # noqa: B006
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too, not only on errors.")
    ] = False,
) -> None:
    """Print every problem in the files at once, each with file, line, document, object and field.

    Exits 1 when there is an error (with --strict: any problem), 0 otherwise. Errors are what Calico or the Kubernetes API server would reject, and are left out of the model; warnings are accepted but probably not what was meant.

    Example: flowstage policies lint policies/ --namespaces namespaces.yaml
    """
    from flowstage.policy.loader import load_policies

    bundle = load_policies(paths, inventory=[*namespaces, *pods])
    print_problems(bundle.problems)
    console.err.print(console.escape(_summary(bundle)), soft_wrap=True)
    if bundle.errors or (strict and bundle.problems):
        raise typer.Exit(1)


def _order_text(order: float | None) -> str:
    if order is None:
        return "–"
    return str(int(order)) if float(order).is_integer() else str(order)


@policies_app.command("show")
def show(
    paths: Paths,
    policy_set: Annotated[
        str,
        typer.Option(
            "--set",
            help="all: every policy as loaded (staged included); current, proposed or pending: that set.",
        ),
    ] = "all",
    effective: Annotated[
        bool, typer.Option("--effective", help="Show the selector after Calico's namespace scoping.")
    ] = False,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Print the policies tier by tier, each tier's policies in the order Calico evaluates them.

    Columns: tier (its order and default action), order, name, kind, types, selector, staged (stagedAction).

    Example: flowstage policies show policies/ --set proposed
    """
    from flowstage.policy.listing import SET_CHOICES, evaluation_order
    from flowstage.policy.loader import load_policies

    if policy_set not in SET_CHOICES:
        raise UsageError(f"--set {policy_set!r}: choose one of {', '.join(SET_CHOICES)}")
    if output not in ("table", "json"):
        raise UsageError(f"--format {output!r}: choose table or json")
    bundle = load_policies(paths)
    print_problems(bundle.problems, to=console.err)
    rows = evaluation_order(bundle, policy_set, effective)
    if output == "json":
        console.out.print_json(json.dumps(rows))
    else:
        table = Table(show_lines=False)
        for column in ("tier", "order", "name", "kind", "types", "selector", "staged"):
            table.add_column(column, overflow="fold")
        for row in rows:
            tier = f"{row['tier']} ({_order_text(row['tier_order'])}, {row['tier_default_action']})"
            if not row["tier_defined"]:
                tier += " undefined"
            table.add_row(
                *(
                    console.escape(str(v))
                    for v in (
                        tier,
                        _order_text(row["order"]),
                        row["name"],
                        row["kind"],
                        ",".join(row["types"]),
                        row["selector"],
                        row["staged"],
                    )
                )
            )
        # Piped output gets room for whole selectors instead of the 80 columns rich assumes.
        wide = console.out if console.out.is_terminal else Console(width=240, highlight=False)
        wide.print(table)
    if bundle.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(policies_app, name="policies")
