"""Synthetic Calico clusters and their flow logs: the committed sample, and realistic data at any size.

Seeded and deterministic throughout: the same arguments give the same bytes.
"""
