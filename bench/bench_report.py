"""Report speed: `flowstage report` (every query in queries/ plus the verdict) over a replayed synthetic store,
against one bare DuckDB scan of the same `replay` view in the same run.

A report run joins the rows to their verdicts once (the `findings` it keeps for every report) and once more for
fidelity, which compares every row with its log; the ratio says how many view scans a full report costs. Data: the
seeded stores and 500-policy set of bench_replay (`quick` 1,000,000 rows over 20,000 keys, `full` 10,000,000 over
100,000), replayed once and cached in bench/data/ (again when the replay's views change). Wall and CPU seconds,
with the load average: the machine is shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.bench_replay import SIZES, _policies, _store, children_cpu
from bench.common import Result, peak_tree_pss_mib
from flowstage.replay.views import all_views, published_file

ROOT = Path(__file__).resolve().parents[1]

_BASELINE = """
import sys, time
from flowstage.store import Store
con = Store.open(sys.argv[1]).connect()
start, cpu = time.perf_counter(), time.process_time()
con.execute("SELECT count(*), sum(bytes_in + bytes_out) FROM replay WHERE would_break").fetchall()
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def _replayed(size: str) -> Path:
    spec = SIZES[size]
    store = _store(f"report-{size}", spec["rows"], spec["keys"])
    marker = store / "bench-replayed.json"
    policies = _policies()
    replayed = {"policies": str(policies), "views": sorted(all_views(published_file("replay"), []))}
    if not marker.is_file() or json.loads(marker.read_text()) != replayed:
        subprocess.run([sys.executable, "-m", "flowstage", "-q", "replay", "--store", str(store), "--policies",
                        str(policies)], check=True, cwd=ROOT, capture_output=True)
        marker.write_text(json.dumps(replayed))
    return store


def _report(store: Path) -> tuple[float, float, float, dict]:
    """Wall and CPU seconds and peak memory (MiB) of `flowstage report --format json`, and its output."""
    command = [sys.executable, "-m", "flowstage", "-q", "report", "--store", str(store), "--format", "json", "--top",
               "20"]
    cpu = children_cpu()
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(child.stdout.read() if child.stdout else b""), daemon=True)
    reader.start()
    peak = peak_tree_pss_mib(child)
    reader.join()
    err = child.stderr.read() if child.stderr else b""
    child.wait()
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"flowstage report failed ({child.returncode}): {err.decode(errors='replace')}")
    return elapsed, children_cpu() - cpu, peak, json.loads(b"".join(out))


def _baseline(store: Path) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", _BASELINE, str(store)], check=True, capture_output=True, text=True,
                          cwd=ROOT)
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def run(size: str = "quick") -> list[Result]:
    store = _replayed(size)
    rows = SIZES[size]["rows"]
    baseline, baseline_cpu = _baseline(store)
    seconds, cpu, peak, payload = _report(store)
    reports = len(payload["reports"])
    load = "load average {:.1f} / {:.1f} / {:.1f} on {} cores".format(*os.getloadavg(), os.cpu_count())
    return [
        Result(
            f"flowstage report, {reports} reports + verdict, {rows:,} rows",
            seconds,
            "s",
            baseline_name="one DuckDB scan of the replay view",
            baseline_value=baseline,
            note=f"CPU {cpu:.1f} s vs {baseline_cpu:.1f} s ({cpu / baseline_cpu:.1f}x); "
                 f"{payload['summary']['would_break_services']} would-break services; {load}",
        ),
        Result(f"flowstage report throughput, {rows:,} rows", rows / seconds, "rows/s"),
        Result(f"flowstage report peak memory, {rows:,} rows", peak, "MiB", target="<= 2048 MiB"),
    ]


if __name__ == "__main__":
    size = sys.argv[1] if len(sys.argv) > 1 else "quick"
    for result in run(size):
        print(result.line())
