"""`flowstage selector …`: check a Calico selector, try it on labels, or see the SQL it becomes.

Everything here calls flowstage.selector; an invalid selector is reported by the CLI's error handler
with Calico's reason and a caret under the problem (exit code 2).
"""

from __future__ import annotations

from typing import Annotated

import typer

from flowstage import console
from flowstage.errors import UsageError

selector_app = typer.Typer(
    help="Check Calico selectors, try them on labels, and see the SQL they become.",
    no_args_is_help=True,
)

_EXPRESSION = typer.Argument(..., metavar="SELECTOR", help="Selector text, quoted for your shell.")


@selector_app.command("check")
def check(
    expression: str = _EXPRESSION,
    uid: bool = typer.Option(False, "--uid", help="Also print Calico's unique ID of the selector."),
) -> None:
    """Print the selector in Calico's canonical form, or say what is wrong and where.

    Example: flowstage selector check 'app=="db" && env!="dev"'
    """
    from flowstage.selector import parse_selector

    selector = parse_selector(expression)
    _print(str(selector))
    if uid:
        _print(selector.uid)


@selector_app.command("match")
def match(
    expression: str = _EXPRESSION,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", metavar="KEY=VALUE", help="A label of the endpoint; repeat for more."),
    ] = None,
) -> None:
    """Print true or false: does an endpoint with these labels match? Exit code 0 for true, 1 for false.

    Example: flowstage selector match 'app == "db" && env != "dev"' -l app=db -l tier=backend
    """
    from flowstage.selector import parse_selector

    labels = dict(_key_value(item) for item in label or [])
    matched = parse_selector(expression).matches(labels)
    _print("true" if matched else "false")
    raise typer.Exit(0 if matched else 1)


@selector_app.command("sql")
def sql(
    expression: str = _EXPRESSION,
    labels_expr: str = typer.Option(
        "dest_labels", "--labels", metavar="SQL", help="The MAP(VARCHAR, VARCHAR) expression to test."
    ),
) -> None:
    """Print the DuckDB boolean expression the selector becomes (what `flowstage sql` inlines).

    Example: flowstage selector sql 'has(tier) && app in {"db", "cache"}' --labels src_labels
    """
    from flowstage.selector import parse_selector

    _print(parse_selector(expression).to_sql(labels_expr))


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--label {item!r}: write a label as KEY=VALUE, e.g. -l app=db")
    return key, value


def _print(text: str) -> None:
    # soft_wrap keeps long selectors and SQL on one line when piped.
    console.out.print(console.escape(text), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(selector_app, name="selector")
