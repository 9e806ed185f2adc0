"""Synthetic Calico clusters and their flow logs: the committed sample, and realistic data at any size.

Seeded and deterministic throughout: the same arguments give the same bytes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowstage.synth.batches import flow_batches
    from flowstage.synth.cluster import build_cluster
    from flowstage.synth.keys import key_table
    from flowstage.synth.logs import write_logs
    from flowstage.synth.policies import generate_policies, write_policies
    from flowstage.synth.sample import write_sample

# Loaded on first use: the CLI imports `flowstage.synth.formats` at start-up and needs none of the rest.
_EXPORTS = {"flow_batches": "batches", "build_cluster": "cluster", "key_table": "keys", "write_logs": "logs",
            "generate_policies": "policies", "write_policies": "policies", "write_sample": "sample"}

__all__ = ["build_cluster", "flow_batches", "generate_policies", "key_table", "write_logs", "write_policies", "write_sample"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
