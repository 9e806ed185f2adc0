"""Conformance with the 58 NCA policy cases (../shared/conformance/nca-policy-cases): the loader reads each case's
policy files, the engine judges every probe as a whole connection, and the answer must be NCA's.

NCA models Calico with a few simplifications (index.json `semantics_notes`). Where its answer differs from
Calico's, the probe must be explained by one of the model differences listed below for that case: each is
either re-run with NCA's simplification applied (and must then give NCA's answer), or is an `unknown`
verdict for a fact the cases do not supply. A listed difference that no probe needs fails the test too.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from flowstage.policy.engine import Engine
from flowstage.policy.loader import load_policies
from flowstage.policy.model import (
    Action,
    FrozenMap,
    HostEndpoint,
    NamedPort,
    Namespace,
    Pod,
    PolicyKind,
    PolicySet,
    Rule,
)
from flowstage.policy.sets import build_sets
from flowstage.policy.traffic import Endpoint, EndpointType, Outcome, Reason, Traffic, Verdict

CASE_IDS = (
    "fw-calico-tc3-onlyAllow", "fw-calico-tc3-FirstDenySubset", "fw-calico-tc3-firstAllowSuperSet",
    "fw-calico-tc5-allowFirst", "fw-calico-tc5-denyFirst", "fw-calico-tc13-open-default-TCP",
    "fw-calico-tc14-icmp-also-within-default", "fw-calico-tc15-named-ports-rectangles", "fw-calico-tc20-Eran_gnps",
    "fw-calico-tc20-globalEmpty-with-profiles", "fw-calico-tc20-outbound-hep-all-ep",
    "fw-calico-tc20-outbound-hep-to-wep", "fw-calico-tc20-outbound-all-namespaceSelector",
    "calico-tc19-deny-all-profiles", "calico-tc19-labels-to-apply", "calico-tc25-mix-k8s-calico",
    "calico-tc25-k8s-policy-only", "calico-tc25-calico-policy-only", "calico-tc18-pod-based-pass",
    "calico-tc18-ports-based-pass", "calico-tc15-global-simple", "calico-tc15-global-not-simple-match",
    "calico-tc15-global-not-simple-mismatch", "calico-tc15-global-not-simple",
    "calico-tc16-nets-almost-all-range-smaller", "fw-k8s-test1", "fw-k8s-test2", "fw-k8s-test3", "fw-k8s-test6",
    "fw-k8s-test7", "fw-k8s-test8", "fw-k8s-test9", "fw-k8s-test10", "fw-k8s-test11", "fw-k8s-test12",
    "fw-k8s-test13", "fw-k8s-test14", "fw-k8s-test15", "fw-k8s-test16", "fw-k8s-test18", "fw-k8s-test19",
    "fw-k8s-test20", "fw-k8s-test21", "fw-k8s-test22", "fw-k8s-test23", "fw-k8s-test24", "fw-k8s-test4",
    "fw-k8s-cyclonus-simple-example", "fw-k8s-label-expr-test1", "fw-k8s-label-expr-test2",
    "fw-k8s-label-expr-test3", "fw-k8s-label-expr-test4", "fw-k8s-label-expr-test5", "fw-k8s-label-expr-test6",
    "fw-k8s-label-expr-test7", "fw-k8s-label-expr-test8", "fw-k8s-label-expr-test9", "fw-k8s-label-expr-test10",
)

# -- where NCA's model differs from Calico's -------------------------------------------------------------

NCA_DIFFERENCES = {
    "failsafe": (
        "NCA does not model felix's failsafe ports: Calico accepts e.g. udp:53 out of and tcp:22 into a host "
        "endpoint before any policy (calico-semantics §7); re-run with the failsafe lists emptied"
    ),
    "endpoint_ip": (
        "the cases give no pod or host endpoint addresses and NCA never matches endpoints by IP range; Calico "
        "matches nets / notNets / ipBlock on the endpoint's address, so without it the verdict is unknown"
    ),
    "tie_break": (
        "NCA orders policies without `order` as written; Calico breaks ties by name (`name/namespace/Kind`, "
        "§3.2); re-run with ties broken in file order"
    ),
    "explicit_profiles": (
        "NCA allows everything in a direction no policy governs, whatever the endpoint's explicit Profile "
        "objects say (their rules only add connections); Calico evaluates those profiles, and when none of "
        "their rules allows, the profile stage denies (§5.2, §5.4); re-run with every explicit profile ending "
        "in an Allow rule"
    ),
}

CASE_EXCEPTIONS: dict[str, set[str]] = {
    "fw-calico-tc20-Eran_gnps": {"endpoint_ip"},
    "fw-calico-tc20-outbound-hep-to-wep": {"failsafe", "endpoint_ip"},
    "fw-calico-tc20-outbound-all-namespaceSelector": {"failsafe", "endpoint_ip"},
    "calico-tc19-labels-to-apply": {"explicit_profiles"},
    "calico-tc18-pod-based-pass": {"tie_break"},
    "calico-tc16-nets-almost-all-range-smaller": {"endpoint_ip"},
    "fw-k8s-test16": {"endpoint_ip"},
    "fw-k8s-test18": {"endpoint_ip"},
    "fw-k8s-cyclonus-simple-example": {"endpoint_ip"},
}

PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "UDPLite": 136, "VRRP": 112}
NCA_KINDS = {"K8sNetworkPolicy": PolicyKind.KUBERNETES_NETWORK_POLICY, "CalicoNetworkPolicy": PolicyKind.NETWORK_POLICY}


@dataclasses.dataclass
class Case:
    """One NCA case made ready for the engine: its policy set, endpoints and expected answers."""

    id: str
    policy_set: PolicySet
    endpoints: dict[str, dict]
    expected: dict
    policy_files: list[str]

    def endpoint(self, ident: str, kind: str | None, port: int | None) -> Endpoint:
        if kind == "ip":
            return Endpoint(EndpointType.NET, None, None, None, FrozenMap({}), ident, port)
        e = self.endpoints[ident]
        if e["kind"] == "Pod":
            return Endpoint(EndpointType.WEP, e["namespace"], e["name"], e["name"], FrozenMap(e["labels"]), None, port)
        return Endpoint(EndpointType.HEP, None, e["name"], e["name"], FrozenMap(e["labels"]), None, port)

    def traffic(self, probe: dict) -> Traffic:
        return Traffic(
            self.endpoint(probe["src"], probe.get("src_kind"), probe.get("src_port")),
            self.endpoint(probe["dst"], probe.get("dst_kind"), probe.get("dst_port")),
            PROTOCOLS[probe["protocol"]],
            probe.get("icmp_type"),
            probe.get("icmp_code"),
            ip_version=4,  # NCA's answers cover IPv4 only
        )


_CASES: dict[str, Case] = {}


def load_case(shared_dir: Path, case_id: str) -> Case:
    if case_id in _CASES:
        return _CASES[case_id]
    root = shared_dir / "conformance" / "nca-policy-cases"
    index = {c["id"]: c for c in json.loads((root / "index.json").read_text())["cases"]}
    meta = index[case_id]
    expected = json.loads((root / meta["expected"]).read_text())
    # topology files hold the cases' network sets and host endpoints (with their addresses) as inventory
    bundle = load_policies([root / f for f in meta["policy_files"]], [root / f for f in meta["topology_files"]])
    active = bundle.policies
    only = meta["policy_filter"]
    if only:
        active = [
            p for p in active
            if (p.namespace, p.name) == (only["namespace"], only["name"])
            and ("kind_in_nca" not in only or p.kind is NCA_KINDS[only["kind_in_nca"]])
        ]
        assert len(active) == 1, f"{case_id}: the policy filter must pick exactly one loaded policy"
    else:
        assert not bundle.errors, "\n".join(str(p) for p in bundle.errors)
    bundle = dataclasses.replace(bundle, policies=active)

    # endpoints as NCA saw them: labels, namespace labels, service accounts, named ports
    namespaces, pods = {}, []
    loaded_hosts = {h.name for h in bundle.host_endpoints}
    hosts = list(bundle.host_endpoints)
    for e in expected["endpoints"]:
        if e["kind"] == "Pod":
            namespaces[e["namespace"]] = Namespace(e["namespace"], FrozenMap(e.get("namespace_labels") or {}))
            named = tuple(NamedPort(n, PROTOCOLS[p], num) for n, (num, p) in (e.get("named_ports") or {}).items())
            # workload endpoint dumps carry the service account only as Calico's label
            account = e.get("service_account") or e["labels"].get("projectcalico.org/serviceaccount")
            pods.append(Pod(e["namespace"], e["name"], FrozenMap(e["labels"]), service_account=account, ports=named))
        elif e["name"] not in loaded_hosts:
            hosts.append(HostEndpoint(e["name"], labels=FrozenMap(e["labels"]), profiles=tuple(e.get("profiles") or ())))
    current = build_sets(bundle, namespaces=namespaces, pods=pods).current
    inventory = dataclasses.replace(current.inventory, host_endpoints=tuple(hosts))
    case = Case(case_id, dataclasses.replace(current, inventory=inventory), {e["id"]: e for e in expected["endpoints"]},
                expected, meta["policy_files"])
    _CASES[case_id] = case
    return case


# -- NCA's simplifications, applied to re-run a probe -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Model:
    """What a re-run changes: the policy set and whether failsafes apply."""

    policy_set: PolicySet
    failsafes: bool = True

    def engine(self) -> Engine:
        if self.failsafes:
            return Engine(self.policy_set)
        return Engine(self.policy_set, failsafe_inbound=(), failsafe_outbound=())


def ties_in_file_order(case: Case, pset: PolicySet) -> PolicySet:
    def as_written(policy) -> tuple:
        rank = next(i for i, f in enumerate(case.policy_files) if policy.origin.file.endswith(f))
        return (math.inf if policy.order is None else policy.order, rank, policy.origin.document)

    return dataclasses.replace(pset, policies={t: tuple(sorted(ps, key=as_written)) for t, ps in pset.policies.items()})


def explicit_profiles_end_in_allow(pset: PolicySet) -> PolicySet:
    def then_allow(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        return (*rules, Rule(Action.ALLOW, len(rules)))

    profiles = {
        name: dataclasses.replace(p, ingress=then_allow(p.ingress), egress=then_allow(p.egress))
        for name, p in pset.inventory.profiles.items()
    }
    return dataclasses.replace(pset, inventory=dataclasses.replace(pset.inventory, profiles=profiles))


def simplified(case: Case, model: Model, difference: str) -> Model:
    """`model` with one of NCA's simplifications applied."""
    if difference == "failsafe":
        return dataclasses.replace(model, failsafes=False)
    if difference == "tie_break":
        return dataclasses.replace(model, policy_set=ties_in_file_order(case, model.policy_set))
    if difference == "explicit_profiles":
        return dataclasses.replace(model, policy_set=explicit_profiles_end_in_allow(model.policy_set))
    raise ValueError(difference)


