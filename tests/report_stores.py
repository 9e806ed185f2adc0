"""Small hand-made stores for the report, check and HTML tests: felix flow-log lines written to a file, read by
the real ingest, judged by the real replay against policy YAML the real loader reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowstage.ingest import ingest
from flowstage.replay.run import load_inputs, replay
from flowstage.store import Store

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def pod(namespace: str, app: str, pod_hash: str = "7d9c8b6f5d", **labels: str) -> dict[str, Any]:
    """A Deployment's pods as felix logs them at aggregation level 2: prefix name, labels, no IP."""
    return {
        "type": "wep",
        "namespace": namespace,
        "name": "-",
        "name_aggr": f"{app}-{pod_hash}-*",
        "ip": None,
        "labels": {"labels": [f"app={app}", f"pod-template-hash={pod_hash}", *(f"{k}={v}" for k, v in labels.items())]},
    }


def external(name_aggr: str = "pub") -> dict[str, Any]:
    return {"type": "net", "namespace": "-", "name": "-", "name_aggr": name_aggr, "ip": None, "labels": {"labels": []}}


def hit(tier: str, policy: str, action: str, rule: int, position: int = 0) -> str:
    """A 3.32+ policy string, e.g. hit("default", "gnp:db", "deny", -1)."""
    return f"{position}|{tier}|{policy}|{action}|{rule}"


def profile(namespace: str) -> str:
    return hit("__PROFILE__", f"pro:kns.{namespace}", "allow", 0)


def felix(source: dict[str, Any], dest: dict[str, Any], *, reporter: str, port: int, proto: str = "tcp",
          action: str = "allow", flows: int = 1, sent: int = 1000, answered: int = 100, minute: int = 0,
          enforced: list[str] | None = None, pending: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    """One felix flows.log record. `sent` is what the client sent, `answered` what the server replied; each
    reporter counts them from its own side, as felix does."""
    start = START + timedelta(minutes=minute)
    bytes_in, bytes_out = (sent, answered) if reporter == "dst" else (answered, sent)
    record: dict[str, Any] = {"start_time": int(start.timestamp()), "end_time": int(start.timestamp()) + 300}
    for prefix, endpoint in (("source", source), ("dest", dest)):
        for key, value in endpoint.items():
            record[f"{prefix}_{key}"] = value
    record.update(
        source_port=None,
        dest_port=port,
        dest_service_namespace="-",
        dest_service_name="-",
        dest_service_port="-",
        dest_service_port_num=None,
        proto=proto,
        action=action,
        reporter=reporter,
        policies={"enforced_policies": enforced or [], "pending_policies": pending or []},
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        packets_in=flows,
        packets_out=flows,
        num_flows=flows,
        num_flows_started=flows,
        num_flows_completed=flows,
    )
    record.update(fields)
    return record


def build_store(root: Path, records: list[dict[str, Any]], policies: str, *, namespaces: str | None = None) -> Path:
    """Write the records as a felix flows.log, ingest it into `root/store`, replay it with the policies."""
    root.mkdir(parents=True, exist_ok=True)
    log = root / "flows.log"
    log.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    policy_file = root / "policies.yaml"
    policy_file.write_text(policies.strip() + "\n", encoding="utf-8")
    store_path = root / "store"
    store = Store.open(store_path, create=True)
    summary = ingest([str(log)], store)
    assert summary.stored == len(records), summary
    ns_file = None
    if namespaces is not None:
        ns_file = root / "namespaces.yaml"
        ns_file.write_text(namespaces.strip() + "\n", encoding="utf-8")
    replay(store, load_inputs([policy_file], namespaces=ns_file))
    return store_path


LESSON = """
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
---
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
