"""Selector evaluation speed: compiled matcher (uncached, cached) against a hand-written Python predicate,
and the `to_sql` / `selector_match` paths in DuckDB against a hand-written SQL predicate.

Run: .venv/bin/python -m bench.bench_selector [quick|full]
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping

import duckdb

from bench.common import Result
from flowstage import sqlfuncs
from flowstage.policy.model import FrozenMap
from flowstage.selector import parse_selector

TYPICAL = 'app == "db" && env != "dev" && has(tier)'
SIZES = {"quick": (200_000, 1_000_000, 100_000), "full": (2_000_000, 10_000_000, 1_000_000)}


def _hand_written(labels: Mapping[str, str]) -> bool:
    return labels.get("app") == "db" and labels.get("env") != "dev" and "tier" in labels


def _pod_labels(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Label sets shaped like pods': a few app labels, Calico's own, sometimes a tier."""
    pools = []
    for i in range(count):
        labels = {
            "app": rng.choice(["db", "web", "api", "cache"]),
            "env": rng.choice(["prod", "dev", "staging"]),
            "pod-template-hash": f"{i:08x}",
            "projectcalico.org/namespace": rng.choice(["shop", "payments", "kube-system"]),
            "projectcalico.org/orchestrator": "k8s",
        }
        if rng.random() < 0.7:
            labels["tier"] = rng.choice(["backend", "frontend"])
        pools.append(labels)
    return pools


def _evals_per_second(
    match: Callable[[Mapping[str, str]], bool], pool: Iterable[Mapping[str, str]], evals: int
) -> float:
    pool = list(pool)
    rounds = max(1, evals // len(pool))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            for labels in pool:
                match(labels)
        best = min(best, time.perf_counter() - start)
    return rounds * len(pool) / best


def _python_results(evals: int) -> list[Result]:
    rng = random.Random(7)
    dicts = _pod_labels(rng, 1000)
    frozen = [FrozenMap(d) for d in dicts]
    selector = parse_selector(TYPICAL)
    assert [selector.matches(d) for d in dicts] == [_hand_written(d) for d in dicts]
    hand = _evals_per_second(_hand_written, dicts, evals)
    hand_frozen = _evals_per_second(_hand_written, frozen, evals)
    uncached = _evals_per_second(selector.matches, dicts, evals)
    uncached_frozen = _evals_per_second(selector.matches, frozen, evals)
    for labels in frozen:
        selector.matches_cached(labels)
    cached = _evals_per_second(selector.matches_cached, frozen, evals)
    # Most label sets above fail the first term; these reach every term, the selector's slowest case.
    every_term = [d | {"app": "db", "env": "prod"} for d in dicts]
    every_term_rate = _evals_per_second(selector.matches, every_term, evals)
    every_term_hand = _evals_per_second(_hand_written, every_term, evals)
    return [
        Result(
            f"selector.matches, 3 terms, dict labels ({TYPICAL})",
            uncached,
            "evals/s",
            "hand-written Python predicate",
            hand,
            ">= 200,000 evals/s",
        ),
        Result(
            "selector.matches, 3 terms, dict labels that reach every term",
            every_term_rate,
            "evals/s",
            "hand-written Python predicate",
            every_term_hand,
            ">= 200,000 evals/s",
        ),
        Result(
            "selector.matches, 3 terms, FrozenMap labels",
            uncached_frozen,
            "evals/s",
            "hand-written predicate on FrozenMaps",
            hand_frozen,
            ">= 200,000 evals/s",
        ),
        Result(
            "selector.matches_cached, 3 terms, 1,000 distinct FrozenMaps (warm)",
            cached,
            "evals/s",
            "selector.matches on the same FrozenMaps",
            uncached_frozen,
            ">= 1,000,000 evals/s",
        ),
    ]


def _flows_table(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    con.execute(
        f"""
        CREATE OR REPLACE TABLE flows AS
        SELECT i,
               CASE WHEN i % 10 < 7
                    THEN MAP {{'app': ['db', 'web', 'api'][i % 3 + 1], 'env': ['prod', 'dev', 'staging'][i % 7 % 3 + 1],
                              'tier': 'backend', 'projectcalico.org/namespace': 'shop'}}
                    ELSE MAP {{'app': ['db', 'web'][i % 2 + 1], 'projectcalico.org/namespace': 'shop'}}
               END AS dest_labels
        FROM range({rows}) t(i)
        """
    )


def _rows_per_second(con: duckdb.DuckDBPyConnection, predicate: str, rows: int) -> tuple[float, int]:
    best = float("inf")
    count = -1
    for _ in range(3):
        start = time.perf_counter()
        (count,) = con.execute(f"SELECT count(*) FROM flows WHERE {predicate}").fetchone()
        best = min(best, time.perf_counter() - start)
    return rows / best, count


def _sql_results(rows: int, udf_rows: int) -> list[Result]:
    con = duckdb.connect()
    sqlfuncs.install(con)
    _flows_table(con, rows)
    hand = "dest_labels['app'] = 'db' AND coalesce(dest_labels['env'] <> 'dev', TRUE) AND map_contains(dest_labels, 'tier')"
    inlined = sqlfuncs.rewrite(f"SELECT count(*) FROM flows WHERE selector_match('{TYPICAL}', dest_labels)")
    predicate = inlined.split(" WHERE ", 1)[1]
    hand_rate, hand_count = _rows_per_second(con, hand, rows)
    sql_rate, sql_count = _rows_per_second(con, predicate, rows)
    assert sql_count == hand_count, (sql_count, hand_count)
    _flows_table(con, udf_rows)
    udf_rate, _ = _rows_per_second(con, f"selector_match('{TYPICAL}', dest_labels)", udf_rows)
    return [
        Result(
            f"to_sql predicate in DuckDB, {rows:,} rows",
            sql_rate,
            "rows/s",
            "hand-written SQL predicate",
            hand_rate,
        ),
        Result(
            f"selector_match Python function (Arrow UDF), {udf_rows:,} rows",
            udf_rate,
            "rows/s",
            "to_sql predicate",
            sql_rate,
            note="general path, for selectors that are not literals",
        ),
    ]


def run(size: str = "quick") -> list[Result]:
    evals, rows, udf_rows = SIZES[size]
    return _python_results(evals) + _sql_results(rows, udf_rows)


if __name__ == "__main__":
    for result in run(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(result.line())
