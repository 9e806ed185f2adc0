"""Safety nets: broad allow-everything policies (like the lesson's `zzz-final-allow-everything`) and the policy
set with them removed, so a replay can say which flows only a net keeps open.

A net selects every endpoint in its scope and has, in a direction it governs, an Allow rule with no criteria.
"""

from __future__ import annotations

from flowstage.policy.model import Action, Policy, PolicySet, Rule


def is_allow_everything(rule: Rule) -> bool:
    """An Allow rule that matches every packet: no protocol, ICMP, IP version, HTTP, source or destination."""
    return (
        rule.action is Action.ALLOW
        and rule.protocol is None
        and rule.not_protocol is None
        and rule.ip_version is None
        and rule.icmp is None
        and rule.not_icmp is None
        and rule.http is None
        and rule.source.is_empty
        and rule.destination.is_empty
    )


def is_safety_net(policy: Policy) -> bool:
    if not policy.selector.is_all:
        return False
    return any(is_allow_everything(rule) for d in policy.types for rule in policy.rules(d))


def net_ids(policy_set: PolicySet) -> frozenset[tuple[str, str]]:
    """(short kind, display name) of every safety net in the set, as verdicts name their deciding policy."""
    return frozenset((p.kind.short, p.display_name) for p in policy_set.all_policies() if is_safety_net(p))


def without_nets(policy_set: PolicySet) -> PolicySet:
    """The set with every safety net removed; tiers stay (a tier left empty applies to nothing and is skipped)."""
    policies = {
        tier: tuple(p for p in ps if not is_safety_net(p)) for tier, ps in policy_set.policies.items()
    }
    return PolicySet(name=policy_set.name, tiers=policy_set.tiers, policies=policies, inventory=policy_set.inventory)
