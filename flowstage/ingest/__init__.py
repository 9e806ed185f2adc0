"""Ingest: read Calico flow logs in every supported format and append them to a store in the canonical schema.

`ingest(paths, store)` is the entry point; the CLI's `flowstage ingest` is a thin skin over it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowstage.ingest.detect import FORMATS
    from flowstage.ingest.pipeline import DEFAULT_BATCH_ROWS, FileResult, IngestSummary, ingest

# Loaded on first use: `flowstage.ingest.detect` stays light for the CLI, which imports it at start-up.
_EXPORTS = {"FORMATS": "detect", "DEFAULT_BATCH_ROWS": "pipeline", "FileResult": "pipeline",
            "IngestSummary": "pipeline", "ingest": "pipeline"}

__all__ = ["DEFAULT_BATCH_ROWS", "FORMATS", "FileResult", "IngestSummary", "ingest"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
