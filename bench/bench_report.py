"""Report speed: `flowstage report` (every query in queries/ plus the verdict) over a replayed synthetic store,
against one bare DuckDB scan of the same `replay` view in the same run.

Every report reads the replay view once, so the ratio says how many view scans a full report costs. Data: the
seeded stores and 500-policy set of bench_replay (`quick` 1,000,000 rows over 20,000 keys, `full` 10,000,000 over
100,000), replayed once and cached in bench/data/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_replay import SIZES, _policies, _store
from bench.common import Result

ROOT = Path(__file__).resolve().parents[1]

_BASELINE = """
import sys, time
from flowstage.store import Store
con = Store.open(sys.argv[1]).connect()
start = time.perf_counter()
con.execute("SELECT count(*), sum(bytes_in + bytes_out) FROM replay WHERE would_break").fetchall()
print(time.perf_counter() - start)
"""


def _replayed(size: str) -> Path:
    spec = SIZES[size]
    store = _store(f"report-{size}", spec["rows"], spec["keys"])
    marker = store / "bench-replayed.json"
    policies = _policies()
    if not marker.is_file():
        subprocess.run([sys.executable, "-m", "flowstage", "-q", "replay", "--store", str(store), "--policies",
                        str(policies)], check=True, cwd=ROOT, capture_output=True)
        marker.write_text(json.dumps({"policies": str(policies)}))
    return store


def _report(store: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flowstage", "-q", "report", "--store", str(store), "--format",
                           "json", "--top", "20"], check=True, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed, json.loads(done.stdout)


def _baseline(store: Path) -> float:
    done = subprocess.run([sys.executable, "-c", _BASELINE, str(store)], check=True, capture_output=True, text=True,
                          cwd=ROOT)
    return float(done.stdout.strip().splitlines()[-1])


def run(size: str = "quick") -> list[Result]:
    store = _replayed(size)
    rows = SIZES[size]["rows"]
    baseline = _baseline(store)
    seconds, payload = _report(store)
    reports = len(payload["reports"])
    return [
        Result(
            f"flowstage report, {reports} reports + verdict, {rows:,} rows",
            seconds,
            "s",
            baseline_name="one DuckDB scan of the replay view",
            baseline_value=baseline,
            note=f"{payload['summary']['would_break_services']} would-break services",
        ),
        Result(f"flowstage report throughput, {rows:,} rows", rows / seconds, "rows/s"),
    ]


if __name__ == "__main__":
    size = sys.argv[1] if len(sys.argv) > 1 else "quick"
    for result in run(size):
        print(result.line())
