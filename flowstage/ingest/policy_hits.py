"""Decoding policy traces into `schema.POLICY_HIT` rows: both policy-string grammars and Goldmane PolicyHit objects.

Strings are decided one by one (a store can hold both grammars); a trace decodes to hits sorted by position.
"""

from __future__ import annotations

import re
from typing import Any

# Grammar (B), Calico OSS 3.32+ / Enterprise 3.23+: `<i>|<tier>|<kind>:[<ns>/]<name>|<action>|<rule>`.
_KIND_PREFIX = re.compile(r"^(gnp|np|snp|sgnp|sknp|knp|kcnp|pro|eot):(.*)$", re.DOTALL)
STAGED_KINDS = frozenset({"snp", "sgnp", "sknp"})

# Goldmane PolicyKind enum (`goldmane/proto/api.proto`), by number and by name, to the short kind.
_GOLDMANE_KINDS = {
    1: "np", "CalicoNetworkPolicy": "np",
    2: "gnp", "GlobalNetworkPolicy": "gnp",
    3: "snp", "StagedNetworkPolicy": "snp",
    4: "sgnp", "StagedGlobalNetworkPolicy": "sgnp",
    5: "sknp", "StagedKubernetesNetworkPolicy": "sknp",
    6: "knp", "NetworkPolicy": "knp",
    7: "anp", "AdminNetworkPolicy": "anp",
    8: "banp", "BaselineAdminNetworkPolicy": "banp",
    9: "pro", "Profile": "pro",
    10: "eot", "EndOfTier": "eot",
    11: "kcnp", "ClusterNetworkPolicy": "kcnp",
}
_GOLDMANE_ACTIONS = {1: "allow", 2: "deny", 3: "pass", "Allow": "allow", "Deny": "deny", "Pass": "pass"}

# Trace keys as each source spells them → the canonical column.
TRACE_KEYS = {
    "all_policies": "all_policies",
    "enforced_policies": "enforced_policies",
    "enforcedPolicies": "enforced_policies",
    "enforced": "enforced_policies",
    "pending_policies": "pending_policies",
    "pendingPolicies": "pending_policies",
    "pending": "pending_policies",
    "transit_policies": "transit_policies",
    "transitPolicies": "transit_policies",
}
TRACE_COLUMNS = ("enforced_policies", "pending_policies", "all_policies", "transit_policies")


class TraceError(ValueError):
    """A `policies` value whose shape no format uses (e.g. a number where a list of hits belongs)."""


INT32 = range(-(2**31), 2**31)  # policy and rule indexes are stored as int32


def _int_or_none(text: str) -> int | None:
    try:
        number = int(text)
    except ValueError:
        return None
    if number not in INT32:
        raise TraceError(f"index {text} is out of range")
    return number


def _hit(position: int | None, tier: str | None, kind: str | None, namespace: str | None, name: str | None,
         action: str | None, rule_index: int | None, raw: str | None) -> dict[str, Any]:
    return {
        "position": position,
        "tier": tier or None,
        "kind": kind,
        "namespace": namespace or None,
        "name": name or None,
        "staged": kind in STAGED_KINDS if kind else None,
        "action": action.lower() if action else None,
        "rule_index": rule_index,
        "end_of_tier": rule_index == -1 or kind == "eot",
        "raw": raw,
    }


def decode_policy_string(text: str) -> dict[str, Any]:
    """One flow-log policy string → a POLICY_HIT dict. Unreadable strings keep `raw` and leave the rest NULL."""
    parts = text.split("|")
    if len(parts) not in (4, 5):
        return _hit(None, None, None, None, None, None, None, text)
    position = _int_or_none(parts[0])
    tier, policy_id, action = parts[1], parts[2], parts[3]
    rule_index = _int_or_none(parts[4]) if len(parts) == 5 else None
    explicit = _KIND_PREFIX.match(policy_id)
    if explicit:
        kind, rest = explicit.group(1), explicit.group(2)
        namespace, name = rest.split("/", 1) if "/" in rest else (None, rest)
        return _hit(position, tier, kind, namespace, name, action, rule_index, text)
    kind, namespace, name = _decode_tier_dotted(tier, policy_id)
    return _hit(position, tier, kind, namespace, name, action, rule_index, text)


