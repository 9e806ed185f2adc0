"""Ingest: read Calico flow logs in every supported format and append them to a store in the canonical schema.

`ingest(paths, store)` is the entry point; the CLI's `flowstage ingest` is a thin skin over it.
"""

from flowstage.ingest.detect import FORMATS
from flowstage.ingest.pipeline import DEFAULT_BATCH_ROWS, FileResult, IngestSummary, ingest

__all__ = ["DEFAULT_BATCH_ROWS", "FORMATS", "FileResult", "IngestSummary", "ingest"]