def endpoint_ip_unknown(probe: dict, verdict: Verdict) -> bool:
    """Unknown only because a pod's or host endpoint's address is not given (never an external address)."""
    if verdict.outcome is not Outcome.UNKNOWN:
        return False
    side = {Reason.SOURCE_IP_UNKNOWN: "src", Reason.DEST_IP_UNKNOWN: "dst"}.get(verdict.reason)
    return side is not None and probe.get(f"{side}_kind") != "ip"


def explained_by(case: Case, probe: dict, verdict: Verdict, allowed: set[str], engines: dict) -> str | None:
    """The smallest combination of the case's listed differences that reproduces NCA's answer, if any: a
    re-run giving NCA's answer, or an unknown verdict for want of an endpoint's address."""
    ip_unknown_allowed = "endpoint_ip" in allowed
    if ip_unknown_allowed and endpoint_ip_unknown(probe, verdict):
        return "endpoint_ip"
    reruns = sorted(allowed - {"endpoint_ip"})
    for size in range(1, len(reruns) + 1):
        for combo in itertools.combinations(reruns, size):
            if combo not in engines:
                model = Model(case.policy_set)
                for difference in combo:
                    model = simplified(case, model, difference)
                engines[combo] = model.engine()
            again = engines[combo].connection(case.traffic(probe))
            if again.outcome.value == probe["expected"]:
                return "+".join(combo)
            if ip_unknown_allowed and endpoint_ip_unknown(probe, again):
                return "+".join((*combo, "endpoint_ip"))
    return None


