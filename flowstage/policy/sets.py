"""Policy sets built from one bundle: current (enforced now), proposed (after promotion), pending (Calico's view).

Also owns tier ordering, what promotion does to each staged object, and which profiles an endpoint has.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from flowstage.policy.convert import DEFAULT_TIER
from flowstage.policy.engine.endpoints import DEFAULT_ALLOW
from flowstage.policy.engine.endpoints import namespace_profile as generated_namespace_profile
from flowstage.policy.engine.endpoints import service_account_profile as generated_service_account_profile
from flowstage.policy.loader import PolicyBundle
from flowstage.policy.model import (
    DEFAULT_TIER_ORDER,
    Action,
    HostEndpoint,
    Inventory,
    Namespace,
    Pod,
    Policy,
    PolicyKind,
    PolicySet,
    Profile,
    SetName,
    StagedAction,
    Tier,
)

BUILTIN_DEFAULT_TIER = Tier(DEFAULT_TIER, DEFAULT_TIER_ORDER, Action.DENY)

Identity = tuple[PolicyKind, str | None, str]


class PromotionAction(enum.Enum):
    REPLACES = "replaces"  # a staged Set takes the place of the enforced object with the same identity
    ADDS = "adds"  # a staged Set with no enforced counterpart becomes a new enforced object
    DELETES = "deletes"  # a staged Delete removes its enforced counterpart
    DELETE_MISSING = (
        "delete of a missing object"  # a staged Delete whose enforced counterpart is not in the input
    )
    NOT_PROMOTED = "not promoted"  # Learn and Ignore objects stay staged


@dataclass(frozen=True)
class PromotionStep:
    """What promoting every staged object does to one of them."""

    staged: Policy
    action: PromotionAction
    enforced: Policy | None = None  # the enforced object replaced or deleted
    promoted: Policy | None = None  # what the staged object becomes (Set only)

    @property
    def target(self) -> Identity:
        """The enforced object's identity (kind, namespace, name) that this step adds, replaces or deletes."""
        return self.staged.identity

    def __str__(self) -> str:
        staged = f"{self.staged.kind.value} {self.staged.display_name}"
        target = f"{self.staged.kind.enforced.value} {self.staged.display_name}"
        if self.action is PromotionAction.REPLACES:
            return f"{staged} replaces {target}"
        if self.action is PromotionAction.ADDS:
            return f"{staged} adds {target}"
        if self.action is PromotionAction.DELETES:
            return f"{staged} deletes {target}"
        if self.action is PromotionAction.DELETE_MISSING:
            return f"{staged} deletes {target}, which is not among the inputs"
        assert self.staged.staged_action is not None
        return f"{staged} is not promoted (stagedAction {self.staged.staged_action.value})"


@dataclass(frozen=True)
class PolicySets:
    current: PolicySet
    proposed: PolicySet
    pending: PolicySet
    promotion: tuple[PromotionStep, ...]

    def __getitem__(self, name: SetName) -> PolicySet:
        return {
            SetName.CURRENT: self.current,
            SetName.PROPOSED: self.proposed,
            SetName.PENDING: self.pending,
        }[name]


def ordered_tiers(defined: Iterable[Tier], policies: Iterable[Policy]) -> tuple[Tier, ...]:
    """Tiers in felix's order: the built-in `default` tier unless redefined, and every tier a policy names
    but no Tier object defines (evaluated after all defined tiers, with a Deny default)."""
    tiers = {t.name: t for t in defined}
    tiers.setdefault(DEFAULT_TIER, BUILTIN_DEFAULT_TIER)
    for policy in policies:
        if policy.tier not in tiers:
            tiers[policy.tier] = Tier(policy.tier, None, Action.DENY, defined=False)
    return tuple(sorted(tiers.values(), key=lambda t: t.sort_key))


def policy_set(
    name: SetName, tiers: Iterable[Tier], policies: Iterable[Policy], inventory: Inventory
) -> PolicySet:
    policies = list(policies)
    ordered = ordered_tiers(tiers, policies)
    by_tier: dict[str, list[Policy]] = {t.name: [] for t in ordered}
    for policy in policies:
        by_tier[policy.tier].append(policy)
    return PolicySet(
        name=name,
        tiers=ordered,
        policies={
            tier: tuple(sorted(members, key=lambda p: p.sort_key)) for tier, members in by_tier.items()
        },
        inventory=inventory,
    )


