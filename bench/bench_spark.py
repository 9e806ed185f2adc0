"""Spark against DuckDB on the same store: replay (keys extracted by each engine, judged by the same Python engine),
session start and the full report (full size only), as `flowstage … --engine spark` and `flowstage …` processes.

Spark runs in local mode on two cores (`local[2]`), what this benchmark's machine has; on a cluster the same
commands run under spark-submit. Memory: the Python driver and the JVM are reported apart. Data: the end-to-end
store of bench_scale (felix logs ingested and replayed with 500 policies).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.bench_scale import DATA, E2E_POLICIES, SIZES, e2e_store, flowstage, measure, policies
from bench.common import Result
from flowstage.engines.spark_session import unavailable

MASTER = "local[2]"
# Local mode runs the executors inside the driver's JVM: its heap is all the memory Spark has.
SPARK_ENV = {"FLOWSTAGE_SPARK_DRIVER_MEMORY": "2g"}
COUNT = "SELECT count(*) AS rows, count(DISTINCT dest_namespace) AS namespaces FROM flows"


def _spark(*args: str) -> list[str]:
    return flowstage(*args, "--engine", "spark", "--spark-master", MASTER)


def _rows(payload: dict[str, Any]) -> dict[str, list[str]]:
    """Each report's rows in a form two engines must agree in: sorted JSON text, floats rounded."""

    def plain(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 9)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return {name: sorted(json.dumps(plain(r), sort_keys=True) for r in report["rows"])
            for name, report in payload["reports"].items()}


def run(size: str = "quick") -> list[Result]:
    missing = unavailable()
    if missing is not None:
        return [Result("Spark benchmark skipped", 0.0, "s", note=missing)]
    store = e2e_store(size)
    rows = SIZES[size]["e2e_rows"]
    label = f"{rows / 1e6:g}M rows"
    rules = str(policies(E2E_POLICIES))

    replay_spark = measure(_spark("replay", "--store", str(store), "--policies", rules, "--json"), env=SPARK_ENV)
    replay_duckdb = measure(flowstage("replay", "--store", str(store), "--policies", rules, "--json"))
    spark_summary, duckdb_summary = json.loads(replay_spark.stdout), json.loads(replay_duckdb.stdout)
    same_replay = all(spark_summary[k] == duckdb_summary[k] for k in ("rows", "keys", "would_break_rows", "unknown_rows"))
    results = [
        Result(f"Spark {MASTER}: replay {label}", replay_spark.seconds, "s", "DuckDB replay of the same store",
               replay_duckdb.seconds,
               note=f"extract {spark_summary['timings']['extract']:.1f} s on Spark vs "
                    f"{duckdb_summary['timings']['extract']:.1f} s on DuckDB; same figures: "
                    f"{'yes' if same_replay else 'NO'}"),
        Result(f"Spark {MASTER}: replay driver peak memory {label}", replay_spark.peak_mib, "MiB",
               "DuckDB replay peak memory", replay_duckdb.peak_mib,
               note=f"Spark's JVM apart: {replay_spark.jvm_peak_mib:,.0f} MiB"),
    ]
    if size == "quick":
        # Spark pays its start and seconds of planning and scheduling per query whatever the data size: the quick
        # suite leaves the rest to the full one (and to tests/test_spark.py, which compares every report).
        return results

    start_duckdb = measure(flowstage("sql", COUNT, "--store", str(store), "--format", "json"))
    start_spark = measure(_spark("sql", COUNT, "--store", str(store), "--format", "json"), env=SPARK_ENV)
    same_count = json.loads(start_spark.stdout) == json.loads(start_duckdb.stdout)
    results.insert(0, Result(f"Spark {MASTER}: start and count {label}", start_spark.seconds, "s",
                             "DuckDB, same command", start_duckdb.seconds,
                             note=f"session start included; same answer: {'yes' if same_count else 'NO'}"))

    # The report reads the replay DuckDB just published; Spark's own replay was checked figure by figure above.
    spark_report_file = DATA / f"report-spark-{size}.json"
    report_spark = measure(_spark("report", "--store", str(store), "--format", "json", "--output",
                                  str(spark_report_file)), env=SPARK_ENV)
    duckdb_report_file = DATA / f"report-duckdb-{size}.json"
    report_duckdb = measure(flowstage("report", "--store", str(store), "--format", "json", "--output",
                                      str(duckdb_report_file)))
    spark_rows = _rows(json.loads(spark_report_file.read_text()))
    duckdb_rows = _rows(json.loads(duckdb_report_file.read_text()))
    differing = sorted(name for name in duckdb_rows if spark_rows.get(name) != duckdb_rows[name])
    agreement = "identical rows in every report" if not differing else f"rows differ in {', '.join(differing)}"
    return [
        *results,
        Result(f"Spark {MASTER}: full report {label}", report_spark.seconds, "s", "DuckDB full report",
               report_duckdb.seconds, note=agreement),
        Result(f"Spark {MASTER}: report driver peak memory {label}", report_spark.peak_mib, "MiB",
               "DuckDB report peak memory", report_duckdb.peak_mib,
               note=f"Spark's JVM apart: {report_spark.jvm_peak_mib:,.0f} MiB"),
    ]


if __name__ == "__main__":
    chosen = sys.argv[sys.argv.index("--size") + 1] if "--size" in sys.argv else "quick"
    for result in run(chosen):
        print(result.line())
