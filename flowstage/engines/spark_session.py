"""The Spark session flowstage runs on: local mode on this machine, or the cluster `spark-submit` started it on;
configured so Spark SQL answers as DuckDB does (UTC, NULL for a missing list element or map key).

`spark_session()` builds or reuses the session; `unavailable()` says why Spark cannot run here (no pyspark, no Java).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from flowstage.errors import FlowstageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MASTER_ENV = "FLOWSTAGE_SPARK_MASTER"  # e.g. local[4], spark://host:7077, yarn; spark-submit's --master wins
DRIVER_MEMORY_ENV = "FLOWSTAGE_SPARK_DRIVER_MEMORY"
DEFAULT_LOCAL_MASTER = "local[*]"
DEFAULT_DRIVER_MEMORY = "1g"

# What makes Spark SQL answer as DuckDB does on the translated SQL (flowstage.engines.translate).
DUCKDB_SEMANTICS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",  # the store's timestamps are UTC; reports show them in UTC
    "spark.sql.ansi.enabled": "false",  # list[i] past the end is NULL, as in DuckDB, not an error
    "spark.sql.legacy.sizeOfNull": "false",  # size(NULL) is NULL, as DuckDB's array_length(NULL)
    "spark.sql.mapKeyDedupPolicy": "LAST_WIN",  # map_concat: the later map wins, as in DuckDB
    "spark.sql.execution.arrow.pyspark.enabled": "true",  # results come back as Arrow tables
}
# Local mode on a small machine: no UI, few shuffle partitions, plain quiet logs.
LOCAL_SETTINGS: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.structuredLogging.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
}

# Errors only, as plain lines on stderr. Spark's start-up compares the root level with the level configured for its
# own loggers and prints a banner when they differ: both are set.
_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark %p %c{1}: %m%n
logger.spark.name = org.apache.spark
logger.spark.level = error
"""


# pyspark warns on every Arrow conversion that it has not been certified with pandas 3; flowstage hands it Arrow.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


class SparkUnavailable(FlowstageError):
    """Spark cannot run here: pyspark is not installed, or no suitable Java is."""


def java_version(java: str) -> int | None:
    """The major version of the `java` executable at that path (8, 11, 17, 21, …), or None if it does not run."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return minor if major == 1 else major  # "1.8.0_392" is Java 8


def find_java() -> str | None:
    """The java Spark will start: $JAVA_HOME/bin/java, else the first on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.is_file() else None
    return shutil.which("java")


def unavailable() -> str | None:
    """Why Spark cannot run on this machine (what to install), or None when it can."""
    try:
        import pyspark
    except ImportError:
        return "pyspark is not installed: pip install 'flowstage[spark]'"
    needed = 17 if int(pyspark.__version__.split(".")[0]) >= 4 else 8
    java = find_java()
    if java is None:
        where = "$JAVA_HOME/bin/java" if os.environ.get("JAVA_HOME") else "java on PATH"
        return f"Spark needs Java {needed} or newer and found no {where}: install a JDK (e.g. openjdk-{needed}-jre-headless) or set JAVA_HOME"
    version = java_version(java)
    if version is None:
        return f"Spark needs Java {needed} or newer; {java} does not run (`{java} -version` fails)"
    if version < needed:
        return f"pyspark {pyspark.__version__} needs Java {needed} or newer; {java} is Java {version}: install a newer JDK or set JAVA_HOME"
    return None


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the Python driver with a gateway to its own JVM, whose --master already decides.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _log_config() -> Path:
    path = Path(tempfile.gettempdir()) / f"flowstage-spark-log4j2-{os.getuid()}.properties"
    if not path.is_file() or path.read_text() != _LOG4J:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_LOG4J)
        tmp.replace(path)
    return path


def spark_session(
    master: str | None = None,
    *,
    driver_memory: str | None = None,
    shuffle_partitions: int | None = None,
    app_name: str = "flowstage",
) -> SparkSession:
    """The running Spark session, or a new one configured for flowstage.

    `master` (or $FLOWSTAGE_SPARK_MASTER) picks where Spark runs; without either, local mode on every core, unless
    spark-submit launched this process, in which case its --master and --conf decide.
    """
    problem = unavailable()
    if problem is not None:
        raise SparkUnavailable(problem)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        _apply(active, DUCKDB_SEMANTICS)
        _quiet_python_loggers()
        return active
    builder = SparkSession.builder.appName(app_name)
    for key, value in DUCKDB_SEMANTICS.items():
        builder = builder.config(key, value)
    chosen = master or os.environ.get(MASTER_ENV)
    local = not _launched_by_spark_submit() and (chosen is None or chosen.startswith("local"))
    if chosen is not None or not _launched_by_spark_submit():
        builder = builder.master(chosen or DEFAULT_LOCAL_MASTER)
    if local:
        # Python workers run this interpreter, so they import the same flowstage, pyarrow and pandas.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in LOCAL_SETTINGS.items():
            builder = builder.config(key, value)
        memory = driver_memory or os.environ.get(DRIVER_MEMORY_ENV) or DEFAULT_DRIVER_MEMORY
        builder = builder.config("spark.driver.memory", memory)
        builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_log_config()}")
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions or 2 * (os.cpu_count() or 1)))
    elif shuffle_partitions is not None:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: Py4J and pyspark raise plain exceptions for that
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SparkUnavailable(f"Spark did not start ({reason})") from exc
    _quiet_python_loggers()
    return session


def _quiet_python_loggers() -> None:
    """pyspark logs every failed query with its whole JVM stack trace; flowstage reports the failure itself."""
    import logging

    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def _apply(session: SparkSession, settings: dict[str, str]) -> None:
    for key, value in settings.items():
        session.conf.set(key, value)
