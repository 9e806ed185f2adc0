"""`flowstage promote`: write the policy files as they would be with every staged object promoted.

The command only parses arguments and renders; flowstage.policy.promote does the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowstage import console
from flowstage.cli.policies import print_problems

if TYPE_CHECKING:
    from flowstage.policy.promote import PromotionPlan


def _report(plan: PromotionPlan, written: list[Path] | None) -> None:
    say = console.err
    for step in plan.steps:
        say.print(console.escape(f"  {step}"), soft_wrap=True)
    print_problems(plan.warnings, to=say)
    changed = sum(1 for f in plan.files if f.changed)
    if written is None:
        say.print(
            f"dry run: {changed} of {len(plan.files)} file(s) would change; nothing written", soft_wrap=True
        )
        return
    say.print(
        console.escape(f"wrote {len(written)} file(s) to {plan.output} ({changed} changed by promotion)"),
        soft_wrap=True,
    )
    if plan.deletions:
        say.print(
            console.escape(f"to finish, delete the objects listed in {plan.deletions_file}"), soft_wrap=True
        )


def promote(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", help="Policy files or directories.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Directory to write to.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print a unified diff instead of writing.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty DIR.")] = False,
    deletions: Annotated[
        Path | None,
        typer.Option(
            "--deletions",
            metavar="FILE",
            help="Where to list objects to delete (default DIR/deletions.txt).",
        ),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", help="Refuse unless `flowstage check` passes on this store's replay of PATH."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even when the --store check fails.")
    ] = False,
) -> None:
    """Promote every staged policy: DIR becomes the whole policy set as it would be after promotion.

    Staged objects with stagedAction Set lose the word Staged (a StagedKubernetesNetworkPolicy becomes a networking.k8s.io/v1 NetworkPolicy) and their stagedAction, keeping key order, comments and quoting; the enforced objects they replace are left out. Delete objects become entries in DIR/deletions.txt, for kubectl delete -f (never apply it); Learn and Ignore objects are not promoted. Every other object and file is copied unchanged.

    Example: flowstage promote policies/ --output promoted/ --dry-run

    Example: flowstage promote policies/ --output promoted/ --store demo-store
    """
    from flowstage import promote as plan_promotion
    from flowstage.policy.promote import PromotionError

    try:
        promotion = plan_promotion(paths, output, store=store, force=force, deletions=deletions)
    except PromotionError as err:
        print_problems(err.problems, to=console.err)
        raise
    for reason in promotion.overridden:
        console.err.print(console.escape(f"warning (--force): {reason}"), soft_wrap=True)
    if dry_run:
        console.out.print(console.escape(promotion.diff()), end="", soft_wrap=True, highlight=False)
        _report(promotion.plan, None)
        return
    _report(promotion.plan, promotion.write(overwrite=overwrite))


def register(app: typer.Typer) -> None:
    app.command("promote")(promote)
