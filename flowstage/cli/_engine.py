"""The `--engine` and `--spark-master` options that `replay`, `report` and `sql` share.

Only option declarations live here; the commands call flowstage.engines.spark for the Spark side.
"""

from __future__ import annotations

import typer

from flowstage.engines import ENGINE_HELP
from flowstage.engines.spark_session import MASTER_ENV

ENGINE = typer.Option("--engine", "-e", help=ENGINE_HELP)
SPARK_MASTER = typer.Option(
    "--spark-master",
    help=f"With --engine spark: where Spark runs (local[4], spark://host:7077, yarn, …). Default: ${MASTER_ENV}, "
    "else the --master of spark-submit when it launched flowstage, else local mode on every core.",
)
STORE_HELP_URI = " With --engine spark, also a URI Spark reads (s3a://bucket/store, hdfs://…, file:///…)."
