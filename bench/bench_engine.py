"""Engine throughput: decisions per second for replay-sized work, against an uncached baseline in the same run.

A seeded generator builds 500 policies across 4 tiers and 100,000 distinct replay keys over ~2,000 endpoints.
The same engine on synth's cluster and its 500-policy set (what bench_replay replays: ~2,000 namespaces, ~10,000
endpoints, policies in 89 of them) is measured beside it: a subject's cost follows the policies that can apply to
it, not all 500.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bench.common import Result
from flowstage.policy.engine import Engine
from flowstage.policy.model import (
    DEFAULT_TIER_ORDER,
    Action,
    Direction,
    EntityRule,
    FrozenMap,
    Inventory,
    Namespace,
    Policy,
    PolicyKind,
    PolicySet,
    PortRange,
    Ports,
    Rule,
    SetName,
    StagedAction,
    Tier,
)
from flowstage.policy.traffic import Endpoint, EndpointType, Traffic
from flowstage.selector import Selector, and_selectors, has_label, label_equals, parse_selector
from flowstage.synth.records import LoggedEndpoint

SIZES = {
    "quick": {"policies": 500, "endpoints": 2000, "keys": 20_000, "baseline_keys": 200},
    "full": {"policies": 500, "endpoints": 2000, "keys": 100_000, "baseline_keys": 500},
}
NS_KEY = "projectcalico.org/namespace"
APPS = ["web", "api", "db", "cache", "queue", "auth", "search", "billing", "report", "gateway", "worker", "metrics"]
TIERS = (
    Tier("security", 100.0, Action.PASS),
    Tier("platform", 200.0, Action.PASS),
    Tier("apps", 500.0, Action.DENY),
    Tier("default", DEFAULT_TIER_ORDER, Action.DENY),
)
PORTS = [53, 80, 443, 5432, 6379, 8080, 8443, 9090, 9200]


@contextmanager
def cpu_timer() -> Iterator[Callable[[], float]]:
    """CPU seconds of this process: stable on a machine shared with other work, and equal to wall time for
    this single-threaded loop on an idle core."""
    start = time.process_time()
    end: list[float] = []
    yield lambda: (end[0] if end else time.process_time()) - start
    end.append(time.process_time())


class ClusterGenerator:
    """A seeded cluster: namespaces, labelled workloads, external peers, policies and replay keys."""

    def __init__(self, seed: int = 7, namespaces: int = 20) -> None:
        self.rng = random.Random(seed)
        self.namespaces = [f"ns-{i:02d}" for i in range(namespaces)]
        self.ns_labels = {
            ns: FrozenMap({"team": f"team-{i % 6}", "env": "prod" if i % 3 else "staging"})
            for i, ns in enumerate(self.namespaces)
        }

    def endpoints(self, count: int) -> list[Endpoint]:
        rng = self.rng
        out: list[Endpoint] = []
        for i in range(count):
            if i % 20 == 19:
                aggr = rng.choice(["pub", "pvt"])
                ip = None if rng.random() < 0.6 else (f"203.0.113.{i % 250}" if aggr == "pub" else f"10.200.0.{i % 250}")
                out.append(Endpoint(EndpointType.NET, None, None, aggr, FrozenMap({}), ip))
                continue
            ns = rng.choice(self.namespaces)
            app = rng.choice(APPS)
            labels = {
                "app": app,
                "tier": rng.choice(["frontend", "backend", "data"]),
                "version": f"v{rng.randint(1, 3)}",
                "pod-template-hash": f"{rng.getrandbits(32):08x}",
            }
            if rng.random() < 0.3:
                labels["critical"] = "true"
            name = f"{app}-{labels['pod-template-hash'][:6]}-*"
            ip = f"10.{rng.randint(0, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" if rng.random() < 0.2 else None
            out.append(Endpoint(EndpointType.WEP, ns, None, name, FrozenMap(labels), ip))
        return out

    def _peer(self, namespace: str | None) -> tuple[EntityRule, str]:
        rng = self.rng
        kind = rng.random()
        app = rng.choice(APPS)
        if kind < 0.45:
            sel = parse_selector(f"app == '{app}'")
            eff = and_selectors(label_equals(NS_KEY, namespace), sel) if namespace else sel
            return EntityRule(selector=sel, effective_selector=eff), "selector"
        if kind < 0.65:
            team = f"team-{rng.randint(0, 5)}"
            ns_sel = parse_selector(f"team == '{team}'")
            sel = parse_selector(f"tier == '{rng.choice(['frontend', 'backend'])}'")
            eff = and_selectors(ns_sel.prefixed("pcns."), sel)
            return EntityRule(selector=sel, namespace_selector=ns_sel, effective_selector=eff), "namespaceSelector"
        if kind < 0.8:
            nets = (ipaddress.ip_network(rng.choice(["10.0.0.0/8", "192.168.0.0/16", "203.0.113.0/24", "0.0.0.0/0"])),)
            return EntityRule(nets=nets), "nets"
        if kind < 0.9:
            not_sel = parse_selector(f"app == '{app}'")
            eff = label_equals(NS_KEY, namespace) if namespace else None
            return EntityRule(not_selector=not_sel, effective_selector=eff), "notSelector"
        return EntityRule(), "any"

    def _rules(self, namespace: str | None, tier: str) -> tuple[Rule, ...]:
        rng = self.rng
        rules = []
        for index in range(rng.randint(1, 4)):
            peer, _ = self._peer(namespace)
            roll = rng.random()
            if tier in ("security", "platform"):
                action = Action.DENY if roll < 0.25 else Action.PASS if roll < 0.7 else Action.ALLOW
            else:
                action = Action.DENY if roll < 0.15 else Action.LOG if roll < 0.2 else Action.ALLOW
            proto = rng.choice([6, 6, 6, 17, None])
            dest = EntityRule()
            if proto is not None and rng.random() < 0.7:
                port = rng.choice(PORTS)
                dest = EntityRule(ports=Ports((PortRange(port, port + (0 if rng.random() < 0.8 else 10)),)))
            rules.append(Rule(action, index, protocol=proto, source=peer, destination=dest))
        return tuple(rules)

    def policies(self, count: int) -> PolicySet:
        rng = self.rng
        policies: list[Policy] = []
        for i in range(count):
            tier = rng.choices([t.name for t in TIERS], weights=[1, 1, 3, 5])[0]
            global_kind = rng.random() < 0.35
            staged = rng.random() < 0.1
            namespace = None if global_kind else rng.choice(self.namespaces)
            app = rng.choice(APPS)
            written = parse_selector(f"app == '{app}'" if rng.random() < 0.8 else "has(critical)")
            applies: Selector = written
            if namespace is not None:
                applies = and_selectors(written, label_equals(NS_KEY, namespace))
            elif rng.random() < 0.3:
                applies = and_selectors(written, parse_selector(f"pcns.env == '{rng.choice(['prod', 'staging'])}'"))
            else:
                applies = and_selectors(written, has_label(NS_KEY))
            if global_kind:
                kind = PolicyKind.STAGED_GLOBAL_NETWORK_POLICY if staged else PolicyKind.GLOBAL_NETWORK_POLICY
            else:
                kind = PolicyKind.STAGED_NETWORK_POLICY if staged else PolicyKind.NETWORK_POLICY
            types = rng.choice([{Direction.INGRESS}, {Direction.INGRESS}, {Direction.EGRESS}, set(Direction)])
            policies.append(Policy(
                kind=kind, name=f"p{i:04d}-{app}", namespace=namespace, tier=tier,
                order=rng.choice([None, float(rng.randint(1, 1000))]), selector=written, applies_to=applies,
                types=frozenset(types),
                ingress=self._rules(namespace, tier) if Direction.INGRESS in types else (),
                egress=self._rules(namespace, tier) if Direction.EGRESS in types else (),
                staged_action=StagedAction.SET if staged else None,
            ))
        per_tier = {t.name: tuple(sorted((p for p in policies if p.tier == t.name), key=lambda p: p.sort_key)) for t in TIERS}
        inventory = Inventory(namespaces={ns: Namespace(ns, labels) for ns, labels in self.ns_labels.items()})
        return PolicySet(SetName.PROPOSED, TIERS, per_tier, inventory)

    def keys(self, endpoints: list[Endpoint], count: int) -> list[tuple[Traffic, str]]:
        """Distinct replay keys shaped like real traffic: each workload calls a handful of peers (mostly in its
        namespace, some external) on one or two ports; both ends report a pod-to-pod connection."""
        rng = self.rng
        workloads = [e for e in endpoints if e.type is EndpointType.WEP]
        external = [e for e in endpoints if e.type is EndpointType.NET]
        by_namespace: dict[str | None, list[Endpoint]] = {}
        for e in workloads:
            by_namespace.setdefault(e.namespace, []).append(e)
        seen: set[tuple] = set()
        keys: list[tuple[Traffic, str]] = []

        def add(src: Endpoint, dst: Endpoint, proto: int, port: int | None, reporter: str) -> None:
            key = (reporter, src, dst, proto, port)
            if key not in seen and len(keys) < count:
                seen.add(key)
                destination = Endpoint(dst.type, dst.namespace, dst.name, dst.name_aggr, dst.labels, dst.ip, port)
                keys.append((Traffic(src, destination, proto), reporter))

        while len(keys) < count:
            src = rng.choice(workloads + external[: len(external) // 4])
            for _ in range(rng.randint(3, 12)):
                roll = rng.random()
                if src.type is EndpointType.NET:
                    dst = rng.choice(workloads)
                elif roll < 0.65:
                    dst = rng.choice(by_namespace[src.namespace])
                elif roll < 0.9:
                    dst = rng.choice(workloads)
                else:
                    dst = rng.choice(external)
                for _ in range(rng.randint(1, 2)):
                    proto = rng.choice([6, 6, 6, 6, 17, 1])
                    port = None if proto == 1 else rng.choice(PORTS)
                    if src.type is EndpointType.WEP:
                        add(src, dst, proto, port, "src")
                    if dst.type is EndpointType.WEP:
                        add(src, dst, proto, port, "dst")
        return keys


def run(size: str = "quick") -> list[Result]:
    params = SIZES[size]
    gen = ClusterGenerator()
    pset = gen.policies(params["policies"])
    endpoints = gen.endpoints(params["endpoints"])
    keys = gen.keys(endpoints, params["keys"])

    cached_rate, share = _best_of_three(pset, keys)

    sample = keys[:: max(1, len(keys) // params["baseline_keys"])]
    naive = Engine(pset, cache=False)
    with cpu_timer() as naive_elapsed:
        naive_verdicts = [naive.decide_reported(t, r) for t, r in sample]
    naive_rate = len(sample) / naive_elapsed()
    fresh = Engine(pset)
    assert naive_verdicts == [fresh.decide_reported(t, r) for t, r in sample], "cached and uncached engines disagree"

    synth_rate, synth_keys, synth_share = _synth_cluster(params["keys"])
    return [
        Result(
            f"engine decide_reported, {params['policies']} policies / {len(TIERS)} tiers, {len(keys):,} distinct keys "
            f"over {len(endpoints):,} endpoints",
            cached_rate, "decisions/s", baseline_name=f"uncached engine ({len(sample):,} keys)",
            baseline_value=naive_rate, target=">= 50,000 decisions/s",
            note=f"per CPU second, best of 3 fresh engines (building and warming caches included); verdicts: {share}",
        ),
        Result(
            f"engine decide_reported on synth's cluster and 500-policy set, {synth_keys:,} distinct keys",
            synth_rate, "decisions/s", baseline_name="the generated set above", baseline_value=cached_rate,
            note=f"current set, per CPU second, best of 3 fresh engines; verdicts: {synth_share}",
        ),
    ]


def _synth_cluster(count: int) -> tuple[float, int, str]:
    """Decisions per CPU second on the keys and policies bench_replay replays, and the verdict shares."""
    from bench.bench_replay import SEED, _policies
    from flowstage.replay import load_inputs
    from flowstage.synth.keys import key_table

    table = key_table(count, SEED, allowed_level=1)

    def endpoint(logged: LoggedEndpoint, port: int | None) -> Endpoint:
        labels = None if logged.labels is None else FrozenMap(dict(item.split("=", 1) for item in logged.labels))
        return Endpoint(EndpointType(logged.type), logged.namespace, logged.name, logged.name_aggr, labels, logged.ip,
                        port)

    keys = [(Traffic(endpoint(k.source, None), endpoint(k.dest, k.dest_port), k.proto_num), k.reporter)
            for k in table.keys]
    rate, share = _best_of_three(load_inputs([_policies()]).sets.current, keys)
    return rate, len(keys), share


def _best_of_three(policy_set: PolicySet, keys: list[tuple[Traffic, str]]) -> tuple[float, str]:
    """Decisions per CPU second, best of three runs each with a fresh engine (so building and warming its caches
    is always counted: the machine is shared, and the least disturbed run is the one that measures the engine),
    and the verdicts' shares."""
    best = float("inf")
    outcomes: Counter[str] = Counter()
    for _ in range(3):
        engine = Engine(policy_set)
        outcomes.clear()
        with cpu_timer() as elapsed:
            for traffic, reporter in keys:
                outcomes[engine.decide_reported(traffic, reporter).outcome.value] += 1
        best = min(best, elapsed())
    share = ", ".join(f"{k} {v / len(keys):.0%}" for k, v in sorted(outcomes.items()))
    return len(keys) / best, share


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    for result in run(parser.parse_args().size):
        print(result.line())
