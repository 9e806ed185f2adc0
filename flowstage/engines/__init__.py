"""Where the row-heavy SQL runs: DuckDB on this machine (the default), or Apache Spark over the same Parquet store.

The SQL is written once, in DuckDB's dialect; `translate` turns it into Spark SQL, `spark` runs it there.
"""

from __future__ import annotations

from flowstage.errors import UsageError

DUCKDB = "duckdb"
SPARK = "spark"
ENGINES: tuple[str, ...] = (DUCKDB, SPARK)
# Help text goes through rich markup: a backslash keeps the extra's brackets.
ENGINE_HELP = (
    "Where the row-heavy SQL runs: duckdb (this machine) or spark (Apache Spark: local mode, or the cluster "
    "spark-submit runs on; needs `pip install 'flowstage\\[spark]'` and Java 17+)."
)


def check_engine(name: str) -> str:
    """The engine's canonical name; an unknown name is a usage error listing the known ones."""
    engine = name.strip().lower()
    if engine not in ENGINES:
        raise UsageError(f"unknown --engine {name!r}; choose one of {', '.join(ENGINES)}")
    return engine