# -- the tests ---------------------------------------------------------------------------------------------


def test_the_index_lists_exactly_the_58_cases_and_every_exception_names_a_known_difference(shared_dir):
    index = json.loads((shared_dir / "conformance" / "nca-policy-cases" / "index.json").read_text())
    assert tuple(c["id"] for c in index["cases"]) == CASE_IDS
    for case_id, names in CASE_EXCEPTIONS.items():
        assert case_id in CASE_IDS and names <= NCA_DIFFERENCES.keys()


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_every_probe_gets_ncas_answer_or_a_listed_model_difference(shared_dir, case_id):
    case = load_case(shared_dir, case_id)
    engine = Engine(case.policy_set)
    allowed = CASE_EXCEPTIONS.get(case_id, set())
    engines: dict = {}
    used: Counter[str] = Counter()
    unexplained = []
    for probe in case.expected["probes"]:
        verdict = engine.connection(case.traffic(probe))
        if verdict.outcome.value == probe["expected"]:
            continue
        why = explained_by(case, probe, verdict, allowed, engines)
        if why is None:
            unexplained.append(f"{probe} -> {verdict.outcome.value} ({verdict.reason or verdict.policy})")
        else:
            used.update(why.split("+"))
    assert not unexplained, f"{len(unexplained)} probes differ from NCA:\n" + "\n".join(unexplained[:10])
    assert set(used) == allowed, f"listed differences never needed: {sorted(allowed - set(used))}"