def _decode_tier_dotted(tier: str, policy_id: str) -> tuple[str, str | None, str]:
    """Grammar (A), `[ns/][staged:]<tier-or-kind>.<name>`: names may contain dots, so only the prefix is cut."""
    namespace, rest = policy_id.split("/", 1) if "/" in policy_id else (None, policy_id)
    # `staged:` sits after the tier dot for Calico kinds and before `knp.` for Kubernetes ones; the docs even
    # show it before the tier. Wherever it is, it marks the hit as staged.
    staged = "staged:" in rest
    rest = rest.replace("staged:", "", 1)
    for prefix, kind in (
        ("knp.default.", "sknp" if staged else "knp"),
        ("kanp.adminnetworkpolicy.", "anp"),
        ("kbanp.baselineadminnetworkpolicy.", "banp"),
    ):
        if rest.startswith(prefix):
            return kind, namespace, rest[len(prefix):]
    if rest.startswith("__PROFILE__."):
        name = rest[len("__PROFILE__."):]
        return ("eot" if name == "__NO_MATCH__" else "pro"), None, name
    if rest.startswith(f"{tier}."):
        name = rest[len(tier) + 1:]
    else:
        # A tier field that disagrees with the name prefix: keep what follows the first dot.
        name = rest.split(".", 1)[1] if "." in rest else rest
    if name == "__NO_MATCH__":
        return "eot", namespace, name
    if namespace is not None:
        return ("snp" if staged else "np"), namespace, name
    return ("sgnp" if staged else "gnp"), None, name


def _enum(value: Any, table: dict[Any, str]) -> str | None:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    return table.get(value)


def _number(value: Any, default: int) -> int:
    if value is None:
        return default  # proto3 omits zero values
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TraceError(f"expected an integer, found {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise TraceError(f"expected an integer, found {value!r}") from None
    if number not in INT32:
        raise TraceError(f"index {value!r} is out of range")
    return number


def _field(obj: dict[str, Any], snake: str, camel: str) -> Any:
    return obj[snake] if snake in obj else obj.get(camel)


def decode_policy_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A Goldmane / Whisker PolicyHit object → POLICY_HIT. EndOfTier hits name their trigger policy."""
    kind = _enum(obj.get("kind"), _GOLDMANE_KINDS)
    action = _enum(obj.get("action"), _GOLDMANE_ACTIONS)
    position = _number(_field(obj, "policy_index", "policyIndex"), 0)
    rule_index = _number(_field(obj, "rule_index", "ruleIndex"), 0)
    subject = obj
    trigger = obj.get("trigger")
    if kind == "eot" and isinstance(trigger, dict):
        subject = trigger
        kind = _enum(trigger.get("kind"), _GOLDMANE_KINDS) or kind
        rule_index = -1
    tier = obj.get("tier") or subject.get("tier")
    if kind == "pro" and not tier:
        # Goldmane's API blanks a profile hit's tier; felix's strings put profiles in `__PROFILE__`: store one spelling.
        tier = "__PROFILE__"
    hit = _hit(position, tier, kind, subject.get("namespace"), subject.get("name"), action, rule_index, None)
    hit["end_of_tier"] = rule_index == -1
    return hit


def decode_trace(hits: Any) -> list[dict[str, Any]] | None:
    """A list of policy strings or PolicyHit objects → POLICY_HIT dicts sorted by position (None stays None)."""
    if hits is None:
        return None
    if not isinstance(hits, list):
        raise TraceError(f"expected a list of policy hits, found {type(hits).__name__}")
    decoded = []
    for item in hits:
        if isinstance(item, str):
            decoded.append(decode_policy_string(item))
        elif isinstance(item, dict):
            decoded.append(decode_policy_object(item))
        else:
            raise TraceError(f"expected a policy string or object, found {item!r}")
    # Lists are sets in the logs: the leading index gives the order (and may repeat, so sort stably).
    decoded.sort(key=lambda h: (h["position"] is None, h["position"] or 0))
    return decoded


def decode_policies(value: Any) -> dict[str, list[dict[str, Any]] | None]:
    """A record's `policies` value (object of traces, or null) → {canonical trace column: hits or None}."""
    traces: dict[str, list[dict[str, Any]] | None] = dict.fromkeys(TRACE_COLUMNS)
    if value is None:
        return traces
    if not isinstance(value, dict):
        raise TraceError(f"expected an object of policy traces, found {type(value).__name__}")
    for key, hits in value.items():
        column = TRACE_KEYS.get(key)
        if column is not None:
            traces[column] = decode_trace(hits)
    return traces
