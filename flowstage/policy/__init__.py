"""Calico and Kubernetes network policy: the model, loading and validation, policy sets, the engine, promotion."""