# -- every pair of endpoints, at the port and protocol boundaries NCA's answers draw ------------------------


def allows(connection: dict, protocol: str, src_port: int | None, dst_port: int | None, icmp: tuple) -> bool:
    """Whether NCA's structured connection set (`conn_catalog`) holds this concrete flow."""
    if connection.get("all"):
        return True
    if connection.get("none"):
        return False

    def inside(cube: dict) -> bool:
        def within(field: str, value: int | None) -> bool:
            ranges = cube.get(field)
            return ranges is None or (value is not None and any(lo <= value <= hi for lo, hi in ranges))

        return (
            ("protocols" not in cube or protocol in cube["protocols"])
            and within("src_ports", src_port) and within("dst_ports", dst_port)
            and within("icmp_type", icmp[0]) and within("icmp_code", icmp[1])
        )

    if "any_of" in connection:
        return any(inside(c) for c in connection["any_of"])
    return not any(inside(c) for c in connection["all_but"])


def boundary_flows(catalog: dict) -> list[tuple[str, int | None, int | None, tuple]]:
    """(protocol, source port, destination port, (icmp type, code)) at every edge of every range NCA uses."""
    flows = {("TCP", 40000, 80, (None, None)), ("UDP", 40000, 53, (None, None)), ("SCTP", 40000, 8080, (None, None)),
             ("ICMP", None, None, (8, 0))}
    for connection in catalog.values():
        for cube in connection.get("any_of", []) + connection.get("all_but", []):
            protocols = [p for p in cube.get("protocols", ["TCP", "UDP"]) if p in PROTOCOLS]
            for protocol in protocols:
                if protocol == "ICMP":
                    for lo, hi in cube.get("icmp_type", [[8, 8]]):
                        flows |= {("ICMP", None, None, (t, 0)) for t in (lo, hi, hi + 1) if t <= 254}
                    continue
                for lo, hi in cube.get("dst_ports", []):
                    flows |= {(protocol, 40000, p, (None, None)) for p in (lo - 1, lo, hi, hi + 1) if 1 <= p <= 65535}
                for lo, hi in cube.get("src_ports", []):
                    flows |= {(protocol, p, 80, (None, None)) for p in (lo - 1, lo, hi, hi + 1) if 1 <= p <= 65535}
    return sorted(flows, key=str)


@pytest.mark.slow
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_every_endpoint_pair_gets_ncas_allowed_connections(shared_dir, case_id):
    case = load_case(shared_dir, case_id)
    catalog, allowed_map = case.expected["conn_catalog"], case.expected["allowed"]
    engine = Engine(case.policy_set)
    allowed = CASE_EXCEPTIONS.get(case_id, set())
    engines: dict = {}
    unexplained = []
    flows = boundary_flows(catalog)
    for src, dst in itertools.permutations(case.endpoints, 2):
        granted = [catalog[c] for c in allowed_map.get(src, {}).get(dst, [])]
        for protocol, src_port, dst_port, icmp in flows:
            probe = {"src": src, "dst": dst, "protocol": protocol, "src_port": src_port, "dst_port": dst_port,
                     "icmp_type": icmp[0], "icmp_code": icmp[1]}
            probe["expected"] = "allow" if any(allows(g, protocol, src_port, dst_port, icmp) for g in granted) else "deny"
            verdict = engine.connection(case.traffic(probe))
            if verdict.outcome.value != probe["expected"] and explained_by(case, probe, verdict, allowed, engines) is None:
                unexplained.append(f"{probe} -> {verdict.outcome.value} ({verdict.reason or verdict.policy})")
    assert not unexplained, f"{len(unexplained)} flows differ from NCA:\n" + "\n".join(unexplained[:10])


@pytest.mark.parametrize("case_id", [c for c in CASE_IDS if c.startswith("calico-tc19")])
def test_labels_inherited_from_profiles_are_the_ones_nca_lists(shared_dir, case_id):
    case = load_case(shared_dir, case_id)
    resolver = Engine(case.policy_set).resolver
    for ident, e in case.endpoints.items():
        facts = resolver.resolve(case.endpoint(ident, None, None))
        for key, value in (e.get("labels_from_profiles") or {}).items():
            assert facts.labels.get(key) == value, (ident, key)
