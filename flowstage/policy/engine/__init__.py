"""The policy evaluation engine: decides a flow exactly as Calico would under one PolicySet, with the tier,
policy and rule that decided, or `unknown` with the missing fact when the log cannot tell.

Semantics (calico-semantics.md §5, §9):

- `decide(traffic, INGRESS)` judges the destination endpoint's ingress policy, `EGRESS` the source's egress
  policy. Only workload (wep) and host (hep) endpoints have policy; another subject gives `unknown` with
  `NOT_A_POLICY_ENDPOINT`. `connection` judges both sides that are weps/heps; deny wins, then unknown.
- Tiers in order; in a tier the policies that select the endpoint and govern the direction, in order; the
  first matching rule decides: Allow and Deny end the direction, Pass goes to the next tier, Log continues.
  A policy without a matching rule gives no verdict; the tier's default action applies only when one of its
  policies applied. After the last tier (or a Pass out of it) the endpoint's profiles decide; a rule-less
  fall-through there is a deny named `__NO_MATCH__` (rule 0), as the dataplane logs it. A Pass inside a
  profile moves to the next profile, as the dataplane does.
- The `current` set ignores staged policies, so a tier holding only staged policies is skipped (no
  end-of-tier deny). `proposed` and `pending` evaluate staged policies as enforced. `stagedAction: Delete`
  objects are never evaluated.
- End of tier: the verdict has rule -1 and names a trigger policy: the first applicable policy of the tier
  that came from a staged object if there is one, else the first applicable policy (Calico's checker names
  the first; in the proposed set the staged trigger is what a user needs to see).
- A definite verdict reached through unknown criteria reports the decider of the path on which every unknown
  criterion did not match. An unknown verdict names the tier / policy / rule of the first unknown criterion
  whose answer changes the outcome, with its reason. At most `max_paths` paths are explored per decision;
  beyond that the verdict is unknown with the reason of the first unknown criterion.
- Host endpoints: failsafe ports accept before any policy (felix's default lists unless given); then the
  untracked (doNotTrack) and preDNAT stages (their tiers end in Pass; Allow or Deny there is final), then the
  normal tiers and the host endpoint's profiles (from the HostEndpoint inventory; none: deny). Only global
  policies select host endpoints. preDNAT policies are judged on the logged (post-DNAT) destination, which
  differs from the one felix sees only when a Service DNAT targets the host itself.
- Forwarded rows (`decide_reported` with `fwd`, `src,fwd`, `dst,fwd`): when the set holds no applyOnForward
  policy, forwarding through a host endpoint is allowed by default (§3.5) and only the workload side (if any)
  decides; otherwise the forward stage is not replayed (which host endpoint forwarded is not logged) and the
  verdict is `unknown` with `FORWARDED_NOT_MODELLED` unless the workload side already denies.

Not modelled: host → local workload traffic skipping the workload's ingress in iptables mode (the log does not
say whether the pod is local), `DefaultEndpointToHostAction` for workload → own host traffic, VXLAN / IP-in-IP
drops from workloads, admin-down endpoints, and `http` rule criteria (felix's L3/L4 dataplane ignores them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from flowstage.errors import FlowstageError
from flowstage.policy.engine.endpoints import EndpointFacts, EndpointResolver
from flowstage.policy.engine.evaluate import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    Compiler,
    Explorer,
    FailsafePort,
    NeedsBranching,
    PathLimit,
    Program,
    Run,
    execute,
    execute_strict,
    parse_failsafe_ports,
)
from flowstage.policy.engine.explain import format_trace, trace_table, verdict_summary
from flowstage.policy.engine.match import FlowContext
from flowstage.policy.model import Direction, PolicySet, SetName
from flowstage.policy.traffic import EndpointType, Outcome, Reason, TraceStep, Traffic, Verdict

__all__ = [
    "DEFAULT_FAILSAFE_INBOUND",
    "DEFAULT_FAILSAFE_OUTBOUND",
    "REPORTERS",
    "Engine",
    "FailsafePort",
    "UnknownReporter",
    "format_trace",
    "parse_failsafe_ports",
    "trace_table",
    "verdict_summary",
]

_POLICY_ENDPOINTS = (EndpointType.WEP, EndpointType.HEP)
REPORTERS = ("src", "dst", "fwd", "src,fwd", "dst,fwd")
_PROGRAM_LIMIT = 65_536  # programs remembered per direction before the memo starts over (bounded memory)


class UnknownReporter(FlowstageError, ValueError):
    """A row's reporter is not one Calico writes."""


