"""Replay speed: `flowstage replay` of a synthetic store against a bare DuckDB join of the same key columns with a
key table of the same size, and against a per-row Python loop over the engine, all in the same run.

Data come from flowstage/synth/ (seeded, cached in bench/data/): `full` is 10,000,000 rows over 100,000 distinct
replay keys, `quick` 1,000,000 over 20,000; 500 policies across four tiers with staged objects of every kind.
Rows per key follow synth's Zipf law (exponent 1.2 by traffic rank, each key logged in one run of consecutive
5-minute windows; at full size 2.8% of the keys are logged in every one of 1,000 windows, the top tenth carry 60%
of the rows, the median key has 31): the row-loop slice, the first rows of the store, holds the flows alive then.
Allowed rows are aggregated at level 1 (felix's default for denied rows) so their IPs are logged: at the default
level 2, with no Pod list to place the pods, most verdicts of this cluster are `unknown` (its global network
sets could hold any pod address), which measures the engine's exploring path rather than a replay.

Every figure comes with its CPU seconds (all processes and threads) besides wall time, and the load average:
the machine is shared, and CPU time is what a busy machine disturbs least.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.common import Result, peak_tree_pss_mib
from flowstage.policy.engine import Engine
from flowstage.policy.model import FrozenMap
from flowstage.policy.traffic import Endpoint, EndpointType, Traffic
from flowstage.replay import load_inputs
from flowstage.replay.keys import key_columns
from flowstage.store import FLOWS_LAYOUT, Store
from flowstage.synth.batches import flow_batches
from flowstage.synth.policies import write_policies
from flowstage.synth.windows import ACTIVE_SHARE, DEFAULT_SKEW

DATA = Path(__file__).resolve().parent / "data" / "replay"
SIZES = {
    "quick": {"rows": 1_000_000, "keys": 20_000, "slice_rows": 200_000},
    "full": {"rows": 10_000_000, "keys": 100_000, "slice_rows": 1_000_000},
}
POLICIES = 500
SEED = 1
ALLOWED_LEVEL = 1
REPEATS = 2  # the best of two runs each: the machine is shared, and the minimum is the least disturbed
_TYPES = {t.value: t for t in EndpointType}


def _batches(rows: int, keys: int, limit: int | None = None) -> Iterator[pa.RecordBatch]:
    """The seeded flows of a `rows`-row store, or only its first `limit` rows (a slice of the same data)."""
    remaining = rows if limit is None else limit
    for batch in flow_batches(rows, keys, seed=SEED, allowed_level=ALLOWED_LEVEL):
        if remaining <= 0:
            return
        yield batch if batch.num_rows <= remaining else batch.slice(0, remaining)
        remaining -= batch.num_rows


def _store(name: str, rows: int, keys: int, limit: int | None = None) -> Path:
    """A cached store; rebuilt when missing or made with other parameters (in a child process, so this one stays
    small: a child's peak memory counts the memory of the process that started it)."""
    path = DATA / name
    recipe = {"rows": rows, "keys": keys, "limit": limit, "seed": SEED, "allowed_level": ALLOWED_LEVEL,
              "skew": DEFAULT_SKEW, "active_share": ACTIVE_SHARE, "layout": FLOWS_LAYOUT}
    marker = path / "bench-recipe.json"
    if marker.is_file() and json.loads(marker.read_text()) == recipe:
        return path
    shutil.rmtree(path, ignore_errors=True)
    code = (
        "from bench.bench_replay import _batches; from flowstage.store import Store; "
        f"Store.open({str(path)!r}, create=True).append_flows(_batches({rows}, {keys}, {limit}), source='bench {name}')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
    marker.write_text(json.dumps(recipe))
    return path


def _policies() -> Path:
    path = DATA / f"policies-{POLICIES}.yaml"
    if not path.is_file():
        write_policies(path, POLICIES, seed=SEED)
    return path


@dataclass
class Run:
    """One replay in a child process: wall and CPU seconds, peak memory of it and its workers, its JSON summary."""

    wall: float
    cpu: float
    peak: float
    summary: dict[str, Any]


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process, and of their own finished children."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _replay(store: Path, policies: Path) -> Run:
    """`flowstage replay --json` in a fresh process."""
    command = [sys.executable, "-m", "flowstage", "-q", "replay", "--store", str(store), "--policies", str(policies),
               "--json"]
    cpu = children_cpu()
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = peak_tree_pss_mib(child)
    out, err = child.communicate()
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"flowstage replay failed ({child.returncode}): {err.decode(errors='replace')}")
    return Run(elapsed, children_cpu() - cpu, peak, json.loads(out))


_BASELINE = """
import sys, time
from flowstage.replay.keys import key_columns, replay_key_sql
from flowstage.store import Store
con = Store.open(sys.argv[1]).connect(read_only=False)
key = replay_key_sql(key_columns(False))
con.execute(f"CREATE TEMP TABLE key_table AS SELECT DISTINCT {key} AS replay_key FROM flows")
start, cpu = time.perf_counter(), time.process_time()
con.execute(f"SELECT count(*) FROM flows JOIN key_table ON key_table.replay_key = {key}").fetchall()
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def _baseline(store: Path) -> tuple[float, float]:
    """A bare DuckDB query over the same key columns: hash them per row and join a key table of the same size
    (the distinct keys, built before the clock starts), in a fresh process like the replay. Wall and CPU seconds
    of the join alone."""
    done = subprocess.run([sys.executable, "-c", _BASELINE, str(store)], check=True, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def _endpoint(values: dict[str, Any], side: str, port: int | None) -> Endpoint:
    labels = values[f"{side}_labels"]
    return Endpoint(
        type=_TYPES.get(values[f"{side}_type"]),
        namespace=values[f"{side}_namespace"],
        name=values[f"{side}_name"],
        name_aggr=values[f"{side}_name_aggr"],
        labels=None if labels is None else FrozenMap(dict(labels)),
        ip=values[f"{side}_ip"],
        port=port,
    )


def _row_loop(store: Path, policies: Path) -> tuple[float, float, int]:
    """The straightforward way: every row read, turned into a Traffic and judged under each set, no key dedup.
    Wall and CPU seconds, rows."""
    start, cpu = time.perf_counter(), time.process_time()
    sets = load_inputs([policies]).sets
    current, proposed, pending = Engine(sets.current), Engine(sets.proposed), Engine(sets.pending)
    con = Store.open(store).connect(read_only=False)
    rows = 0
    try:
        columns = ", ".join(key_columns(False))
        reader = con.sql(
            f"SELECT {columns}, pending_action IS NOT NULL AS has_pending FROM flows"
        ).to_arrow_reader(65_536)
        for batch in reader:
            for values in batch.to_pylist():
                traffic = Traffic(
                    source=_endpoint(values, "source", None),
                    destination=_endpoint(values, "dest", values["dest_port"]),
                    protocol=values["proto_num"],
                )
                current.decide_reported(traffic, values["reporter"])
                proposed.decide_reported(traffic, values["reporter"])
                if values["has_pending"]:
                    pending.decide_reported(traffic, values["reporter"])
                rows += 1
    finally:
        con.close()
    return time.perf_counter() - start, time.process_time() - cpu, rows


def run(size: str = "quick") -> list[Result]:
    spec = SIZES[size]
    rows, keys, slice_rows = spec["rows"], spec["keys"], spec["slice_rows"]
    policies = _policies()
    store = _store(f"store-{size}", rows, keys)
    part = _store(f"slice-{size}", rows, keys, limit=slice_rows)

    baselines, replays = [], []
    for _ in range(REPEATS):
        baselines.append(_baseline(store))
        replays.append(_replay(store, policies))
    baseline, baseline_cpu = min(baselines)
    best = min(replays, key=lambda r: r.wall)
    summary = best.summary
    if summary["source_port_in_key"]:
        raise RuntimeError("the benchmark policies match on source ports; the baseline would read other columns")
    label = f"{rows / 1e6:g}M rows, {keys:,} keys, {POLICIES} policies"
    judge = summary["timings"]["judge"]
    part_best = min((_replay(part, policies) for _ in range(REPEATS)), key=lambda r: r.wall)
    loop_elapsed, loop_cpu, loop_rows = _row_loop(part, policies)
    loop_rate = loop_rows / loop_elapsed
    per_key = part_best.summary["rows"] / max(1, part_best.summary["keys"])
    load = "load average {:.1f} / {:.1f} / {:.1f} on {} cores".format(*os.getloadavg(), os.cpu_count())
    return [
        Result(f"replay {label}", best.wall, "s", "DuckDB key-column hash join with a same-size key table", baseline,
               target="<= 2.5x",
               note=f"CPU {best.cpu:.1f} s vs {baseline_cpu:.1f} s ({best.cpu / baseline_cpu:.2f}x); "
                    f"extract {summary['timings']['extract']:.1f} s, judge {judge:.1f} s "
                    f"({summary['workers']} processes), {summary['decisions']:,} engine decisions; {load}"),
        Result(f"replay rows/s ({label})", summary["rows"] / best.wall, "rows/s", "per-row Python loop", loop_rate,
               target=">= 50x",
               note=f"the loop's rate measured on a {loop_rows / 1e6:g}M-row slice of the same rows "
                    f"(CPU: {summary['rows'] / best.cpu:,.0f} vs {loop_rows / loop_cpu:,.0f} rows/s)"),
        Result(f"replay distinct keys/s ({label})", summary["keys"] / best.wall, "keys/s",
               note=f"{summary['keys'] / judge:,.0f} keys/s and {summary['decisions'] / judge:,.0f} decisions/s "
                    "in the engine phase"),
        Result(f"replay peak memory ({label})", best.peak, "MiB", target="<= 2048 MiB",
               note="replay and worker processes together"),
        # The target (50x) is the rows/s figure above: the replay over the store's rows against the loop's rate,
        # which is measured on a slice because looping over every row would take the better part of an hour.
        # This one runs both on the slice alone, where start-up and the slice's keys weigh on the replay.
        Result(f"per-row Python loop, {loop_rows / 1e6:g}M-row slice", loop_elapsed, "s",
               "flowstage replay of the same slice", part_best.wall,
               note=f"CPU {loop_cpu:.1f} s vs {part_best.cpu:.1f} s ({loop_cpu / part_best.cpu:.1f}x); the slice "
                    f"holds {part_best.summary['keys']:,} keys, {per_key:.1f} rows per key: the loop judges every "
                    f"row, the replay every key once (and starts up, loads the policies, extracts the keys); "
                    f"{load}"),
    ]


if __name__ == "__main__":
    chosen = sys.argv[sys.argv.index("--size") + 1] if "--size" in sys.argv else "quick"
    for result in run(chosen):
        print(result.line())
