"""The per-direction evaluation (calico-semantics §5.2): failsafes, tiers, policies, rules, profiles — compiled
once per subject and direction, run per flow, and explored on both branches wherever a fact is unknown.

A strict pass settles most flows. One that meets an unknown criterion (rule match, policy applicability,
unknown profile) goes to the Explorer, which continues from that point both as "matched" and as "did not
match"; the verdict is definite when every path agrees. `execute` walks one path with a trace for explain.
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
from flowstage.policy.engine.selection import SelectorIndex
from flowstage.policy.model import (
    Action,
    Direction,
    IPNetwork,
    Policy,
    PolicySet,
    Profile,
    SetName,
    StagedAction,
    Tier,
)
from flowstage.policy.traffic import PROFILE_TIER, EndpointType, Outcome, Reason, TraceStep, Verdict
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
    certain: bool = True  # every policy surely selects the subject
    end_of_tier: Decision | None = None  # the default-deny decision when every policy applies

    def __post_init__(self) -> None:
        self.certain = all(p.applies is True for p in self.policies)
        # a staged trigger is what a user of the proposed set needs to see; else the first, as Calico's checker
        trigger = next((p for p in self.policies if p.staged), self.policies[0])
        self.end_of_tier = Decision(Outcome.DENY, Where(self.tier.name, trigger.name, trigger.kind, -1, trigger.staged))


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

    __slots__ = ("owner", "compiled", "residual")

    def __init__(self, owner: object, compiled: tuple[CompiledRule, ...]) -> None:
        self.owner = owner  # keeps the policy / profile alive: rule lists are found by its id
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


class Decision:
    """An outcome and where it was decided; reused across flows, so it keeps its Verdict per direction."""

    __slots__ = ("outcome", "where", "bit", "_ingress", "_egress")

    def __init__(self, outcome: Outcome, where: Where) -> None:
        self.outcome = outcome
        self.where = where
        self.bit = 1 if outcome is Outcome.ALLOW else 2  # for sets of outcomes while exploring
        self._ingress: Verdict | None = None
        self._egress: Verdict | None = None

    def __repr__(self) -> str:
        return f"Decision({self.outcome.value}, {self.where})"

    def verdict(self, direction: Direction) -> Verdict:
        ingress = direction is Direction.INGRESS
        found = self._ingress if ingress else self._egress
        if found is None:
            w = self.where
            found = Verdict(self.outcome, direction, w.tier, w.policy, w.kind, w.rule, w.staged)
            if ingress:
                self._ingress = found
            else:
                self._egress = found
        return found


@dataclass(frozen=True)
class Point:
    reason: Reason
    where: Where
    detail: str


FAILSAFE_ALLOW = Decision(Outcome.ALLOW, Where(policy=FAILSAFE))
NO_PROFILE_DENY = Decision(Outcome.DENY, Where(PROFILE_TIER, NO_PROFILE_MATCH, "pro", 0))


class NeedsBranching(Exception):
    """Raised by a strict run at its first unknown point: the flow needs the branching exploration.

    `resume` says where exploring may start, everything before it being settled: (tier, policy, rule)
    indexes into the program, "profiles", or None (from the start)."""

    def __init__(self, resume: tuple[int, int, int] | str | None = None) -> None:
        super().__init__()
        self.resume = resume


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
        if hit is True or (hit is not False and run.choose(hit, FAILSAFE_ALLOW.where, program.failsafe.describe())):
            return FAILSAFE_ALLOW

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
                    if found is False or rule.action is Action.LOG:
                        continue
                    where = Where(tier, policy_step.name, policy_step.kind, rule.index, policy_step.staged)
                    if not run.choose(found, where, f"rule {rule.index} of {policy.display_name}"):
                        continue
                action = rule.action
                if action is Action.LOG:
                    continue
                if action is Action.ALLOW or action is Action.DENY:
                    return compiled.decision
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


def execute_strict(program: Program, ctx: FlowContext) -> Decision:
    """`execute` for the common case, lean: raises NeedsBranching at the first unknown point."""
    l4_key = ctx.l4_key
    if program.failsafe is not None:
        hit = program.failsafe.test(ctx)
        if hit is True:
            return FAILSAFE_ALLOW
        if hit is not False:
            raise NeedsBranching
    allow, deny, log = Action.ALLOW, Action.DENY, Action.LOG
    for tier_step in program.tiers:
        if not tier_step.certain:
            raise NeedsBranching((program.tiers.index(tier_step), 0, -1))
        passed = False
        for policy_step in tier_step.policies:
            rules = policy_step.rules.residual.get(l4_key)
            if rules is None:
                rules = policy_step.rules.for_flow(ctx)
            for compiled in rules:
                found = compiled.match(ctx)
                if found is False:
                    continue
                action = compiled.action
                if action is log:
                    continue
                if found is not True:
                    ti = program.tiers.index(tier_step)
                    raise NeedsBranching((ti, tier_step.policies.index(policy_step), rules.index(compiled)))
                if action is allow or action is deny:
                    return compiled.decision
                passed = True
                break
            if passed:
                break
        if not passed and tier_step.default_action is not Action.PASS:
            return tier_step.end_of_tier
    try:
        return _profiles(program, ctx, Run(strict=True))
    except NeedsBranching:
        raise NeedsBranching("profiles") from None


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
            if rule.action is Action.LOG:
                continue
            if found is not True:
                if found is False:
                    continue
                where = Where(PROFILE_TIER, profile.name, "pro", rule.index)
                if not run.choose(found, where, f"rule {rule.index} of profile {profile.name}"):
                    continue
            if rule.action is Action.PASS:
                break  # the dataplane leaves this profile and tries the next one
            return compiled.decision
        if tracing and not profile_step.rules:
            _step(run, PROFILE_TIER, profile.name, None, "no_match", "profile has no rules in this direction")
    if tracing:
        _step(run, PROFILE_TIER, NO_PROFILE_MATCH, 0, "profile", "no profile allowed or denied: deny")
    return NO_PROFILE_DENY


# -- exploring every answer of the unknown points -------------------------------------------------------


class PathLimit(Exception):
    """More unknown points in one decision than the explorer may fork on."""


class Exploration:
    """The outcomes reachable through the unknown points of one decision."""

    __slots__ = ("outcomes", "first", "mattered")

    def __init__(self, outcomes: int, first: Decision, mattered: Point | None) -> None:
        self.outcomes = outcomes  # bit set: 1 allow, 2 deny
        self.first = first  # the decision of the path on which no unknown criterion matched
        self.mattered = mattered  # the first unknown point whose answer changes the outcome

    @property
    def definite(self) -> bool:
        return self.outcomes != 3


class Explorer:
    """Walks a program as `execute` does, but forks at each unknown point and continues each branch from
    that point, so shared prefixes are evaluated once. At most `limit` forks."""

    def __init__(self, program: Program, ctx: FlowContext, limit: int) -> None:
        self.program = program
        self.ctx = ctx
        self.limit = limit
        self.forks = 0
        self.first_point: Point | None = None

    def explore(self, resume: tuple[int, int, int] | str | None = None) -> Exploration:
        """From the start, or from where a strict run stopped (see NeedsBranching.resume)."""
        if resume == "profiles":
            return self._profiles(0, 0)
        if isinstance(resume, tuple):
            ti, pi, ri = resume
            if ri < 0:
                return self._tiers(ti, 0, 0, False, ())
            return self._tiers(ti, pi, ri, True, self.program.tiers[ti].policies[: pi + 1])
        failsafe = self.program.failsafe
        if failsafe is not None:
            hit = failsafe.test(self.ctx)
            allowed = FAILSAFE_ALLOW
            if hit is True:
                return self._leaf(allowed)
            if hit is not False:
                return self._fork(hit, Where(policy=FAILSAFE), lambda: self._tiers(0, 0, 0, False, ()),
                                  lambda: self._leaf(allowed))
        return self._tiers(0, 0, 0, False, ())

    @staticmethod
    def _leaf(decision: Decision) -> Exploration:
        return Exploration(decision.bit, decision, None)

    def _fork(self, reason: Reason, where: Where, no, yes) -> Exploration:
        point = Point(reason, where, "")
        if self.first_point is None:
            self.first_point = point
        self.forks += 1
        if self.forks > self.limit:
            raise PathLimit
        if_not = no()
        if_so = yes()
        mattered = point if if_not.outcomes != if_so.outcomes else (if_not.mattered or if_so.mattered)
        return Exploration(if_not.outcomes | if_so.outcomes, if_not.first, mattered)

    def _tiers(self, ti: int, pi: int, ri: int, entered: bool, applied: tuple[PolicyStep, ...]) -> Exploration:
        ctx = self.ctx
        tiers = self.program.tiers
        while ti < len(tiers):
            tier_step = tiers[ti]
            tier = tier_step.tier.name
            policies = tier_step.policies
            while pi < len(policies):
                step = policies[pi]
                if not entered:
                    if step.applies is not True:
                        where = Where(tier, step.name, step.kind, None, step.staged)
                        return self._fork(
                            step.applies, where,
                            lambda ti=ti, pi=pi, applied=applied: self._tiers(ti, pi + 1, 0, False, applied),
                            lambda ti=ti, pi=pi, applied=applied, step=step: self._tiers(ti, pi, 0, True, applied + (step,)),
                        )
                    applied = applied + (step,)
                    entered = True
                rules = step.rules.for_flow(ctx)
                while ri < len(rules):
                    compiled = rules[ri]
                    found = compiled.match(ctx)
                    if found is False or compiled.action is Action.LOG:
                        ri += 1  # a Log rule continues whether or not it matched
                        continue
                    if found is not True:
                        where = Where(tier, step.name, step.kind, compiled.rule.index, step.staged)
                        return self._fork(
                            found, where,
                            lambda ti=ti, pi=pi, ri=ri, applied=applied: self._tiers(ti, pi, ri + 1, True, applied),
                            lambda ti=ti, step=step, compiled=compiled: self._act(ti, step, compiled),
                        )
                    return self._act(ti, step, compiled)
                pi += 1
                ri = 0
                entered = False
            if applied and tier_step.default_action is not Action.PASS:
                if tier_step.certain:  # every policy applied: the precomputed end of tier
                    return self._leaf(tier_step.end_of_tier)
                trigger = next((p for p in applied if p.staged), applied[0])
                return self._leaf(Decision(Outcome.DENY, Where(tier, trigger.name, trigger.kind, -1, trigger.staged)))
            ti += 1
            pi = 0
            applied = ()
        return self._profiles(0, 0)

    def _act(self, ti: int, step: PolicyStep, compiled: ResidualRule) -> Exploration:
        if compiled.action is Action.PASS:
            return self._tiers(ti + 1, 0, 0, False, ())
        return self._leaf(compiled.decision)

    def _profiles(self, k: int, ri: int) -> Exploration:
        profiles = self.program.profiles
        if profiles is None:
            where = Where(PROFILE_TIER, None, "pro")
            return self._fork(Reason.HOST_ENDPOINT_UNKNOWN, where, lambda: self._leaf(Decision(Outcome.DENY, where)),
                              lambda: self._leaf(Decision(Outcome.ALLOW, where)))
        while k < len(profiles):
            profile_step = profiles[k]
            if isinstance(profile_step, Reason):
                where = Where(PROFILE_TIER, None, "pro")
                return self._fork(profile_step, where, lambda k=k: self._profiles(k + 1, 0),
                                  lambda where=where: self._leaf(Decision(Outcome.ALLOW, where)))
            rules = profile_step.rules.for_flow(self.ctx)
            while ri < len(rules):
                compiled = rules[ri]
                found = compiled.match(self.ctx)
                if found is False or compiled.action is Action.LOG:
                    ri += 1
                    continue
                if found is not True:
                    where = Where(PROFILE_TIER, profile_step.profile.name, "pro", compiled.rule.index)
                    return self._fork(found, where, lambda k=k, ri=ri: self._profiles(k, ri + 1),
                                      lambda k=k, compiled=compiled: self._profile_act(k, compiled))
                return self._profile_act(k, compiled)
            k += 1
            ri = 0
        return self._leaf(NO_PROFILE_DENY)

    def _profile_act(self, k: int, compiled: ResidualRule) -> Exploration:
        if compiled.action is Action.PASS:
            return self._profiles(k + 1, 0)  # the dataplane leaves this profile and tries the next one
        return self._leaf(compiled.decision)


# -- compiling programs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A policy that may govern subjects of one kind (workload or host) in one direction, before selectors."""

    policy: Policy
    position: int  # place in the tier's evaluation order
    tier: str
    stage: str  # "", "untracked" (doNotTrack) or "preDNAT"
    name: str
    kind: str
    staged: bool
    selector: str  # canonical text of the policy selector: equal selectors share one slot


