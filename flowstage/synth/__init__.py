"""Synthetic Calico clusters and their flow logs: the committed sample, and realistic data at any size.

Seeded and deterministic throughout: the same arguments give the same bytes.
"""

from flowstage.synth.batches import flow_batches
from flowstage.synth.cluster import build_cluster
from flowstage.synth.keys import key_table
from flowstage.synth.logs import write_logs
from flowstage.synth.policies import generate_policies, write_policies
from flowstage.synth.sample import write_sample

__all__ = ["build_cluster", "flow_batches", "generate_policies", "key_table", "write_logs", "write_policies", "write_sample"]
