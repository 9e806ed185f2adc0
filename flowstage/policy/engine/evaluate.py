"""The per-direction evaluation (calico-semantics §5.2): failsafes, tiers, policies, rules, profiles — compiled
once per subject and direction, run per flow, and explored on both branches wherever a fact is unknown.

A run that meets an unknown criterion (rule match, policy applicability, unknown profile) is re-run with
that point taken as "matched" and as "did not match"; the verdict is definite when every path agrees.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from flowstage.policy.engine.addresses import CIDRs
from flowstage.policy.engine.endpoints import EndpointFacts
from flowstage.policy.engine.match import (
    CompiledRule,
    FlowContext,
    MatcherPool,
    ResidualRule,
    Tri,
    protocol_name,
    selector_value,
    show,
)
from flowstage.policy.model import (
    Action,
    Direction,
    IPNetwork,
    Policy,
    PolicySet,
    Profile,
    Rule,
    SetName,
    StagedAction,
    Tier,
)
from flowstage.policy.traffic import PROFILE_TIER, EndpointType, Outcome, Reason, TraceStep
from flowstage.selector import Selector

NO_PROFILE_MATCH = "__NO_MATCH__"
FAILSAFE = "failsafe"


@dataclass(frozen=True)
class FailsafePort:
    """One FailsafeInboundHostPorts / FailsafeOutboundHostPorts entry (§7): protocol, port, optional CIDR."""

    protocol: int
    port: int
    net: IPNetwork | None = None

    def __str__(self) -> str:
        net = f" {self.net}" if self.net is not None else ""
        return f"{protocol_name(self.protocol).lower()}:{self.port}{net}"


def parse_failsafe_ports(text: str) -> tuple[FailsafePort, ...]:
    """Felix's string form, e.g. `tcp:22, udp:68, tcp:10.0.0.0/8:6443`; a missing protocol means tcp."""
    entries = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        parts = item.split(":")
        protocol = "tcp" if len(parts) == 1 else parts[0].lower()
        net = ipaddress.ip_network(parts[1], strict=False) if len(parts) == 3 else None
        number = {"tcp": 6, "udp": 17, "sctp": 132}.get(protocol)
        if number is None:
            raise ValueError(f"failsafe port {item!r}: protocol must be tcp, udp or sctp")
        entries.append(FailsafePort(number, int(parts[-1]), net))
    return tuple(entries)


DEFAULT_FAILSAFE_INBOUND = parse_failsafe_ports(
    "tcp:22, udp:68, tcp:179, tcp:2379, tcp:2380, tcp:5473, tcp:6443, tcp:6666, tcp:6667"
)
DEFAULT_FAILSAFE_OUTBOUND = parse_failsafe_ports(
    "udp:53, udp:67, tcp:179, tcp:2379, tcp:2380, tcp:5473, tcp:6443, tcp:6666, tcp:6667"
)


class FailsafeMatch:
    """Failsafe ports of a host endpoint: accept before any policy (inbound: to the host; outbound: from it)."""

    def __init__(self, entries: Iterable[FailsafePort], inbound: bool) -> None:
        self.entries = tuple(entries)
        self.inbound = inbound
        self._nets = {e: CIDRs([e.net]) for e in self.entries if e.net is not None}

    def test(self, ctx: FlowContext) -> Tri:
        if not self.entries:
            return False
        if ctx.proto is None:
            return Reason.PROTOCOL_UNKNOWN
        # inbound entries constrain the source address, outbound ones the destination address
        peer = ctx.src if self.inbound else ctx.dst
        found: Tri = False
        for entry in self.entries:
            if entry.protocol != ctx.proto:
                continue
            if ctx.dst_port is None:
                hit: Tri = Reason.DEST_PORT_UNKNOWN
            elif ctx.dst_port != entry.port:
                continue
            else:
                hit = True
            if entry.net is not None:
                inside = peer.addresses.only(ctx.family).within(self._nets[entry])
                if inside is False:
                    continue
                if inside is None and hit is True:
                    hit = Reason.SOURCE_IP_UNKNOWN if self.inbound else Reason.DEST_IP_UNKNOWN
            if hit is True:
                return True
            found = hit
        return found

    def describe(self) -> str:
        kind = "inbound" if self.inbound else "outbound"
        return f"failsafe {kind} ports [{', '.join(str(e) for e in self.entries)}]"


