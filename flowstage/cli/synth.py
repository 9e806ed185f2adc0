"""`flowstage synth`: the committed sample, and synthetic flow logs, policy sets and stores of any size.

Parses options, calls flowstage.synth, prints what was written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowstage import console
from flowstage.errors import UsageError
from flowstage.options import SYNTH_BATCH_ROWS
from flowstage.synth.formats import FORMATS

if TYPE_CHECKING:
    import pyarrow as pa

synth_app = typer.Typer(
    name="synth",
    help=(
        "Synthetic Calico clusters: regenerate sample_logs/, or write flow logs, policy sets and stores of any size "
        "(seeded: the same options give the same bytes)."
    ),
    no_args_is_help=True,
)

SEED = typer.Option(help="Random seed: the same seed gives the same cluster and the same bytes.")
NAMESPACES = typer.Option(
    help=(
        "Application namespaces of the synthetic cluster (default: as many as the request needs). The first n "
        "namespaces of every cluster with the same seed have the same names, workloads and labels, so logs and "
        "policies made with different sizes still fit each other."
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app)


@synth_app.command(
    "sample",
    help="""Regenerate the committed sample: the staged-policy lesson's cluster logged as felix flows.log (live and
rotated .zst, per node), an Elasticsearch _source export, a Goldmane emitter capture and a Whisker download, plus
its policies and inventory. Deterministic: the output equals the committed sample_logs/ byte for byte.

Example:

  flowstage synth sample --output sample_logs/
""",
)
def sample_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (its logs/, policies/, inventory/ are replaced).")] = Path(
        "sample_logs"
    ),
) -> None:
    from flowstage.synth.sample import write_sample

    written = write_sample(output)
    total = sum(p.stat().st_size for p in written)
    console.out.print(f"wrote {len(written)} files, {total:,} bytes, under {console.escape(str(output))}")


@synth_app.command(
    "logs",
    help="""Write ROWS flow-log records over exactly KEYS distinct replay keys (reporter, source, destination,
protocol, port) of a realistic synthetic cluster, in one format: felix flows.log JSON lines, elastic
(Elasticsearch _source lines as Linseed stores them), goldmane (emitter NDJSON, Go encoding/json) or whisker
(the /flows list). A .gz or .zst suffix compresses. With --rotate-mb, felix output is rotated as felix does it:
flows.log keeps the newest records, older ones go to flows-<time>-size.log.zst next to it.

Allowed flows are aggregated at level 2 and denied ones at level 1 (felix's defaults); change with
--allowed-level/--denied-level (0-3).

Examples:

  flowstage synth logs --rows 200000 --keys 20000 --format felix --output bench/data/flows.log
  flowstage synth logs --rows 50000 --keys 5000 --format goldmane --output /tmp/goldmane.ndjson.gz
  flowstage synth logs --rows 1000000 --keys 50000 --rotate-mb 100 --output /tmp/felix/flows.log
""",
)
def logs_command(
    rows: Annotated[int, typer.Option("--rows", "-n", help="Records to write (at least --keys).")],
    keys: Annotated[int, typer.Option("--keys", "-k", help="Distinct replay keys among them.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write; .gz / .zst compress.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")] = "felix",
    seed: Annotated[int, SEED] = 1,
    namespaces: Annotated[int | None, NAMESPACES] = None,
    allowed_level: Annotated[int, typer.Option(help="Aggregation level of allowed flows (felix default 2).")] = 2,
    denied_level: Annotated[int, typer.Option(help="Aggregation level of denied flows (felix default 1).")] = 1,
    legacy_all_policies: Annotated[bool, typer.Option(help="Also write the pre-2025 `all_policies` list.")] = False,
    rotate_mb: Annotated[float | None, typer.Option(help="Rotate felix output when the live file reaches this size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    from flowstage.synth.logs import write_logs

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not a format flowstage writes: use one of {', '.join(FORMATS)}")
    with console.progress(f"writing {rows:,} {fmt} records"):
        summary = write_logs(
            output, rows, keys, fmt, seed=seed, namespaces=namespaces, allowed_level=allowed_level,
            denied_level=denied_level, legacy_all_policies=legacy_all_policies, rotate_mb=rotate_mb,
        )  # fmt: skip
    if as_json:
        typer.echo(
            json.dumps(
                {"files": [str(p) for p in summary.files], "records": summary.records, "keys": summary.keys,
                 "bytes_uncompressed": summary.bytes_uncompressed},
                indent=2,
            )  # fmt: skip
        )
        return
    files = ", ".join(console.escape(str(p)) for p in summary.files)
    console.out.print(f"wrote {summary.records:,} records over {summary.keys:,} keys ({summary.bytes_uncompressed:,} bytes) to {files}", soft_wrap=True)


@synth_app.command(
    "policies",
    help="""Write COUNT policies for the synthetic cluster as one multi-document YAML file Calico accepts: Tiers
(security, compliance, platform) with Pass hand-overs, GlobalNetworkPolicy, Calico and Kubernetes NetworkPolicy,
and staged ones of every staged kind, selecting the cluster's own labels. The Tiers and network sets they use
come first and are not counted. The default tier's policies are the ones `synth logs` traces for the same seed.

Example:

  flowstage synth policies --count 500 --output bench/data/policies-500.yaml
""",
)
def policies_command(
    count: Annotated[int, typer.Option("--count", "-n", help="Policies to write (50, 500, 2000, …).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="YAML file to write.")],
    seed: Annotated[int, SEED] = 1,
    namespaces: Annotated[int | None, NAMESPACES] = None,
) -> None:
    from flowstage.synth.policies import is_policy, write_policies

    docs = write_policies(output, count, seed, namespaces)
    kinds: dict[str, int] = {}
    for doc in docs:
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    counted = sum(1 for d in docs if is_policy(d))
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    console.out.print(f"wrote {counted:,} policies to {console.escape(str(output))} ({detail})")


@synth_app.command(
    "store",
    help="""Build a store of ROWS synthetic flows over exactly KEYS distinct replay keys straight from Arrow (no JSON),
in batches of bounded size: the way to get 10-100 million rows for benchmarks. Appends to an existing store.

Example:

  flowstage synth store --rows 10000000 --keys 100000 --store bench/data/store-10m
""",
)
def store_command(
    rows: Annotated[int, typer.Option("--rows", "-n", help="Rows to write (at least --keys).")],
    keys: Annotated[int, typer.Option("--keys", "-k", help="Distinct replay keys among them.")],
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (created if missing).")],
    seed: Annotated[int, SEED] = 1,
    namespaces: Annotated[int | None, NAMESPACES] = None,
    batch_rows: Annotated[int, typer.Option(help="Rows per Arrow batch (memory is bounded by this).")] = SYNTH_BATCH_ROWS,
) -> None:
    from flowstage.store import Store
    from flowstage.synth.batches import flow_batches

    opened = Store.open(store, create=True)
    source = f"synth:seed={seed},keys={keys},rows={rows}"
    with console.progress(f"writing {rows:,} synthetic rows", total=rows) as bar:

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in flow_batches(rows, keys, seed=seed, namespaces=namespaces, batch_rows=batch_rows):
                yield batch
                if bar is not None:
                    bar.advance(bar.tasks[0].id, batch.num_rows)

        written = opened.append_flows(batches(), source=source)
    console.out.print(f"wrote {written:,} rows over {keys:,} keys to {console.escape(str(store))}")
