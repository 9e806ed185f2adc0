"""Scale on one machine: felix logs ingested, replayed and fully reported end to end (10 million rows, peak memory
under 2 GiB), one store of 100 million rows replayed, and replay with 50, 500 and 2,000 policies.

Every step runs as its own `flowstage` process, timed against DuckDB's bare work on the same data in the same run:
ingest against read_json → Parquet, replay against a key-column hash join, the report against one scan of the
replay view. Memory is the peak of each process tree (PSS summed over the process and its workers, sampled).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.common import Result
from flowstage.store import FLOWS_LAYOUT

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "scale"
SEED = 1
ALLOWED_LEVEL = 1  # IPs logged, as in bench_replay: verdicts are decided, not `unknown` for want of a Pod list
MEMORY_TARGET_MIB = 2048
SIZES = {
    "quick": {"e2e_rows": 100_000, "e2e_keys": 5_000, "big_rows": 300_000, "big_keys": 10_000},
    "full": {"e2e_rows": 10_000_000, "e2e_keys": 100_000, "big_rows": 100_000_000, "big_keys": 1_000_000},
}
POLICY_COUNTS = (50, 500, 2000)
E2E_POLICIES = 500
ROTATE_MB = 100  # felix's default flowLogsFileMaxFileSizeMB


@dataclass
class Measured:
    """One process run: wall seconds, peak memory of its Python processes and of its JVMs (Spark), its output."""

    seconds: float
    peak_mib: float
    jvm_peak_mib: float
    stdout: str


def measure(args: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a command (with `env` added to the environment); sample the memory of its process tree every 50 ms (PSS,
    so pages shared with a forking parent count once), Java processes apart from the rest."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                             env={**os.environ, **(env or {})})
    peak = jvm_peak = 0
    root = psutil.Process(child.pid)
    while child.poll() is None:
        python = jvm = 0
        try:
            for process in [root, *root.children(recursive=True)]:
                pss = process.memory_full_info().pss
                if process.name().startswith("java"):
                    jvm += pss
                else:
                    python += pss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
        peak, jvm_peak = max(peak, python), max(jvm_peak, jvm)
        time.sleep(0.05)
    out, err = child.communicate()
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])} failed ({child.returncode}): {err.decode(errors='replace')[-2000:]}")
    return Measured(seconds, peak / 2**20, jvm_peak / 2**20, out.decode())


def flowstage(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowstage", "--quiet", *args]


def _python(code: str, *args: str) -> float:
    """Seconds a DuckDB baseline snippet prints (it times itself, after its own setup)."""
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    return float(done.stdout.strip().splitlines()[-1])


_RAW_COPY = """
import sys, time, duckdb
from pathlib import Path
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
files = sorted(str(p) for p in Path(sys.argv[1]).iterdir())
start = time.perf_counter()
con.execute(f"COPY (SELECT * FROM read_json({files!r})) TO '{sys.argv[2]}' (FORMAT parquet)")
print(time.perf_counter() - start)
"""

_KEY_JOIN = """
import sys, time
from flowstage.replay.keys import key_columns, replay_key_sql
from flowstage.store import Store
con = Store.open(sys.argv[1]).connect(read_only=False)
con.execute("SET enable_progress_bar = false")
key = replay_key_sql(key_columns(False))
con.execute(f"CREATE TEMP TABLE key_table AS SELECT DISTINCT {key} AS replay_key FROM flows")
start = time.perf_counter()
con.execute(f"SELECT count(*) FROM flows JOIN key_table ON key_table.replay_key = {key}").fetchall()
print(time.perf_counter() - start)
"""

_VIEW_SCAN = """
import sys, time
from flowstage.store import Store
con = Store.open(sys.argv[1]).connect()
start = time.perf_counter()
con.execute("SELECT count(*), sum(bytes_in + bytes_out) FROM replay WHERE would_break").fetchall()
print(time.perf_counter() - start)
"""


def _generator() -> str:
    """A digest of flowstage/synth/: inputs made by an earlier version of the generator are made again."""
    digest = hashlib.sha256()
    for source in sorted((ROOT / "flowstage" / "synth").glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _cached(path: Path, recipe: dict, build: list[str]) -> Path:
    """A generated input, rebuilt only when missing or made from another recipe or generator."""
    recipe = {**recipe, "generator": _generator()}
    marker = path.parent / f"{path.name}.recipe.json"
    if path.exists() and marker.is_file() and {**json.loads(marker.read_text()), "output": None} == {
        **recipe, "output": None}:
        return path
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(build, check=True, cwd=ROOT, capture_output=True, text=True)
    marker.write_text(json.dumps({**recipe, "output": built.stdout}))
    return path


def felix_logs(rows: int, keys: int) -> Path:
    """A node's felix log folder: `rows` records over `keys` distinct replay keys, rotated as felix does it (files
    of 100 MB compressed with zstd, the newest records in the live flows.log)."""
    path = DATA / f"felix-{rows}-{keys}"
    recipe = {"rows": rows, "keys": keys, "seed": SEED, "allowed_level": ALLOWED_LEVEL, "rotate_mb": ROTATE_MB}
    return _cached(path, recipe, flowstage("synth", "logs", "--rows", str(rows), "--keys", str(keys), "--seed",
                                           str(SEED), "--allowed-level", str(ALLOWED_LEVEL), "--rotate-mb",
                                           str(ROTATE_MB), "--output", str(path / "flows.log"), "--json"))


def synthetic_store(rows: int, keys: int) -> Path:
    """A store of `rows` synthetic rows written straight from Arrow (no JSON): the way to 100 million rows."""
    path = DATA / f"store-{rows}-{keys}"
    recipe = {"rows": rows, "keys": keys, "seed": SEED, "allowed_level": ALLOWED_LEVEL, "layout": FLOWS_LAYOUT}
    code = (
        "from flowstage.store import Store; from flowstage.synth.batches import flow_batches; "
        f"Store.open({str(path)!r}, create=True).append_flows("
        f"flow_batches({rows}, {keys}, seed={SEED}, allowed_level={ALLOWED_LEVEL}), source='bench scale')"
    )
    return _cached(path, recipe, [sys.executable, "-c", code])


def policies(count: int) -> Path:
    """`count` policies across the security, compliance, platform and default tiers, staged ones of every kind."""
    path = DATA / f"policies-{count}.yaml"
    recipe = {"count": count, "seed": SEED}
    return _cached(path, recipe, flowstage("synth", "policies", "--count", str(count), "--seed", str(SEED),
                                           "--output", str(path)))


def e2e_store(size: str) -> Path:
    """The end-to-end store of this size, ingested and replayed (built by `run`, or here when missing); the replay
    may be with any policy set of the sweep, so replay it again with the one you need."""
    spec = SIZES[size]
    store = DATA / f"e2e-{size}"
    log = felix_logs(spec["e2e_rows"], spec["e2e_keys"])
    marker = store / "replayed.json"
    if not marker.is_file() or json.loads(marker.read_text()).get("log_generator") != _generator():
        shutil.rmtree(store, ignore_errors=True)
        subprocess.run(flowstage("ingest", str(log), "--store", str(store)), check=True, cwd=ROOT, capture_output=True)
        subprocess.run(flowstage("replay", "--store", str(store), "--policies", str(policies(E2E_POLICIES))),
                       check=True, cwd=ROOT, capture_output=True)
        marker.write_text(json.dumps({"policies": E2E_POLICIES, "log_generator": _generator()}))
    return store


def _end_to_end(size: str) -> list[Result]:
    spec = SIZES[size]
    rows, keys = spec["e2e_rows"], spec["e2e_keys"]
    log = felix_logs(rows, keys)
    rules = policies(E2E_POLICIES)
    store = DATA / f"e2e-{size}"
    shutil.rmtree(store, ignore_errors=True)
    raw = DATA / "raw-copy.parquet"
    try:
        raw_copy = _python(_RAW_COPY, str(log), str(raw))
    finally:
        raw.unlink(missing_ok=True)
    ingest = measure(flowstage("ingest", str(log), "--store", str(store), "--json"))
    replay = measure(flowstage("replay", "--store", str(store), "--policies", str(rules), "--json"))
    (store / "replayed.json").write_text(json.dumps({"policies": E2E_POLICIES, "log_generator": _generator()}))
    report_file = DATA / f"report-{size}.json"
    report = measure(flowstage("report", "--store", str(store), "--format", "json", "--output", str(report_file)))
    key_join = _python(_KEY_JOIN, str(store))
    view_scan = _python(_VIEW_SCAN, str(store))

    files = sorted(log.iterdir())
    compressed = sum(f.stat().st_size for f in files) / 2**20
    written = json.loads(json.loads((log.parent / f"{log.name}.recipe.json").read_text())["output"])
    plain = written["bytes_uncompressed"] / 2**20
    stored = json.loads(ingest.stdout)["stored"]
    summary = json.loads(replay.stdout)
    reports = len(json.loads(report_file.read_text())["reports"])
    label = f"{rows / 1e6:g}M rows"
    total = ingest.seconds + replay.seconds + report.seconds
    floor = raw_copy + key_join + view_scan
    peak = max(ingest.peak_mib, replay.peak_mib, report.peak_mib)
    return [
        Result(f"end to end {label}: ingest + replay + full report", total, "s",
               "DuckDB floor: raw JSON copy + key join + one replay-view scan", floor,
               note=f"{stored:,} rows stored, {summary['keys']:,} keys, {E2E_POLICIES} policies, {reports} reports"),
        Result(f"end to end {label}: peak memory (largest step)", peak, "MiB", target=f"< {MEMORY_TARGET_MIB} MiB",
               note=f"ingest {ingest.peak_mib:,.0f}, replay {replay.peak_mib:,.0f}, report {report.peak_mib:,.0f} MiB"),
        Result(f"end to end {label}: ingest of {len(files)} felix files ({compressed:,.0f} MiB, {plain:,.0f} MiB of "
               "JSON)", ingest.seconds, "s", "DuckDB read_json → Parquet of the same files", raw_copy),
        Result(f"end to end {label}: replay", replay.seconds, "s", "DuckDB key-column hash join", key_join,
               note=f"extract {summary['timings']['extract']:.1f} s, judge {summary['timings']['judge']:.1f} s"),
        Result(f"end to end {label}: full report ({reports} reports)", report.seconds, "s",
               "one DuckDB scan of the replay view", view_scan),
    ]


def _big_replay(size: str) -> list[Result]:
    spec = SIZES[size]
    rows, keys = spec["big_rows"], spec["big_keys"]
    store = synthetic_store(rows, keys)
    replay = measure(flowstage("replay", "--store", str(store), "--policies", str(policies(E2E_POLICIES)), "--json"))
    key_join = _python(_KEY_JOIN, str(store))
    summary = json.loads(replay.stdout)
    size_gib = sum(p.stat().st_size for p in store.rglob("*.parquet")) / 2**30
    label = f"replay {rows / 1e6:g}M rows ({size_gib:.1f} GiB of Parquet), {summary['keys']:,} keys"
    return [
        Result(label, replay.seconds, "s", "DuckDB key-column hash join", key_join,
               note=f"extract {summary['timings']['extract']:.1f} s, judge {summary['timings']['judge']:.1f} s, "
                    f"{summary['workers']} judging processes"),
        Result(f"{label}: peak memory", replay.peak_mib, "MiB", note="replay and its judging processes together"),
        Result(f"{label}: throughput", summary["rows"] / replay.seconds, "rows/s"),
    ]


def _policy_sweep(size: str) -> list[Result]:
    store = e2e_store(size)
    rows = SIZES[size]["e2e_rows"]
    results = []
    baseline: float | None = None
    for count in POLICY_COUNTS:
        replay = measure(flowstage("replay", "--store", str(store), "--policies", str(policies(count)), "--json"))
        summary = json.loads(replay.stdout)
        if baseline is None:
            baseline = replay.seconds
        results.append(Result(
            f"replay {rows / 1e6:g}M rows with {count:,} policies", replay.seconds, "s",
            f"the same with {POLICY_COUNTS[0]} policies", baseline,
            note=f"{summary['keys']:,} keys, {summary['decisions']:,} engine decisions, "
                 f"{summary['keys'] / max(summary['timings']['judge'], 1e-9):,.0f} keys/s judged, "
                 f"peak {replay.peak_mib:,.0f} MiB",
        ))
    return results


def run(size: str = "quick") -> list[Result]:
    return [*_end_to_end(size), *_policy_sweep(size), *_big_replay(size)]


if __name__ == "__main__":
    chosen = sys.argv[sys.argv.index("--size") + 1] if "--size" in sys.argv else "quick"
    for result in run(chosen):
        print(result.line())
