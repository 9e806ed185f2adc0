"""Defaults and choices that the CLI shows in its help and the library applies, each declared once here.

This module imports nothing: the CLI reads it at start-up, before any command needs DuckDB or Arrow.
"""

INGEST_BATCH_ROWS = 100_000  # lines per ingest batch: memory follows it, not the file size
SYNTH_BATCH_ROWS = 131_072  # rows per synthetic Arrow batch
LOCK_TIMEOUT = 30.0  # seconds a writer waits for another writer of the same store
OUTPUT_FORMATS = ("table", "json", "jsonl", "csv", "markdown", "parquet")  # what `flowstage sql` writes