@dataclass
class PolicyStep:
    policy: Policy
    applies: Tri  # True, or the Reason its selector cannot be decided
    rules: RuleList
    name: str  # display name, short kind and staged-ness, looked up once per policy
    kind: str
    staged: bool


@dataclass
class TierStep:
    tier: Tier
    stage: str  # "" for normal policy; "untracked" / "preDNAT" host-endpoint stages
    default_action: Action
    policies: tuple[PolicyStep, ...]
    skipped_before: tuple[str, ...]  # tiers with no applicable policy just before this one (for explain)


@dataclass
class ProfileStep:
    profile: Profile
    rules: RuleList


@dataclass
class Program:
    """What one subject faces in one direction, in order."""

    direction: Direction
    subject: EndpointFacts
    failsafe: FailsafeMatch | None
    tiers: tuple[TierStep, ...]
    skipped_after: tuple[str, ...]
    # None: the profile list is not known; a Reason item: a profile that cannot be identified or is missing
    profiles: tuple[ProfileStep | Reason, ...] | None


_CACHE_LIMIT = 4096


class RuleList:
    """One policy's (or profile's) rules for one direction, compiled once and shared by every subject.

    `for_flow` gives the rules left once protocol, numeric ports and ICMP fields are settled, cached per
    such L4 key: replay asks about few distinct (protocol, port) pairs, so this skips most rules cheaply.
    """

    __slots__ = ("rules", "compiled", "residual")

    def __init__(self, rules: tuple[Rule, ...], compiled: tuple[CompiledRule, ...]) -> None:
        self.rules = rules  # keeps the tuple alive: compiled lists are found by its id
        self.compiled = compiled
        self.residual: dict[tuple, tuple[ResidualRule, ...]] = {}

    def __len__(self) -> int:
        return len(self.compiled)

    def for_flow(self, ctx: FlowContext) -> tuple[ResidualRule, ...]:
        key = ctx.l4_key
        found = self.residual.get(key)
        if found is None:
            if len(self.residual) >= _CACHE_LIMIT:
                self.residual.clear()
            found = tuple(r for r in (c.residual(ctx) for c in self.compiled) if r is not None)
            self.residual[key] = found
        return found


@dataclass(frozen=True)
class Where:
    """Where a decision or an unknown point sits: tier, policy (display name), short kind, rule, staged."""

    tier: str | None = None
    policy: str | None = None
    kind: str | None = None
    rule: int | None = None
    staged: bool = False


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    where: Where


@dataclass(frozen=True)
class Point:
    reason: Reason
    where: Where
    detail: str


class NeedsBranching(Exception):
    """Raised by a strict run at its first unknown point: the flow needs the branching exploration."""


class Run:
    """One pass over a program. `choices[i]` answers the i-th unknown point (missing: "did not match")."""

    __slots__ = ("choices", "points", "strict", "trace")

    def __init__(self, choices: tuple[bool, ...] = (), strict: bool = False, trace: list[TraceStep] | None = None):
        self.choices = choices
        self.points: list[Point] = []
        self.strict = strict
        self.trace = trace

    def choose(self, reason: Reason, where: Where, detail: str) -> bool:
        if self.strict:
            raise NeedsBranching
        i = len(self.points)
        self.points.append(Point(reason, where, detail))
        taken = self.choices[i] if i < len(self.choices) else False
        if self.trace is not None:
            self.trace.append(
                TraceStep(
                    where.tier or "", where.policy, where.rule, "assumed",
                    f"unknown ({reason.value}): {detail}; this path assumes it "
                    + ("matches" if taken else "does not match"),
                )
            )
        return taken


def _step(run: Run, tier: str, policy: str | None, rule: int | None, outcome: str, detail: str) -> None:
    if run.trace is not None:
        run.trace.append(TraceStep(tier, policy, rule, outcome, detail))


