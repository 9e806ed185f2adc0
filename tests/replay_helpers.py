"""Small hand-made stores for the replay, fidelity and explain tests: canonical flow rows written through the
real store, and policy YAML written to files the real loader reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from flowstage.schema import FLOW_SCHEMA
from flowstage.store import Store

WINDOW_START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def hit(position: int, tier: str, kind: str, name: str, action: str, rule: int, namespace: str | None = None,
        raw: str | None = None) -> dict[str, Any]:
    """One decoded policy-trace hit as ingest stores it."""
    return {
        "position": position,
        "tier": tier,
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "staged": kind in ("sgnp", "snp", "sknp"),
        "action": action,
        "rule_index": rule,
        "end_of_tier": rule == -1,
        "raw": raw,
    }


def profile_allow(namespace: str, position: int = 0) -> dict[str, Any]:
    return hit(position, "__PROFILE__", "pro", f"kns.{namespace}", "allow", 0)


def pod(namespace: str, app: str, **labels: str) -> dict[str, Any]:
    """Endpoint columns of an aggregated pod (level 2: no name, no IP)."""
    return {
        "type": "wep",
        "namespace": namespace,
        "name_aggr": f"{app}-7d9c5b-*",
        "labels": {"app": app, **labels},
    }


def flow(source: dict[str, Any], dest: dict[str, Any], *, reporter: str, action: str = "allow", port: int = 8080,
         proto: str = "tcp", line: int, file: str = "/logs/flows.log", minute: int = 0, **columns: Any
         ) -> dict[str, Any]:
    """One canonical `flows` row; every column not given is NULL.

    By default the client sent 1000 bytes and the server answered 100, as each reporter counts them.
    """
    sent, answered = 1000, 100
    bytes_in, bytes_out = (sent, answered) if reporter.startswith("dst") else (answered, sent)
    row: dict[str, Any] = {name: None for name in FLOW_SCHEMA.names}
    for prefix, endpoint in (("source", source), ("dest", dest)):
        for key, value in endpoint.items():
            row[f"{prefix}_{key}"] = value
    row.update(
        start_time=WINDOW_START + timedelta(minutes=minute),
        end_time=WINDOW_START + timedelta(minutes=minute + 5),
        dest_port=port,
        proto=proto,
        proto_num={"tcp": 6, "udp": 17, "icmp": 1}[proto],
        action=action,
        reporter=reporter,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        packets_in=1,
        packets_out=1,
        num_flows=1,
        format="felix",
        source_file=file,
        source_line=line,
    )
    row.update(columns)
    for side in ("source_labels", "dest_labels"):
        if isinstance(row[side], dict):
            row[side] = list(row[side].items())
    return row


def make_store(root: Path, rows: list[dict[str, Any]]) -> Store:
    store = Store.open(root, create=True)
    if rows:
        store.append_flows([pa.Table.from_pylist(rows, schema=FLOW_SCHEMA)], source="test rows")
    return store


def write_policies(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


LESSON_POLICIES = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: database-allow-from-backend
spec:
  selector: env == 'prod' && app == 'database'
  types:
  - Ingress
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: env == 'prod' && app == 'backend'
    destination:
      ports: [8080]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: backend-lockdown-staged
spec:
  selector: env == 'prod' && app == 'backend'
  types:
  - Ingress
"""

SAFETY_NET = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: zzz-final-allow-everything
spec:
  order: 100000
  types: [Ingress, Egress]
  ingress:
  - action: Allow
  egress:
  - action: Allow
"""


def query(store: Store, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    con = store.connect()
    try:
        result = con.execute(sql, params or [])
        names = [d[0] for d in result.description]
        return [dict(zip(names, values, strict=True)) for values in result.fetchall()]
    finally:
        con.close()


def replayed_sample(repo_dir: Path, store: Path) -> Path:
    """The committed sample_logs/ ingested into `store` and replayed against the lesson's policies with its
    inventory, through the public API."""
    import flowstage

    sample = repo_dir / "sample_logs"
    flowstage.ingest_logs(sample / "logs", store)
    flowstage.replay_flows(store, sample / "policies" / "lesson.yaml",
                           namespaces=sample / "inventory" / "namespaces.yaml",
                           pods=sample / "inventory" / "pods.yaml")
    return store
