"""Policies listed tier by tier in the order Calico evaluates them, as plain rows: what `flowstage policies show`
prints and what a notebook turns into a DataFrame.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from flowstage.errors import UsageError
from flowstage.policy.loader import PolicyBundle
from flowstage.policy.model import Direction, Policy, SetName, Tier
from flowstage.policy.sets import build_sets, ordered_tiers

ALL = "all"
SET_CHOICES: tuple[str, ...] = (ALL, *(s.value for s in SetName))


def evaluation_order(bundle: PolicyBundle, policy_set: str = ALL, effective: bool = False) -> list[dict[str, Any]]:
    """One row per policy, tiers in order and each tier's policies in the order Calico evaluates them.

    `policy_set`: `all` (every policy as loaded, staged included) or `current`, `proposed`, `pending` (that set).
    `effective`: the selector after Calico's namespace scoping instead of the selector as written.
    """
    if policy_set not in SET_CHOICES:
        raise UsageError(f"--set {policy_set!r}: choose one of {', '.join(SET_CHOICES)}")
    if policy_set == ALL:
        tiers = ordered_tiers(bundle.tiers, bundle.policies)
        grouped: dict[str, list[Policy]] = collections.defaultdict(list)
        for policy in sorted(bundle.policies, key=lambda p: p.sort_key):
            grouped[policy.tier].append(policy)
    else:
        chosen = build_sets(bundle)[SetName(policy_set)]
        tiers = chosen.tiers
        grouped = {name: list(members) for name, members in chosen.policies.items()}
    return _rows(tiers, grouped, effective)


def _rows(tiers: Iterable[Tier], policies: dict[str, list[Policy]], effective: bool) -> list[dict[str, Any]]:
    rows = []
    for tier in tiers:
        for policy in policies.get(tier.name, []):
            rows.append(
                {
                    "tier": tier.name,
                    "tier_order": tier.order,
                    "tier_default_action": tier.default_action.value,
                    "tier_defined": tier.defined,
                    "order": policy.order,
                    "name": policy.display_name,
                    "kind": policy.kind.value,
                    "types": [d.value for d in Direction if d in policy.types],
                    "selector": str(policy.applies_to if effective else policy.selector),
                    "staged": policy.staged_action.value if policy.staged_action else "",
                    "file": policy.origin.file if policy.origin else None,
                    "document": policy.origin.document if policy.origin else None,
                }
            )
    return rows