class Engine:
    """Decides flows under one PolicySet. Cheap to call repeatedly: subjects, programs and matches are cached.

    `failsafe_inbound` / `failsafe_outbound`: felix's FailsafeInboundHostPorts / FailsafeOutboundHostPorts
    (defaults from calico-semantics §7; `()` disables them). `cache=False` recomputes everything per call (the
    baseline the benchmark compares with). `max_paths`: how many paths through unknown criteria one decision
    may explore before it is `unknown`. `share_with`: an engine for another set over the same inventory whose
    endpoint facts and compiled rules (with their match caches) this one reuses: the sets one replay judges
    under repeat most policies and every endpoint.
    """

    def __init__(
        self,
        policy_set: PolicySet,
        *,
        failsafe_inbound: Iterable[FailsafePort] = DEFAULT_FAILSAFE_INBOUND,
        failsafe_outbound: Iterable[FailsafePort] = DEFAULT_FAILSAFE_OUTBOUND,
        cache: bool = True,
        max_paths: int = 64,
        share_with: Engine | None = None,
    ) -> None:
        self.policy_set = policy_set
        self.cache = cache
        self.max_paths = max_paths
        self._failsafe = (tuple(failsafe_inbound), tuple(failsafe_outbound))
        shared = share_with if share_with is not None and share_with.can_share(policy_set, self._failsafe, cache) else None
        self.resolver = shared.resolver if shared is not None else EndpointResolver(policy_set.inventory)
        self.compiler = Compiler(policy_set, *self._failsafe, cached=cache, share=shared.compiler if shared else None)
        self._ingress_programs: dict[int, Program] = {}
        self._egress_programs: dict[int, Program] = {}
        self._shared_programs: dict[tuple, Program] = {}
        enforced_only = policy_set.name is SetName.CURRENT
        self.forwarding_policies = tuple(
            p for p in policy_set.all_policies() if p.apply_on_forward and not (enforced_only and p.staged)
        )

    def can_share(self, policy_set: PolicySet, failsafe: tuple[tuple[FailsafePort, ...], ...], cache: bool) -> bool:
        """Whether an engine for `policy_set` with these settings may reuse this engine's facts and rules."""
        return self.cache and cache and self._failsafe == failsafe and policy_set.inventory is self.policy_set.inventory

    # -- the three questions ---------------------------------------------------------------------------

    def decide(self, traffic: Traffic, direction: Direction, explain: bool = False) -> Verdict:
        """The verdict of one direction: INGRESS judges `traffic.destination`, EGRESS `traffic.source`."""
        source, destination = traffic.source, traffic.destination
        if self.cache:
            src, dst = self.resolver.resolve(source), self.resolver.resolve(destination)
        else:
            fresh = EndpointResolver(self.policy_set.inventory)
            src, dst = fresh.resolve(source), fresh.resolve(destination)
        subject = dst if direction is Direction.INGRESS else src
        if subject.type is not EndpointType.WEP and subject.type is not EndpointType.HEP:
            return self._not_a_policy_endpoint(subject, direction, explain)
        family = traffic.ip_version
        if family is None:
            family = _family(traffic.protocol, src, dst)
        ctx = FlowContext(
            traffic.protocol, family, src, dst, source.port, destination.port, traffic.icmp_type, traffic.icmp_code,
            self.resolver,
        )
        if explain:
            return self._explore(self.compiler.program(subject, direction), ctx, explain=True)
        program = self._program(subject, direction)
        try:
            decision = execute_strict(program, ctx)
        except NeedsBranching as stopped:
            return self._explore(program, ctx, explain=False, resume=stopped.resume)
        return decision.verdict(direction)

    def connection(self, traffic: Traffic, explain: bool = False) -> Verdict:
        """A whole connection: egress of the source and ingress of the destination, for each side that is a
        wep or hep. Deny wins, then unknown; an allowed connection returns the last verdict (ingress)."""
        verdicts = []
        if traffic.source.type in _POLICY_ENDPOINTS:
            verdicts.append(self.decide(traffic, Direction.EGRESS, explain))
        if traffic.destination.type in _POLICY_ENDPOINTS:
            verdicts.append(self.decide(traffic, Direction.INGRESS, explain))
        if not verdicts:
            return Verdict(Outcome.UNKNOWN, None, reason=Reason.NOT_A_POLICY_ENDPOINT)
        return _combine(verdicts, explain)

    def decide_reported(self, traffic: Traffic, reporter: str, explain: bool = False) -> Verdict:
        """The verdict of a logged row: `dst` → ingress of the destination, `src` → egress of the source;
        `fwd`, `src,fwd`, `dst,fwd` add the forward stage (see the module docstring)."""
        if reporter == "dst":
            return self.decide(traffic, Direction.INGRESS, explain)
        if reporter == "src":
            return self.decide(traffic, Direction.EGRESS, explain)
        parts = [p.strip().lower() for p in reporter.split(",")]
        joined = ",".join(parts)
        if joined not in REPORTERS:
            raise UnknownReporter(
                f"reporter {reporter!r} is not one Calico writes; expected one of {', '.join(REPORTERS)}"
            )
        verdicts = []
        if "src" in parts:
            verdicts.append(self.decide(traffic, Direction.EGRESS, explain))
        if "dst" in parts:
            verdicts.append(self.decide(traffic, Direction.INGRESS, explain))
        if "fwd" in parts:
            verdicts.append(self._forward(explain))
        return verdicts[0] if len(verdicts) == 1 else _combine(verdicts, explain)

    # -- internals ---------------------------------------------------------------------------------------

    def _program(self, subject: EndpointFacts, direction: Direction) -> Program:
        if not self.cache:
            return Compiler(self.policy_set, *self._failsafe, cached=False).program(subject, direction)
        programs = self._ingress_programs if direction is Direction.INGRESS else self._egress_programs
        program = programs.get(subject.id)
        if program is None:
            # subjects that the same policies select, with the same profiles, face the same program
            hep = subject.type is EndpointType.HEP
            applicability = self.compiler.applicability(subject, self.compiler.plan(hep, subject.namespace))
            profiles = None if subject.profiles is None else tuple(
                p if isinstance(p, Reason) else (p.name, id(p.ingress), id(p.egress)) for p in subject.profiles
            )
            key = (direction is Direction.INGRESS, hep, subject.namespace, tuple(applicability), profiles)
            program = self._shared_programs.get(key)
            if program is None:
                if len(self._shared_programs) >= _PROGRAM_LIMIT:
                    self._shared_programs.clear()
                program = self._shared_programs[key] = self.compiler.program(subject, direction)
            if len(programs) >= _PROGRAM_LIMIT:
                programs.clear()
            programs[subject.id] = program
        return program

    def _explore(
        self, program: Program, ctx: FlowContext, explain: bool, resume: tuple[int, int, int] | str | None = None
    ) -> Verdict:
        """Every answer of every unknown point; definite if all paths agree."""
        explorer = Explorer(program, ctx, self.max_paths - 1)
        limited = False
        try:
            found = explorer.explore(resume)
            definite, first, mattered = found.definite, found.first, found.mattered
        except PathLimit:
            limited = True
            definite, first, mattered = False, None, explorer.first_point
        if definite:
            verdict = first.verdict(program.direction)
        else:
            where = mattered.where
            verdict = Verdict(
                Outcome.UNKNOWN, program.direction, where.tier, where.policy, where.kind, where.rule,
                where.staged, mattered.reason,
            )
        if not explain:
            return verdict
        trace: list[TraceStep] = []
        execute(program, ctx, Run((), trace=trace))
        trace.append(_closing_step(verdict, explorer.forks, limited))
        return dataclasses.replace(verdict, trace=tuple(trace))

    def _forward(self, explain: bool) -> Verdict:
        if not self.forwarding_policies:
            trace = (
                TraceStep("", None, None, "forward", "no applyOnForward policy in this set: traffic forwarded "
                          "through a host endpoint is allowed by default"),
            )
            return Verdict(Outcome.ALLOW, None, trace=trace if explain else ())
        names = ", ".join(p.flow_log_id for p in self.forwarding_policies[:5])
        trace = (
            TraceStep("", None, None, "forward", f"applyOnForward policies ({names}) may judge the forwarding host "
                      "endpoint, which the row does not name: not replayed"),
        )
        return Verdict(Outcome.UNKNOWN, None, reason=Reason.FORWARDED_NOT_MODELLED, trace=trace if explain else ())

    @staticmethod
    def _not_a_policy_endpoint(subject: EndpointFacts, direction: Direction, explain: bool) -> Verdict:
        trace = (TraceStep("", None, None, "skipped", f"{subject.display} has no {direction.value.lower()} policy: "
                           "only workload and host endpoints do"),)
        return Verdict(Outcome.UNKNOWN, direction, reason=Reason.NOT_A_POLICY_ENDPOINT, trace=trace if explain else ())