def execute(program: Program, ctx: FlowContext, run: Run) -> Decision:
    """One path through the program (§5.2); unknown points are answered by `run.choose`."""
    tracing = run.trace is not None
    l4_key = ctx.l4_key
    if program.failsafe is not None:
        hit = program.failsafe.test(ctx)
        if tracing:
            _step(run, "", FAILSAFE, None, "matched" if hit is True else "no_match",
                  f"{program.failsafe.describe()}: {show(hit)} (flow {protocol_name(ctx.proto)}/{ctx.dst_port})")
        if hit is True or (hit is not False and run.choose(hit, Where(policy=FAILSAFE), program.failsafe.describe())):
            return Decision(Outcome.ALLOW, Where(policy=FAILSAFE))

    for tier_step in program.tiers:
        tier = tier_step.tier.name
        if tracing:
            for skipped in tier_step.skipped_before:
                _step(run, skipped, None, None, "skipped", "no applicable policy for this endpoint and direction")
            stage = f" ({tier_step.stage} stage)" if tier_step.stage else ""
            _step(run, tier, None, None, "entered", f"tier {tier}{stage}: {len(tier_step.policies)} applicable "
                  f"polic{'y' if len(tier_step.policies) == 1 else 'ies'}, default action {tier_step.default_action.value}")
        applied: list[PolicyStep] = []
        passed = False
        for policy_step in tier_step.policies:
            policy = policy_step.policy
            if policy_step.applies is not True:
                where = Where(tier, policy_step.name, policy_step.kind, None, policy_step.staged)
                if not run.choose(policy_step.applies, where, f"whether {policy.display_name} selects the endpoint "
                                  f"({policy.applies_to})"):
                    continue
            applied.append(policy_step)
            if tracing:
                _step(run, tier, policy.display_name, None, "applied",
                      f"{policy.flow_log_id} selects {program.subject.display} ({policy.applies_to}); "
                      f"{len(policy_step.rules)} {program.direction.value.lower()} rule(s)")
            if tracing:
                rules = policy_step.rules.compiled
            else:
                rules = policy_step.rules.residual.get(l4_key)
                if rules is None:
                    rules = policy_step.rules.for_flow(ctx)
            for compiled in rules:
                found = compiled.match(ctx)
                rule = compiled.rule
                if tracing:
                    _step(run, tier, policy.display_name, rule.index,
                          "matched" if found is True else "no_match" if found is False else "unknown",
                          f"{rule.action.value}: {compiled.explain(ctx)}")
                if found is not True:
                    if found is False:
                        continue
                    where = Where(tier, policy_step.name, policy_step.kind, rule.index, policy_step.staged)
                    if not run.choose(found, where, f"rule {rule.index} of {policy.display_name}"):
                        continue
                action = rule.action
                if action is Action.LOG:
                    continue
                if action is Action.ALLOW or action is Action.DENY:
                    where = Where(tier, policy_step.name, policy_step.kind, rule.index, policy_step.staged)
                    return Decision(Outcome.ALLOW if action is Action.ALLOW else Outcome.DENY, where)
                passed = True  # Pass: skip the rest of this tier, its default action included
                if tracing:
                    _step(run, tier, policy.display_name, rule.index, "pass", "Pass: continue at the next tier")
                break
            if passed:
                break
            if tracing and policy_step.rules:
                _step(run, tier, policy.display_name, None, "no_match", "no rule matched: no verdict from this policy")
        if passed or not applied:
            continue
        # a staged trigger is what a user of the proposed set needs to see; else the first, as Calico's checker
        trigger = next((p for p in applied if p.staged), applied[0])
        if tier_step.default_action is Action.PASS:
            if tracing:
                _step(run, tier, trigger.name, -1, "end_of_tier", "end of tier: default action Pass")
            continue
        if tracing:
            _step(run, tier, trigger.name, -1, "end_of_tier",
                  f"end of tier: no policy decided; default action Deny, triggered by {trigger.policy.flow_log_id}")
        return Decision(Outcome.DENY, Where(tier, trigger.name, trigger.kind, -1, trigger.staged))

    if tracing:
        for skipped in program.skipped_after:
            _step(run, skipped, None, None, "skipped", "no applicable policy for this endpoint and direction")
    return _profiles(program, ctx, run)


