"""The 58 network-config-analyzer conformance cases: every policy and topology file loads, and the inventory read
from the topology matches the endpoints NCA saw (labels, named ports, service accounts, namespace labels)."""

from __future__ import annotations

import json

import pytest

from flowstage.policy.convert import NAMESPACE_LABEL, ORCHESTRATOR_LABEL, SERVICE_ACCOUNT_LABEL
from flowstage.policy.loader import PolicyBundle, load_policies
from flowstage.policy.model import PROTOCOL_NUMBERS

# Three policies in testcase16 mix IPv4 and IPv6 CIDRs in one rule: Calico's validator rejects them (NCA does
# not validate). The case using that file activates only a fourth policy (policy_filter), which loads.
CALICO_REJECTS = {
    ("kube-system", "testcase16-simple-all-range"),
    ("kube-system", "testcase16-not-nets-list"),
    ("kube-system", "testcase16-nets-list"),
}
_PROTOCOL_NAMES = {number: name.upper() for name, number in PROTOCOL_NUMBERS.items()}


def nca_cases(shared_dir):
    base = shared_dir / "conformance" / "nca-policy-cases"
    index = json.loads((base / "index.json").read_text())
    return base, index["cases"]


def load_case(base, case) -> PolicyBundle:
    return load_policies(
        [base / f for f in case["policy_files"]], inventory=[base / f for f in case["topology_files"]]
    )


def test_every_case_loads_without_errors(shared_dir):
    base, cases = nca_cases(shared_dir)
    assert len(cases) == 58
    for case in cases:
        bundle = load_case(base, case)
        unexpected = [str(p) for p in bundle.errors if not _rejected(p)]
        assert not unexpected, f"{case['id']}: " + "\n".join(unexpected)
        loaded = {(p.namespace, p.name) for p in bundle.policies}
        profiles = {p.name for p in bundle.profiles}
        for listed in case["policies"]:
            if listed["kind"] == "Profile":
                assert listed["name"] in profiles, (case["id"], listed)
            elif (listed["namespace"], listed["name"]) not in CALICO_REJECTS:
                assert (listed["namespace"], listed["name"]) in loaded, (case["id"], listed)
        active = case["policy_filter"]
        if active:
            assert (active["namespace"], active["name"]) in loaded, case["id"]
        assert bundle.namespaces or bundle.host_endpoints, case["id"]


def _rejected(problem) -> tuple[str, ...]:
    for namespace, name in CALICO_REJECTS:
        if problem.object == f"NetworkPolicy {namespace}/{name}":
            return (namespace, name)
    return ()


def test_policies_calico_rejects_fail_with_calicos_reason(shared_dir):
    base, cases = nca_cases(shared_dir)
    (case,) = [c for c in cases if c["id"] == "calico-tc16-nets-almost-all-range-smaller"]
    bundle = load_case(base, case)
    rejected = {tuple(p.object.split(" ", 1)[1].split("/")): p for p in bundle.errors}
    assert set(rejected) == CALICO_REJECTS
    for problem in rejected.values():
        assert problem.message == "rule contains both IPv4 and IPv6 CIDRs: write one rule per IP family"
        assert problem.path.startswith("spec.egress[0].destination.") and problem.line is not None


@pytest.mark.parametrize("kind", ["Pod", "HostEndpoint"])
def test_topology_becomes_the_inventory_nca_saw(shared_dir, kind):
    base, cases = nca_cases(shared_dir)
    calico_own = (NAMESPACE_LABEL, ORCHESTRATOR_LABEL, SERVICE_ACCOUNT_LABEL)
    checked = 0
    for case in cases:
        bundle = load_case(base, case)
        expected = json.loads((base / case["expected"]).read_text())
        inventory = bundle.inventory()
        pods = {(p.namespace, p.name): p for p in inventory.pods or ()}
        hosts = {h.name: h for h in inventory.host_endpoints}
        for endpoint in expected["endpoints"]:
            if endpoint["kind"] != kind:
                continue
            checked += 1
            where = (case["id"], endpoint["id"])
            if kind == "HostEndpoint":
                host = hosts[endpoint["name"]]
                assert dict(host.labels) == endpoint["labels"], where
                if "profiles" in endpoint:
                    assert list(host.profiles) == endpoint["profiles"], where
                continue
            pod = pods[(endpoint["namespace"], endpoint["name"])]
            own = {k: v for k, v in endpoint["labels"].items() if k not in calico_own}
            assert dict(pod.labels) == own, where
            ports = {p.name: [p.port, _PROTOCOL_NAMES[p.protocol]] for p in pod.ports}
            assert ports == endpoint.get("named_ports", {}), where
            if "service_account" in endpoint:
                assert pod.service_account == endpoint["service_account"], where
            if "namespace_labels" in endpoint:
                assert (
                    dict(inventory.namespaces[endpoint["namespace"]].labels) == endpoint["namespace_labels"]
                ), where
    assert checked > 0