@dataclass
class Plan:
    selectors: tuple[Selector, ...]
    index: SelectorIndex  # which slots a subject's labels leave possible
    # per direction, per tier: the candidates grouped by policy selector slot (each group in tier order)
    per_direction: dict[Direction, list[tuple[Tier, list[tuple[int, list[Candidate]]]]]]


def _position(candidate: Candidate) -> int:
    return candidate.position


def _chosen_position(chosen: tuple[Candidate, Tri]) -> int:
    return chosen[0].position


# Per direction, per tier (Compiler.tiers order): candidates in evaluation order.
_Candidates = dict[Direction, list[list[Candidate]]]


class Compiler:
    """Builds Programs for subjects, sharing compiled rules (and their match caches) across subjects."""

    def __init__(
        self,
        policy_set: PolicySet,
        failsafe_inbound: tuple[FailsafePort, ...],
        failsafe_outbound: tuple[FailsafePort, ...],
        cached: bool = True,
        share: Compiler | None = None,
    ) -> None:
        self.policy_set = policy_set
        self.cached = cached
        # Compiled rules depend on the policy (or profile) alone, and matchers on the inventory: compilers of sets
        # over one inventory share them, with their match caches.
        self._rules: dict[tuple, RuleList] = share._rules if share is not None else {}
        self.pool = share.pool if share is not None else MatcherPool(cached, network_sets=bool(policy_set.inventory.network_sets))
        self._failsafe_in = FailsafeMatch(failsafe_inbound, inbound=True)
        self._failsafe_out = FailsafeMatch(failsafe_outbound, inbound=False)
        tiers = list(policy_set.tiers)
        known = {t.name for t in tiers}
        # a tier named by policies but missing from the set still applies, after every valid tier, as Deny
        tiers += [Tier(name, None, Action.DENY, defined=False) for name in policy_set.policies if name not in known]
        self.tiers = tuple(tiers)
        self._enforced_only = policy_set.name is SetName.CURRENT
        # Host endpoints face global policies only; a workload faces the global ones and those of its namespace.
        self._global: dict[bool, _Candidates] = {True: self._empty(), False: self._empty()}
        self._local: dict[str, _Candidates] = {}
        self._sort_candidates()
        self._plans: dict[tuple[bool, str | None], Plan] = {}
        self._applies: dict[tuple, list[Tri]] = {}

    def _empty(self) -> _Candidates:
        return {d: [[] for _ in self.tiers] for d in Direction}

    def _sort_candidates(self) -> None:
        for ti, tier in enumerate(self.tiers):
            for position, p in enumerate(self.policy_set.tier_policies(tier.name)):
                if (self._enforced_only and p.staged) or p.staged_action is StagedAction.DELETE:
                    continue
                stage = "untracked" if p.do_not_track else "preDNAT" if p.pre_dnat else ""
                candidate = Candidate(p, position, tier.name, stage, p.display_name, p.kind.short, p.staged,
                                      str(p.applies_to))
                for direction in p.types:
                    # only global policies select host endpoints; untracked / preDNAT ones only those
                    if p.kind.is_global:
                        self._global[True][direction][ti].append(candidate)
                    if not (p.do_not_track or p.pre_dnat):
                        if p.namespace is None:
                            self._global[False][direction][ti].append(candidate)
                        else:
                            # a namespaced policy's selector always carries its namespace (§2.4)
                            local = self._local.get(p.namespace)
                            if local is None:
                                local = self._local[p.namespace] = self._empty()
                            local[direction][ti].append(candidate)

    def rules(self, owner: Policy | Profile, direction: Direction, tier: str) -> RuleList:
        """A policy's or profile's rules for one direction, compiled once and shared by every subject.

        Profiles are keyed by name and rule list, so the `kns.<ns>` profile generated for each pod of a
        namespace is compiled once."""
        rules = owner.rules(direction)
        ingress = direction is Direction.INGRESS
        key = (id(owner), ingress) if isinstance(owner, Policy) else (owner.name, id(rules), ingress)
        found = self._rules.get(key)
        if found is None:
            if isinstance(owner, Policy):
                name, kind, staged = owner.display_name, owner.kind.short, owner.staged
            else:
                name, kind, staged = owner.name, "pro", False
            compiled = tuple(
                CompiledRule(r, self.pool, Decision(
                    Outcome.ALLOW if r.action is Action.ALLOW else Outcome.DENY, Where(tier, name, kind, r.index, staged)
                ) if r.action in (Action.ALLOW, Action.DENY) else None)
                for r in rules
            )
            found = self._rules[key] = RuleList(owner, compiled)
        return found

    def plan(self, hep: bool, namespace: str | None) -> Plan:
        """The policies that may govern a subject of this kind and namespace, per direction and tier, before
        selectors; their policy selectors deduplicated so each is matched once per subject. Namespaces without
        policies of their own share one plan."""
        local = None if hep else self._local.get(namespace or "")
        key = (hep, namespace if local is not None else None)
        found = self._plans.get(key)
        if found is None:
            slots: dict[str, int] = {}
            selectors: list[Selector] = []
            per_direction: dict[Direction, list[tuple[Tier, list[tuple[int, list[Candidate]]]]]] = {}
            for direction in Direction:
                per_tier = []
                shared = self._global[hep][direction]
                own = local[direction] if local is not None else None
                for ti, tier in enumerate(self.tiers):
                    groups: dict[int, list[Candidate]] = {}
                    members = shared[ti] if own is None else sorted((*shared[ti], *own[ti]), key=_position)
                    for candidate in members:
                        slot = slots.get(candidate.selector)
                        if slot is None:
                            slot = slots[candidate.selector] = len(selectors)
                            selectors.append(candidate.policy.applies_to)
                        groups.setdefault(slot, []).append(candidate)
                    per_tier.append((tier, list(groups.items())))
                per_direction[direction] = per_tier
            found = Plan(tuple(selectors), SelectorIndex(selectors), per_direction)
            self._plans[key] = found
        return found

    def applicability(self, subject: EndpointFacts, plan: Plan) -> list[Tri]:
        """Per selector slot of the plan: whether it selects the subject. Remembered per plan and what the
        selectors read (effective labels and which of them are unknown), which every pod of a workload shares."""
        key = (
            id(plan), subject.owned, subject.labels, subject.labels_known, subject.namespace_labels_known,
            subject.service_account_known, subject.service_account_labels_known, subject.uncertain, subject.derived,
        )  # fmt: skip
        found = self._applies.get(key) if self.cached else None
        if found is None:
            found = [False] * len(plan.selectors)
            selectors = plan.selectors
            for slot in plan.index.candidates(subject):
                found[slot] = selector_value(selectors[slot], subject)
            if self.cached:
                if len(self._applies) >= _CACHE_LIMIT:
                    self._applies.clear()
                self._applies[key] = found
        return found

    def program(self, subject: EndpointFacts, direction: Direction) -> Program:
        hep = subject.type is EndpointType.HEP
        plan = self.plan(hep, subject.namespace)
        applicability = self.applicability(subject, plan)
        per_tier = plan.per_direction[direction]
        stages: list[tuple[str, bool]] = [("", True)]
        if hep:
            stages = [("untracked", False), ("preDNAT", False), ("", True)]
        tier_steps: list[TierStep] = []
        skipped: list[str] = []
        for stage, normal in stages:
            for tier, groups in per_tier:
                chosen: list[tuple[Candidate, Tri]] = []
                for slot, members in groups:
                    applies = applicability[slot]
                    if applies is not False:
                        chosen.extend((c, applies) for c in members if c.stage == stage)
                chosen.sort(key=_chosen_position)
                steps = [
                    PolicyStep(c.policy, applies, self.rules(c.policy, direction, c.tier), c.name, c.kind, c.staged)
                    for c, applies in chosen
                ]
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
                p if isinstance(p, Reason) else ProfileStep(p, self.rules(p, direction, PROFILE_TIER))
                for p in subject.profiles
            )
        return Program(direction, subject, failsafe, tuple(tier_steps), tuple(skipped), profiles)