def _profiles(program: Program, ctx: FlowContext, run: Run) -> Decision:
    tracing = run.trace is not None
    if program.profiles is None:
        where = Where(PROFILE_TIER, None, "pro")
        allowed = run.choose(Reason.HOST_ENDPOINT_UNKNOWN, where, f"profiles of {program.subject.display}")
        return Decision(Outcome.ALLOW if allowed else Outcome.DENY, where)
    for profile_step in program.profiles:
        if isinstance(profile_step, Reason):
            where = Where(PROFILE_TIER, None, "pro")
            if run.choose(profile_step, where, "a profile the endpoint lists that cannot be evaluated"):
                return Decision(Outcome.ALLOW, where)
            continue
        profile = profile_step.profile
        for compiled in (profile_step.rules.compiled if tracing else profile_step.rules.for_flow(ctx)):
            found = compiled.match(ctx)
            rule = compiled.rule
            if tracing:
                _step(run, PROFILE_TIER, profile.name, rule.index,
                      "matched" if found is True else "no_match" if found is False else "unknown",
                      f"{rule.action.value}: {compiled.explain(ctx)}")
            where = Where(PROFILE_TIER, profile.name, "pro", rule.index)
            if found is not True and (found is False or not run.choose(found, where, f"rule {rule.index} of "
                                                                       f"profile {profile.name}")):
                continue
            if rule.action is Action.ALLOW:
                return Decision(Outcome.ALLOW, where)
            if rule.action is Action.DENY:
                return Decision(Outcome.DENY, where)
            if rule.action is Action.PASS:
                break  # the dataplane leaves this profile and tries the next one
        if tracing and not profile_step.rules:
            _step(run, PROFILE_TIER, profile.name, None, "no_match", "profile has no rules in this direction")
    if tracing:
        _step(run, PROFILE_TIER, NO_PROFILE_MATCH, 0, "profile", "no profile allowed or denied: deny")
    return Decision(Outcome.DENY, Where(PROFILE_TIER, NO_PROFILE_MATCH, "pro", 0))


# -- compiling programs ----------------------------------------------------------------------------------


