"""The engines of one replay run and the shortcuts that keep Python work per key small: a key is judged once
per policy set only where the sets can disagree.

The shortcuts are exact, never heuristics: each one copies a verdict only where Calico's algorithm provably
reaches the same decision.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from flowstage import arrays
from flowstage.policy.engine import REPORTERS, Engine
from flowstage.policy.engine.selection import SelectorIndex
from flowstage.policy.model import Direction, Policy, PolicySet
from flowstage.policy.sets import PolicySets
from flowstage.policy.traffic import Endpoint, EndpointType, Outcome, Reason, Traffic, Verdict
from flowstage.replay import nets
from flowstage.replay.views import SET_NAMES, VERDICT_FIELDS

VerdictRow = tuple  # (verdict, tier, policy, policy_kind, rule, staged, reason), as stored per set
VERDICT_TYPES: dict[str, pa.DataType] = {
    "verdict": pa.string(),
    "tier": pa.string(),
    "policy": pa.string(),
    "policy_kind": pa.string(),
    "rule": pa.int32(),
    "staged": pa.bool_(),
    "reason": pa.string(),
}
NO_VERDICT: VerdictRow = (None, None, None, None, None, None, None)
_NOT_JUDGED: VerdictRow = (Outcome.UNKNOWN.value, None, None, None, None, False, Reason.NOT_A_POLICY_ENDPOINT.value)
_SIDE = {"src": Direction.EGRESS, "dst": Direction.INGRESS}


def verdict_row(verdict: Verdict) -> VerdictRow:
    return (
        verdict.outcome.value,
        verdict.tier,
        verdict.policy,
        verdict.policy_kind,
        verdict.rule,
        verdict.staged,
        verdict.reason.value if verdict.reason is not None else None,
    )


def verdict_columns(judged: list[tuple[VerdictRow, ...]]) -> pa.Table:
    """`<set>_<field>` columns (SET_NAMES × VERDICT_FIELDS) of the keys' verdict rows, one row per key."""
    columns: list[pa.Array] = []
    names: list[str] = []
    for j, s in enumerate(SET_NAMES):
        # Keys share few distinct verdicts: each is converted once, then gathered.
        codes: dict[VerdictRow, int] = {}
        index = [codes.setdefault(verdicts[j], len(codes)) for verdicts in judged]
        gather = arrays.integers(index, pa.int32())
        fields = zip(*codes, strict=True) if codes else [()] * len(VERDICT_FIELDS)
        for f, values in zip(VERDICT_FIELDS, fields, strict=True):
            columns.append(arrays.of_type(values, VERDICT_TYPES[f]).take(gather))
            names.append(f"{s}_{f}")
    return pa.Table.from_arrays(columns, names=names)


def _members(policy_set: PolicySet) -> set[Policy]:
    return set(policy_set.all_policies())


class Delta:
    """The policies one set has and another lacks (either way round).

    A workload endpoint's verdict in one direction depends only on the tiers, the policies that apply to it in
    that direction, its profiles and the inventory. Where no policy of the delta can apply to the judged
    endpoint, both sets run the same program and reach the same decision.
    """

    def __init__(self, changed: Iterable[Policy]) -> None:
        self.changed = tuple(changed)
        # Per direction: global policies, and namespaced ones by namespace (they apply only there, §2.4).
        self._global: dict[Direction, list[Policy]] = {d: [] for d in Direction}
        self._namespaced: dict[Direction, dict[str, list[Policy]]] = {d: {} for d in Direction}
        for policy in self.changed:
            for direction in policy.types:
                if policy.namespace is None:
                    self._global[direction].append(policy)
                else:
                    self._namespaced[direction].setdefault(policy.namespace, []).append(policy)
        # Per direction and namespace: those candidates with their selectors indexed by the label they require.
        self._indexed: dict[tuple[Direction, str], tuple[list[Policy], SelectorIndex]] = {}
        # Per direction (ingress first): the endpoint's identity (everything but its port) -> whether the delta
        # may apply to it; and the same per what the selectors read (effective labels and what is known of them),
        # which many endpoints share (every pod of a workload, at every aggregation level). Indexed by the
        # direction (0 ingress, 1 egress), not keyed by it: an enum member's hash is a Python call, run per key.
        self._memo: tuple[dict[tuple[object, ...], bool], ...] = ({}, {})
        self._by_labels: tuple[dict[tuple[object, ...], bool], ...] = ({}, {})

    @classmethod
    def between(cls, base: PolicySet, other: PolicySet) -> Delta:
        theirs, ours = _members(other), _members(base)
        return cls([p for p in other.all_policies() if p not in ours] + [p for p in base.all_policies() if p not in theirs])

    def may_differ(self, engine: Engine, subject: Endpoint, direction: Direction) -> bool:
        """Whether a policy of the delta may apply to `subject` in `direction` (as `engine` resolves it)."""
        side = 0 if direction is Direction.INGRESS else 1
        memo = self._memo[side]
        identity = (id(subject.type), subject.namespace, subject.name, subject.name_aggr, subject.labels, subject.ip)
        found = memo.get(identity)
        if found is None:
            candidates, index = self._candidates(direction, subject.namespace or "")
            found = False
            if candidates:
                facts = engine.resolver.resolve(subject)
                known = (
                    facts.namespace, facts.labels, facts.labels_known, facts.namespace_labels_known,
                    facts.service_account_known, facts.service_account_labels_known, facts.uncertain, facts.derived,
                )  # fmt: skip
                by_labels = self._by_labels[side]
                found = by_labels.get(known)
                if found is None:
                    found = by_labels[known] = any(
                        candidates[i].applies_to.evaluate(facts.labels, facts.unknown) is not False
                        for i in index.candidates(facts)
                    )
            memo[identity] = found
        return found

    def _candidates(self, direction: Direction, namespace: str) -> tuple[list[Policy], SelectorIndex]:
        if namespace not in self._namespaced[direction]:
            namespace = ""  # only global policies of the delta: shared by every such namespace
        found = self._indexed.get((direction, namespace))
        if found is None:
            candidates = self._global[direction] + self._namespaced[direction].get(namespace, [])
            found = self._indexed[(direction, namespace)] = (
                candidates, SelectorIndex([p.applies_to for p in candidates])
            )
        return found


