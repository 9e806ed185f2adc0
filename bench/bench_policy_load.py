"""Policy loading and promotion speed, each against the bare parse of the same text in the same run.

A seeded generator writes Calico, staged and Kubernetes policies (a few rules each) and a kubectl pod list.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
from pathlib import Path

import yaml
from ruamel.yaml import YAML

from bench.common import Result, timer
from flowstage.policy.loader import load_policies
from flowstage.policy.promote import plan_promotion

SIZES = {
    "quick": {"policies": 2_000, "pods": 5_000},
    "full": {"policies": 10_000, "pods": 50_000},
}
APPS = ["web", "api", "db", "cache", "queue", "auth", "search", "billing"]
KINDS = ["GlobalNetworkPolicy", "NetworkPolicy", "StagedNetworkPolicy", "StagedGlobalNetworkPolicy", "k8s"]


def policy_documents(count: int, rng: random.Random) -> str:
    docs = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        app, peer = rng.choice(APPS), rng.choice(APPS)
        port = rng.choice([53, 80, 443, 5432, 8080])
        if kind == "k8s":
            docs.append(
                f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p{index}\n"
                f"  namespace: ns{index % 40}\nspec:\n  podSelector:\n    matchLabels: {{app: {app}}}\n"
                f"  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {{app: {peer}}}\n"
                f"    ports:\n    - port: {port}\n    - {{protocol: UDP, port: 53}}\n"
            )
            continue
        namespace = f"\n  namespace: ns{index % 40}" if "Global" not in kind else ""
        staged = "  stagedAction: Set\n" if kind.startswith("Staged") else ""
        docs.append(
            f"apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata:\n  name: p{index}{namespace}\nspec:\n"
            f"{staged}  order: {index % 100}\n  selector: app == '{app}'\n  types: [Ingress, Egress]\n"
            f"  ingress:\n  - action: Allow\n    protocol: TCP\n    source:\n      selector: app == '{peer}'\n"
            f"    destination:\n      ports: [{port}, '8000:8100']\n  - action: Deny\n    source:\n"
            f"      nets: [10.{index % 250}.0.0/16]\n  egress:\n  - action: Allow\n    protocol: UDP\n"
            f"    destination:\n      ports: [53]\n  - action: Pass\n"
        )
    return "---\n".join(docs)


def pod_list(count: int, rng: random.Random) -> str:
    items = []
    for index in range(count):
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"pod-{index}",
                    "namespace": f"ns{index % 40}",
                    "labels": {"app": rng.choice(APPS), "pod-template-hash": f"{rng.getrandbits(32):x}"},
                },
                "spec": {
                    "nodeName": f"node-{index % 50}",
                    "serviceAccountName": "default",
                    "containers": [{"name": "main", "ports": [{"name": "http", "containerPort": 8080}]}],
                },
                "status": {"podIP": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"},
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def run(size: str = "quick") -> list[Result]:
    scale = SIZES[size]
    rng = random.Random(20240501)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="flowstage-bench-") as scratch:
        root = Path(scratch)
        policies = root / "in" / "policies.yaml"
        policies.parent.mkdir()
        text = policy_documents(scale["policies"], rng)
        policies.write_text(text)
        pods = root / "pods.json"
        pods.write_text(pod_list(scale["pods"], rng))

        with timer() as parse_only:
            list(yaml.load_all(text, Loader=yaml.CSafeLoader))
        with timer() as loading:
            bundle = load_policies([policies])
        assert not bundle.errors and len(bundle.policies) == scale["policies"]
        results.append(
            Result(
                f"load + validate + convert {scale['policies']:,} policies",
                scale["policies"] / loading(),
                "policies/s",
                "yaml.load_all (CSafeLoader, parse only)",
                scale["policies"] / parse_only(),
                note=f"{loading():.2f} s vs {parse_only():.2f} s",
            )
        )

        with timer() as json_only:
            json.loads(pods.read_text())
        with timer() as inventory:
            pod_bundle = load_policies([], inventory=[pods])
        assert len(pod_bundle.pods) == scale["pods"]
        results.append(
            Result(
                f"load {scale['pods']:,} pods (kubectl JSON)",
                scale["pods"] / inventory(),
                "pods/s",
                "json.loads",
                scale["pods"] / json_only(),
                note=f"{inventory():.2f} s vs {json_only():.2f} s",
            )
        )

        round_trip = YAML(typ="rt")
        with timer() as ruamel_only:
            out = io.StringIO()
            round_trip.dump_all(list(round_trip.load_all(text)), out)
        with timer() as promoting:
            plan = plan_promotion([root / "in"], root / "out")
            plan.write()
        staged = sum(1 for kind in KINDS if kind.startswith("Staged")) * scale["policies"] // len(KINDS)
        results.append(
            Result(
                f"promote {staged:,} staged of {scale['policies']:,} policies (load, plan, write)",
                promoting(),
                "s",
                "ruamel round trip of the whole file",
                ruamel_only(),
            )
        )

        bomb = root / "bomb.yaml"
        lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
        lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
        bomb.write_text("\n".join(lines) + "\n")
        with timer() as refusing:
            refused = load_policies([bomb])
        assert "alias bomb" in refused.errors[0].message
        results.append(Result("refuse a 9^12-value alias bomb (1 KB file)", refusing(), "s"))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    for result in run(parser.parse_args().size):
        print(result.line())
