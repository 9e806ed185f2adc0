"""`flowstage replay`: judge every stored flow under the current, proposed and pending policy sets.

Parses options, prints policy problems and progress, calls flowstage.replay, prints the summary line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flowstage import console
from flowstage.cli._engine import ENGINE, SPARK_MASTER, STORE_HELP_URI
from flowstage.engines import DUCKDB, SPARK, check_engine

HELP = """Replay every flow in the store against your policies: what is enforced now (current), what would be
enforced after promoting every staged policy (proposed), and Calico's own pending evaluation where the logs
carry `pending_policies`.

Each distinct replay key (reporter, both endpoints' identity, labels and IPs, protocol, port) is evaluated once;
verdicts are stored in the store and joined back to the rows by the `replay`, `connections` and `fidelity` views
(`flowstage sql --store DIR "SELECT * FROM replay WHERE would_break"`). A new replay replaces the previous one
atomically.

Rows whose reporting endpoint is not a pod (wep) or host endpoint (hep) get the verdict `unknown` with the
reason not_a_policy_endpoint. Rows reported by a forwarding host (reporter fwd, src,fwd, dst,fwd) are judged on
their workload side when no applyOnForward policy is loaded (forwarding is then allowed by default); with such a
policy loaded the forward stage is not replayed (the row does not name the forwarding host endpoint) and the
verdict is `unknown` with the reason forwarded_not_modelled. Any row whose verdict depends on a fact the log
lacks (an aggregated IP, a named port without --pods, namespace labels without --namespaces) is `unknown` with
its reason too: `SELECT current_reason, count(*) FROM replay GROUP BY 1`.

Policy errors stop the replay (exit 2) and are listed; warnings are printed and the replay goes on.

Example:

  flowstage replay --store demo-store --policies sample_logs/policies/lesson.yaml
  --namespaces sample_logs/inventory/namespaces.yaml --pods sample_logs/inventory/pods.yaml

With --engine spark, Apache Spark extracts the distinct keys from the store (a folder or a URI such as
s3a://bucket/store) and this process judges them; the verdicts are published into the store as usual:

  flowstage replay --engine spark --store s3a://flows/store --policies policies/
"""


def register(app: typer.Typer) -> None:
    app.command(name="replay", help=HELP)(replay_command)


def replay_command(
    store: Annotated[
        str, typer.Option("--store", "-s", help="Store folder (created by `flowstage ingest`)." + STORE_HELP_URI)
    ],
    policies: Annotated[
        list[Path], typer.Option("--policies", "-p", help="Policy YAML/JSON file or folder; repeat for several.")
    ],
    namespaces: Annotated[
        Path | None,
        typer.Option(help="`kubectl get namespaces -o yaml` output: namespace labels for namespaceSelector."),
    ] = None,
    pods: Annotated[
        Path | None, typer.Option(help="`kubectl get pods -A -o yaml` output: named ports, service accounts, pod IPs.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes judging keys (default: one per core once the store has enough keys)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    engine: Annotated[str, ENGINE] = DUCKDB,
    spark_master: Annotated[str | None, SPARK_MASTER] = None,
) -> None:
    # Imported here so other commands start without loading the engine.
    from flowstage import load_policies, open_store, replay_flows
    from flowstage.replay import PolicyProblemsError

    on_spark = check_engine(engine) == SPARK
    opened = None if on_spark else open_store(store)
    inputs = load_policies(policies, namespaces=namespaces, pods=pods)
    for problem in inputs.warnings:
        console.err.print(f"[yellow]warning:[/] {console.escape(str(problem))}")
    if inputs.errors:
        raise PolicyProblemsError(inputs.errors)
    with console.progress("replaying distinct keys") as bar:

        def advance(done: int, total: int) -> None:
            if bar is not None:
                bar.update(bar.tasks[0].id, completed=done, total=total)

        summary = replay_flows(store if opened is None else opened, inputs, workers=workers, progress=advance,
                               engine=engine, spark_master=spark_master)
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        console.out.print(console.escape(summary.line()), soft_wrap=True)