class Compiler:
    """Builds Programs for subjects, sharing compiled rules (and their match caches) across subjects."""

    def __init__(
        self,
        policy_set: PolicySet,
        failsafe_inbound: tuple[FailsafePort, ...],
        failsafe_outbound: tuple[FailsafePort, ...],
        cached: bool = True,
    ) -> None:
        self.policy_set = policy_set
        self.cached = cached
        self._rules: dict[int, RuleList] = {}
        self.pool = MatcherPool(cached)
        self._failsafe_in = FailsafeMatch(failsafe_inbound, inbound=True)
        self._failsafe_out = FailsafeMatch(failsafe_outbound, inbound=False)
        tiers = list(policy_set.tiers)
        known = {t.name for t in tiers}
        # a tier named by policies but missing from the set still applies, after every valid tier, as Deny
        tiers += [Tier(name, None, Action.DENY, defined=False) for name in policy_set.policies if name not in known]
        self.tiers = tuple(tiers)
        self._enforced_only = policy_set.name is SetName.CURRENT
        self._candidates: dict[tuple[Direction, bool, str | None], list[tuple[Tier, list[Policy]]]] = {}
        self._applies: dict[int, dict[int, Tri]] = {}
        self._selectors_by_id: dict[int, Selector] = {}
        self._selectors_by_text: dict[str, Selector] = {}
        self._names = {id(p): (p.display_name, p.kind.short, p.staged) for p in policy_set.all_policies()}

    def rules(self, rules: tuple[Rule, ...]) -> RuleList:
        """Compiled once per distinct rule list, so matcher caches are shared by every subject."""
        compiled = self._rules.get(id(rules))
        if compiled is None:
            compiled = RuleList(rules, tuple(CompiledRule(r, self.pool) for r in rules))
            self._rules[id(rules)] = compiled
        return compiled

    def candidates(self, direction: Direction, hep: bool, namespace: str | None) -> list[tuple[Tier, list[Policy]]]:
        """Per tier, the policies that may govern such a subject in this direction, before selectors."""
        key = (direction, hep, namespace)
        found = self._candidates.get(key)
        if found is None:
            found = []
            for tier in self.tiers:
                found.append((tier, [
                    p for p in self.policy_set.tier_policies(tier.name)
                    if direction in p.types
                    and not (self._enforced_only and p.staged)
                    and p.staged_action is not StagedAction.DELETE
                    # only global policies select host endpoints; untracked / preDNAT ones only those
                    and (p.kind.is_global if hep else not (p.do_not_track or p.pre_dnat))
                    # a namespaced policy's selector always carries its namespace (§2.4)
                    and (p.namespace is None or p.namespace == namespace)
                ]))
            self._candidates[key] = found
        return found

    def _interned(self, selector: Selector) -> Selector:
        """One object per distinct policy selector, so each is matched once per subject."""
        found = self._selectors_by_id.get(id(selector))
        if found is None:
            found = self._selectors_by_text.setdefault(str(selector), selector)
            self._selectors_by_id[id(selector)] = found
        return found

    def _applicability(self, subject: EndpointFacts) -> dict[int, Tri]:
        """Whether each policy selects the subject, by id; one evaluation per distinct selector."""
        found = self._applies.get(subject.id) if self.cached else None
        if found is None:
            found = {}
            by_selector: dict[int, Tri] = {}
            hep = subject.type is EndpointType.HEP
            for direction in Direction:
                for _, policies in self.candidates(direction, hep, subject.namespace):
                    for policy in policies:
                        if id(policy) in found:
                            continue
                        selector = self._interned(policy.applies_to)
                        value = by_selector.get(id(selector))
                        if value is None:
                            value = selector_value(selector, subject, self.cached)
                            by_selector[id(selector)] = value
                        found[id(policy)] = value
            if self.cached:
                if len(self._applies) >= _CACHE_LIMIT:
                    self._applies.clear()
                self._applies[subject.id] = found
        return found

    def program(self, subject: EndpointFacts, direction: Direction) -> Program:
        hep = subject.type is EndpointType.HEP
        per_tier = self.candidates(direction, hep, subject.namespace)
        applicability = self._applicability(subject)
        stages: list[tuple[str, bool]] = [("", True)]
        if hep:
            stages = [("untracked", False), ("preDNAT", False), ("", True)]
        tier_steps: list[TierStep] = []
        skipped: list[str] = []
        for stage, normal in stages:
            for tier, candidates in per_tier:
                steps = []
                for policy in candidates:
                    if hep and (policy.do_not_track, policy.pre_dnat) != (stage == "untracked", stage == "preDNAT"):
                        continue
                    applies = applicability[id(policy)]
                    if applies is False:
                        continue
                    name = self._names.get(id(policy))
                    if name is None:
                        name = self._names[id(policy)] = (policy.display_name, policy.kind.short, policy.staged)
                    steps.append(PolicyStep(policy, applies, self.rules(policy.rules(direction)), *name))
                if not steps:
                    if normal:
                        skipped.append(tier.name)
                    continue
                default = tier.default_action if normal else Action.PASS  # felix forces Pass in these stages
                tier_steps.append(TierStep(tier, stage, default, tuple(steps), tuple(skipped)))
                skipped = []
        failsafe = None
        if hep:
            failsafe = self._failsafe_in if direction is Direction.INGRESS else self._failsafe_out
        profiles: tuple[ProfileStep | Reason, ...] | None = None
        if subject.profiles is not None:
            profiles = tuple(
                p if isinstance(p, Reason) else ProfileStep(p, self.rules(p.rules(direction)))
                for p in subject.profiles
            )
        return Program(direction, subject, failsafe, tuple(tier_steps), tuple(skipped), profiles)