class Judge:
    """Judges one key under every set: current, proposed, pending, and each without its safety nets."""

    def __init__(self, sets: PolicySets) -> None:
        self.current = Engine(sets.current)
        # Every set reuses the current engine's endpoint facts and compiled rules (they share the inventory).
        self.proposed = Engine(sets.proposed, share_with=self.current)
        self.pending = Engine(sets.pending, share_with=self.current)
        self.proposed_delta = Delta.between(sets.current, sets.proposed)
        self.pending_delta = Delta.between(sets.current, sets.pending)
        self.current_nets = nets.net_ids(sets.current)
        self.proposed_nets = nets.net_ids(sets.proposed)
        self.current_unguarded = (
            Engine(nets.without_nets(sets.current), share_with=self.current) if self.current_nets else None
        )
        self.proposed_unguarded = (
            Engine(nets.without_nets(sets.proposed), share_with=self.current) if self.proposed_nets else None
        )
        self.decisions = 0  # engine calls made, for the benchmark's keys/s and decisions/s

    def judge(self, traffic: Traffic, reporter: str | None, with_pending: bool) -> tuple[VerdictRow, ...]:
        """Verdict rows for current, proposed, pending (NO_VERDICT unless `with_pending`), and the net-free sets."""
        if reporter not in REPORTERS:
            # No reporting side Calico names: nothing to judge (ingest normalises every reporter it knows).
            return _NOT_JUDGED, _NOT_JUDGED, _NOT_JUDGED if with_pending else NO_VERDICT, _NOT_JUDGED, _NOT_JUDGED
        current = self._decide(self.current, traffic, reporter)
        proposed = self._other(self.proposed, self.proposed_delta, current, traffic, reporter)
        pending = self._other(self.pending, self.pending_delta, current, traffic, reporter) if with_pending else NO_VERDICT
        current_bare = self._unguarded(self.current_unguarded, self.current_nets, current, traffic, reporter)
        proposed_bare = self._unguarded(self.proposed_unguarded, self.proposed_nets, proposed, traffic, reporter)
        return current, proposed, pending, current_bare, proposed_bare

    def _decide(self, engine: Engine, traffic: Traffic, reporter: str) -> VerdictRow:
        self.decisions += 1
        return verdict_row(engine.decide_reported(traffic, reporter))

    def _other(self, engine: Engine, delta: Delta, current: VerdictRow, traffic: Traffic, reporter: str) -> VerdictRow:
        direction = _SIDE.get(reporter)
        if direction is not None:
            subject = traffic.destination if direction is Direction.INGRESS else traffic.source
            if subject.type is not EndpointType.WEP and subject.type is not EndpointType.HEP:
                return current  # no policy side at all: every set says not_a_policy_endpoint
            if subject.type is EndpointType.WEP and not delta.changed:
                return current
            if subject.type is EndpointType.WEP and not delta.may_differ(self.current, subject, direction):
                return current
        return self._decide(engine, traffic, reporter)

    def _unguarded(self, engine: Engine | None, net_ids: frozenset[tuple[str, str]], verdict: VerdictRow,
                   traffic: Traffic, reporter: str) -> VerdictRow:
        # Removing a net changes only what the net decided: anything else never reached it.
        if engine is None or (verdict[3], verdict[2]) not in net_ids:
            return verdict
        return self._decide(engine, traffic, reporter)