def build_sets(
    bundle: PolicyBundle,
    namespaces: Iterable[Namespace] | Mapping[str, Namespace] | None = None,
    pods: Iterable[Pod] | None = None,
) -> PolicySets:
    """Current, proposed and pending sets plus the promotion report, from one bundle.

    `namespaces` / `pods` (e.g. from `--namespaces FILE`) replace the bundle's own inventory of that kind.
    """
    inventory = bundle.inventory()
    if namespaces is not None:
        values = namespaces.values() if isinstance(namespaces, Mapping) else namespaces
        inventory = replace(inventory, namespaces={ns.name: ns for ns in values})
    if pods is not None:
        inventory = replace(inventory, pods=tuple(pods))

    enforced = [p for p in bundle.policies if not p.staged]
    staged = [p for p in bundle.policies if p.staged]
    current = policy_set(SetName.CURRENT, bundle.tiers, enforced, inventory)
    pending = policy_set(
        SetName.PENDING,
        bundle.tiers,
        enforced + [p for p in staged if p.staged_action is not StagedAction.DELETE],
        inventory,
    )

    proposed_by_identity: dict[Identity, Policy] = {p.identity: p for p in enforced}
    steps: list[PromotionStep] = []
    for policy in staged:
        existing = proposed_by_identity.get(policy.identity)
        if policy.staged_action is StagedAction.DELETE:
            if existing is not None:
                del proposed_by_identity[policy.identity]
                steps.append(PromotionStep(policy, PromotionAction.DELETES, enforced=existing))
            else:
                steps.append(PromotionStep(policy, PromotionAction.DELETE_MISSING))
        elif policy.staged_action is StagedAction.SET:
            promoted = bundle.promoted_form(policy)
            proposed_by_identity[policy.identity] = promoted
            action = PromotionAction.REPLACES if existing is not None else PromotionAction.ADDS
            steps.append(PromotionStep(policy, action, enforced=existing, promoted=promoted))
        else:
            steps.append(PromotionStep(policy, PromotionAction.NOT_PROMOTED))
    proposed = policy_set(SetName.PROPOSED, bundle.tiers, proposed_by_identity.values(), inventory)
    return PolicySets(current=current, proposed=proposed, pending=pending, promotion=tuple(steps))


# ---------------------------------------------------------------------------------------------------------
# Profiles (calico-semantics §2.1, §5.4)
# ---------------------------------------------------------------------------------------------------------


def profiles_for(endpoint_namespace: str, service_account: str | None, inventory: Inventory) -> list[Profile]:
    """A pod's profiles in evaluation order: `kns.<ns>`, then `ksa.<ns>.<sa>` when it has a service account.

    Explicit Profile objects in the inventory replace Kubernetes' built-ins of the same name; the built-ins
    are the engine's (`kns.` allows both ways and carries the namespace's labels as `pcns.*`).
    """
    namespaces = inventory.namespaces
    known = namespaces.get(endpoint_namespace) if namespaces is not None else None
    profiles = [
        inventory.profiles.get(f"kns.{endpoint_namespace}")
        or generated_namespace_profile(endpoint_namespace, known.labels if known is not None else None)
    ]
    if service_account:
        profiles.append(
            inventory.profiles.get(f"ksa.{endpoint_namespace}.{service_account}")
            or generated_service_account_profile(endpoint_namespace, service_account)
        )
    return profiles


def host_endpoint_profiles(endpoint: HostEndpoint, inventory: Inventory) -> list[Profile]:
    """A host endpoint's `spec.profiles` in order; a name with no Profile object contributes nothing,
    except kube-controllers' `projectcalico-default-allow`, which allows everything."""
    found: list[Profile] = []
    for name in endpoint.profiles:
        if name in inventory.profiles:
            found.append(inventory.profiles[name])
        elif name == DEFAULT_ALLOW.name:
            found.append(DEFAULT_ALLOW)
    return found