def _family(protocol: int | None, src: EndpointFacts, dst: EndpointFacts) -> int | None:
    """The IP family when the addresses or the protocol tell it (the row gave none)."""
    families = src.addresses.families & dst.addresses.families
    if len(families) == 1:
        return next(iter(families))
    if protocol == 1:
        return 4
    if protocol == 58:
        return 6
    return None


def _combine(verdicts: list[Verdict], explain: bool) -> Verdict:
    chosen = next((v for v in verdicts if v.outcome is Outcome.DENY), None)
    chosen = chosen or next((v for v in verdicts if v.outcome is Outcome.UNKNOWN), None) or verdicts[-1]
    if not explain:
        return chosen
    trace = tuple(dataclasses.replace(step, direction=v.direction) for v in verdicts for step in v.trace)
    return dataclasses.replace(chosen, trace=trace)


def _closing_step(verdict: Verdict, forks: int, limited: bool) -> TraceStep:
    reason = verdict.reason.value if verdict.reason else ""
    if not forks:
        detail = f"{verdict.outcome.value}: {verdict_summary(verdict)}"
    elif limited:
        detail = f"unknown ({reason}): more than {forks - 1} unknown criteria to explore; stopped exploring"
    elif verdict.outcome is Outcome.UNKNOWN:
        detail = (f"unknown ({reason}): the outcome depends on {verdict.policy or 'a fact'} rule {verdict.rule}; "
                  f"{forks + 1} paths explored")
    else:
        detail = (f"{verdict.outcome.value}: every one of {forks + 1} paths through the unknown criteria gives the "
                  "same verdict; the decider shown assumes no unknown criterion matched")
    return TraceStep(verdict.tier or "", verdict.policy, verdict.rule, "verdict", detail)
