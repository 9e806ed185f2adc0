"""Validation of Calico and Kubernetes objects as Calico's validator and the API server would do it.

Problems are values (file, document, object, field path, plain-words message), never exceptions.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flowstage.policy import convert
from flowstage.policy.convert import MAX_RULES, ObjectKind
from flowstage.policy.model import PORT_PROTOCOLS, Action, StagedAction
from flowstage.selector import Selector, SelectorError, parse_selector

Path = tuple[str | int, ...]


class Severity(enum.Enum):
    ERROR = "error"  # Calico or Kubernetes would reject the object: it is left out of the model
    WARNING = "warning"  # accepted, but probably not what was meant; the object is modelled


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as the input allows."""

    file: str
    document: int | None  # 1-based YAML document in the file; None for a problem with the whole file
    object: str  # `Kind namespace/name`, `Kind name`, or "" before the object is known
    path: str  # field path inside the object, e.g. `spec.ingress[1].source.selector`
    message: str
    severity: Severity = Severity.ERROR
    line: int | None = None  # 1-based line in the file, when known
    detail: str = ""  # further lines, e.g. a selector with a caret under the error

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        context = [
            part for part in (self.object, f"(document {self.document})" if self.document else "") if part
        ]
        if self.path:
            context.append(self.path)
        head = f"{where}: {self.severity.value}: "
        head += f"{' '.join(context)}: {self.message}" if context else self.message
        if not self.detail:
            return head
        return head + "\n" + "\n".join(f"    {line}" for line in self.detail.splitlines())


def format_path(path: Path) -> str:
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


class ObjectReport:
    """Collects the problems of one object, knowing where it sits (file, document, line lookup)."""

    def __init__(
        self,
        file: str,
        document: int | None,
        object_label: str = "",
        locate: Callable[[Path], int | None] | None = None,
    ) -> None:
        self.file = file
        self.document = document
        self.object_label = object_label
        self._locate = locate
        self.problems: list[Problem] = []

    def add(self, path: Path, message: str, severity: Severity = Severity.ERROR, detail: str = "") -> None:
        line = self._locate(path) if self._locate else None
        self.problems.append(
            Problem(
                self.file,
                self.document,
                self.object_label,
                format_path(path),
                message,
                severity,
                line,
                detail,
            )
        )

    def error(self, path: Path, message: str, detail: str = "") -> None:
        self.add(path, message, Severity.ERROR, detail)

    def warning(self, path: Path, message: str, detail: str = "") -> None:
        self.add(path, message, Severity.WARNING, detail)

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.problems)


# ---------------------------------------------------------------------------------------------------------
# Names, labels and small shapes
# ---------------------------------------------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
SUBDOMAIN_NAME = re.compile(rf"^{_SUBDOMAIN}$")
TIER_NAME = re.compile(rf"^{_LABEL}$")
GLOBAL_POLICY_NAME = re.compile(rf"^({_LABEL}\.)?{_LABEL}$")
NAMESPACED_POLICY_NAME = re.compile(rf"^(({_LABEL})(\.{_LABEL})?|((knp|ossg)\.default\.({_SUBDOMAIN})))$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HTTP_PATH_FORBIDDEN = re.compile(r"[? #]")

ACTIONS = tuple(a.value for a in (Action.ALLOW, Action.DENY, Action.PASS, Action.LOG))
STAGED_ACTIONS = tuple(a.value for a in StagedAction)
DIRECTIONS = ("Ingress", "Egress")
KUBERNETES_PROTOCOLS = ("TCP", "UDP", "SCTP")


def type_name(value: Any) -> str:
    """How a YAML value's type reads in a message: `a string`, `a mapping`, `nothing (null)`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _is_mapping(value: Any, path: Path, report: ObjectReport, what: str = "a mapping of fields") -> bool:
    if isinstance(value, Mapping):
        return True
    report.error(path, f"expected {what}, found {type_name(value)}")
    return False


def _is_list(value: Any, path: Path, report: ObjectReport, what: str = "a list") -> bool:
    if isinstance(value, list):
        return True
    report.error(path, f"expected {what}, found {type_name(value)}")
    return False


def _is_text(value: Any, path: Path, report: ObjectReport) -> bool:
    if isinstance(value, str):
        return True
    report.error(path, f"expected a string, found {type_name(value)} ({value!r}); quote it")
    return False


def _is_bool(value: Any, path: Path, report: ObjectReport) -> bool:
    if isinstance(value, bool):
        return True
    report.error(path, f"expected true or false, found {type_name(value)} ({value!r})")
    return False


def _check_fields(value: Mapping[str, Any], allowed: Iterable[str], path: Path, report: ObjectReport) -> None:
    """An unknown field is ignored here (the API server's strict validation would reject it): say which one
    was probably meant, since a misspelt field silently changes what a policy does."""
    known = tuple(allowed)
    for key in value:
        if key in known:
            continue
        guess = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        report.warning(
            (*path, str(key)), f"unknown field '{key}' is ignored: {hint}known fields are {', '.join(known)}"
        )


def _is_qualified_name(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not SUBDOMAIN_NAME.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def check_labels(value: Any, path: Path, report: ObjectReport) -> None:
    if value is None or not _is_mapping(value, path, report, "a mapping of label keys to values"):
        return
    for key, label_value in value.items():
        if not isinstance(label_value, str):
            report.error(
                (*path, key), f"label values must be strings, found {type_name(label_value)}; quote it"
            )
            continue
        if not _is_qualified_name(str(key)):
            report.error(
                (*path, key),
                f"label key '{key}' is invalid: use an optional DNS-subdomain prefix and '/', then up to 63 "
                "letters, digits, '-', '_' or '.' starting and ending with a letter or digit",
            )
        if len(label_value) > 63 or not _LABEL_VALUE.match(label_value):
            report.error(
                (*path, key),
                f"label value '{label_value}' is invalid: up to 63 letters, digits, '-', '_' or '.', starting "
                "and ending with a letter or digit",
            )


def check_selector(
    value: Any, path: Path, report: ObjectReport, *, global_allowed: bool = False
) -> Selector | None:
    """Parse a selector field; an invalid one is reported with Calico's reason and a caret."""
    if value is None or not _is_text(value, path, report):
        return None
    try:
        parsed = parse_selector(value)
    except SelectorError as err:
        head, _, caret = str(err).partition("\n")
        report.error(path, head, detail=textwrap.dedent(caret))
        return None
    if parsed.uses_global and not global_allowed:
        report.error(path, "global() can only be used in an EntityRule namespaceSelector")
    return parsed


def check_name(kind: ObjectKind, name: str, report: ObjectReport) -> None:
    """Names Calico or Kubernetes would refuse are warnings: the name does not change what a policy does."""
    path: Path = ("metadata", "name")
    if len(name) > 253:
        report.warning(
            path, f"name is too long by {len(name) - 253} bytes (at most 253); Kubernetes rejects it"
        )
        return
    if kind in (ObjectKind.GLOBAL_NETWORK_POLICY, ObjectKind.STAGED_GLOBAL_NETWORK_POLICY):
        valid = GLOBAL_POLICY_NAME.match(name)
    elif kind in (ObjectKind.NETWORK_POLICY, ObjectKind.STAGED_NETWORK_POLICY):
        valid = NAMESPACED_POLICY_NAME.match(name)
    elif kind is ObjectKind.TIER:
        check_tier_name(name, path, report)
        return
    elif kind in (
        ObjectKind.POD,
        ObjectKind.NAMESPACE,
        ObjectKind.WORKLOAD_ENDPOINT,
        ObjectKind.HOST_ENDPOINT,
    ):
        return  # inventory comes from the cluster itself: its names are whatever the cluster accepted
    else:
        valid = SUBDOMAIN_NAME.match(name)
    if not valid:
        dots = "at most one '.'" if kind.policy_kind is not None and kind.policy_kind.is_global else "'.'"
        report.warning(
            path,
            f"name '{name}' would be rejected by Calico: use lower-case letters, digits, '-' and {dots}, "
            "starting and ending with a letter or digit",
        )


def check_tier_name(name: str, path: Path, report: ObjectReport) -> None:
    if len(name) > 63 or not TIER_NAME.match(name):
        report.error(
            path,
            f"tier name '{name}' is invalid: use up to 63 lower-case letters, digits and '-', starting and "
            "ending with a letter or digit (no '.')",
        )


def _check_number(value: Any, path: Path, report: ObjectReport) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        report.error(path, f"expected a number, found {type_name(value)} ({value!r})")
        return False
    if isinstance(value, float) and not math.isfinite(value):
        report.error(path, "expected a finite number")
        return False
    return True


def _check_int(value: Any, low: int, high: int, path: Path, report: ObjectReport, what: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        report.error(path, f"{what} must be a whole number, found {type_name(value)} ({value!r})")
        return False
    if not low <= value <= high:
        report.error(path, f"{what} {value} is out of range: it must be between {low} and {high}")
        return False
    return True


def _zero(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


# ---------------------------------------------------------------------------------------------------------
# Calico rules
# ---------------------------------------------------------------------------------------------------------

RULE_FIELDS = (
    "action",
    "protocol",
    "notProtocol",
    "ipVersion",
    "icmp",
    "notICMP",
    "source",
    "destination",
    "http",
    "metadata",
)
ENTITY_FIELDS = (
    "nets",
    "notNets",
    "selector",
    "notSelector",
    "namespaceSelector",
    "ports",
    "notPorts",
    "serviceAccounts",
    "services",
)
_PORT_LOOKALIKE = re.compile(r"^([0-9]+)-([0-9]+)$")


class RuleScope(enum.Enum):
    NAMESPACED = "namespaced"  # NetworkPolicy / StagedNetworkPolicy
    GLOBAL = "global"  # GlobalNetworkPolicy / StagedGlobalNetworkPolicy
    PROFILE = "profile"


def check_rules(value: Any, path: Path, direction: str, scope: RuleScope, report: ObjectReport) -> None:
    if value is None or not _is_list(value, path, report, "a list of rules"):
        return
    if len(value) > MAX_RULES:
        report.error(
            path, f"{len(value)} rules: Calico allows at most {MAX_RULES} {direction} rules per policy"
        )
    for index, rule in enumerate(value):
        check_rule(rule, (*path, index), direction, scope, report)


def _protocol(rule: Mapping[str, Any], key: str, path: Path, report: ObjectReport) -> int | None:
    if rule.get(key) is None:
        return None
    try:
        return convert.parse_protocol(rule[key])
    except ValueError as err:
        report.error((*path, key), str(err))
        return None


def check_rule(rule: Any, path: Path, direction: str, scope: RuleScope, report: ObjectReport) -> None:
    if not _is_mapping(rule, path, report, "a rule (a mapping with an action)"):
        return
    _check_fields(rule, RULE_FIELDS, path, report)
    action = rule.get("action")
    if action is None:
        report.error((*path, "action"), "every rule needs an action: Allow, Deny, Pass or Log")
    elif action not in ACTIONS:
        proper = next((a for a in ACTIONS if isinstance(action, str) and a.lower() == action.lower()), None)
        hint = f" (actions are case-sensitive: write '{proper}')" if proper else ""
        report.error((*path, "action"), f"unknown action {action!r}{hint}: use Allow, Deny, Pass or Log")

    protocol = _protocol(rule, "protocol", path, report)
    not_protocol = _protocol(rule, "notProtocol", path, report)
    ip_version = rule.get("ipVersion")
    if ip_version is not None and (isinstance(ip_version, bool) or ip_version not in (4, 6)):
        report.error((*path, "ipVersion"), f"ipVersion must be 4 or 6, found {ip_version!r}")
        ip_version = None
    for proto, key in ((protocol, "protocol"), (not_protocol, "notProtocol")):
        if proto == 1 and ip_version == 6:
            report.error((*path, "ipVersion"), f"{key} ICMP is IPv4 only: set ipVersion to 4 or use ICMPv6")
        if proto == 58 and ip_version == 4:
            report.error((*path, "ipVersion"), f"{key} ICMPv6 is IPv6 only: set ipVersion to 6 or use ICMP")

    for key in ("icmp", "notICMP"):
        _check_icmp(rule.get(key), protocol, (*path, key), report)

    sides = {}
    for side in ("source", "destination"):
        entity = rule.get(side)
        if entity is not None and _is_mapping(entity, (*path, side), report):
            sides[side] = entity
            _check_entity(entity, (*path, side), scope, report)

    if protocol not in PORT_PROTOCOLS:
        for side, entity in sides.items():
            for key in ("ports", "notPorts"):
                if entity.get(key):
                    why = (
                        "no protocol is set"
                        if protocol is None
                        else f"protocol {rule['protocol']} has no ports"
                    )
                    report.error(
                        (*path, side, key),
                        f"{why}: rules that specify ports must set protocol to TCP, UDP or SCTP",
                    )

    _check_rule_nets(sides, ip_version, path, report)
    _check_http(rule.get("http"), action, protocol, direction, path, report)
    _check_services(sides, direction, scope, path, report)


def _check_icmp(value: Any, protocol: int | None, path: Path, report: ObjectReport) -> None:
    if value is None or not _is_mapping(value, path, report, "a mapping with type and code"):
        return
    _check_fields(value, ("type", "code"), path, report)
    if value.get("type") is not None:
        _check_int(value["type"], 0, 254, (*path, "type"), report, "ICMP type")
    if value.get("code") is not None:
        _check_int(value["code"], 0, 255, (*path, "code"), report, "ICMP code")
        if value.get("type") is None:
            report.error((*path, "code"), "ICMP code specified without an ICMP type: the kernel needs both")
    if protocol not in (1, 58):
        report.error(path, "rules that specify ICMP fields must set protocol to ICMP or ICMPv6")


def _check_entity(entity: Mapping[str, Any], path: Path, scope: RuleScope, report: ObjectReport) -> None:
    _check_fields(entity, ENTITY_FIELDS, path, report)
    for key in ("selector", "notSelector"):
        check_selector(entity.get(key), (*path, key), report)
    ns_selector = check_selector(
        entity.get("namespaceSelector"), (*path, "namespaceSelector"), report, global_allowed=True
    )
    if ns_selector is not None and ns_selector.uses_global and str(ns_selector) != "global()":
        report.error((*path, "namespaceSelector"), "global() cannot be combined with other selectors")
    for key in ("ports", "notPorts"):
        ports = entity.get(key)
        if ports is None or not _is_list(ports, (*path, key), report, "a list of ports"):
            continue
        for index, port in enumerate(ports):
            try:
                convert.parse_port(port)
            except ValueError as err:
                report.error((*path, key, index), str(err))
                continue
            lookalike = _PORT_LOOKALIKE.match(port) if isinstance(port, str) else None
            if lookalike:
                report.warning(
                    (*path, key, index),
                    f"'{port}' is read as a named port; write a port range as "
                    f"'{lookalike.group(1)}:{lookalike.group(2)}'",
                )
    for key in ("nets", "notNets"):
        if entity.get(key) is not None:
            _is_list(entity[key], (*path, key), report, "a list of CIDRs")
    accounts = entity.get("serviceAccounts")
    if accounts is not None and _is_mapping(accounts, (*path, "serviceAccounts"), report):
        _check_fields(accounts, ("names", "selector"), (*path, "serviceAccounts"), report)
        names = accounts.get("names")
        if names is not None and _is_list(names, (*path, "serviceAccounts", "names"), report):
            for index, name in enumerate(names):
                name_path = (*path, "serviceAccounts", "names", index)
                if _is_text(name, name_path, report) and not SUBDOMAIN_NAME.match(name):
                    report.error(
                        name_path,
                        f"service account name {name!r} is invalid: use lower-case letters, "
                        "digits, '-' and '.'",
                    )
        check_selector(accounts.get("selector"), (*path, "serviceAccounts", "selector"), report)
    services = entity.get("services")
    if services is not None and _is_mapping(services, (*path, "services"), report):
        _check_fields(services, ("name", "namespace"), (*path, "services"), report)
        if not services.get("name"):
            report.error((*path, "services", "name"), "must specify a service name")
        for key in ("name", "namespace"):
            if services.get(key) is not None:
                _is_text(services[key], (*path, "services", key), report)
        clashes = [
            ("namespaceSelector",),
            ("selector", "notSelector"),
            ("serviceAccounts",),
            ("nets", "notNets"),
        ]
        for keys in clashes:
            if any(entity.get(k) for k in keys):
                report.error(
                    (*path, "services"),
                    f"cannot specify {'/'.join(keys)} and services on the same rule: a service match takes "
                    "its addresses from the Service's endpoints",
                )


def _check_rule_nets(
    sides: Mapping[str, Mapping[str, Any]], ip_version: Any, path: Path, report: ObjectReport
):
    """validateRule's scan: valid CIDRs, one IP family per rule, agreeing with ipVersion; no catch-all notNets."""
    seen_v4 = seen_v6 = False
    for side in ("source", "destination"):
        for key in ("nets", "notNets"):
            values = sides.get(side, {}).get(key)
            if not isinstance(values, list):
                continue
            v4 = v6 = False
            for index, value in enumerate(values):
                try:
                    network = convert.parse_cidr(value)
                except ValueError as err:
                    report.error((side, key, index) if not path else (*path, side, key, index), str(err))
                    continue
                v4, v6 = v4 or network.version == 4, v6 or network.version == 6
                if key == "notNets" and network.prefixlen == 0:
                    report.error(
                        (*path, side, key, index),
                        f"notNets must not contain {network}: it excludes every address, so the rule could "
                        "never match",
                    )
            field_path = (*path, side, key)
            if ip_version in (4, 6) and ((v4 and ip_version != 4) or (v6 and ip_version != 6)):
                report.error(
                    field_path, f"rule IP version doesn't match CIDR version (ipVersion is {ip_version})"
                )
            if (v4 and seen_v6) or (v6 and seen_v4) or (v4 and v6):
                report.error(
                    field_path, "rule contains both IPv4 and IPv6 CIDRs: write one rule per IP family"
                )
            seen_v4, seen_v6 = seen_v4 or v4, seen_v6 or v6


def _check_http(
    value: Any, action: Any, protocol: int | None, direction: str, path: Path, report: ObjectReport
) -> None:
    if value is None:
        return
    path = (*path, "http")
    if not _is_mapping(value, path, report, "a mapping with methods and paths"):
        return
    _check_fields(value, ("methods", "paths"), path, report)
    if action != Action.ALLOW.value:
        report.error(path, "http matches are only valid for Allow rules")
    if direction == "egress":
        report.error(path, "http matches are not allowed in egress rules")
    if protocol not in (None, 6):
        report.error(path, "rules that specify HTTP fields must set protocol to TCP or leave it out")
    methods = value.get("methods")
    if (
        methods is not None
        and _is_list(methods, (*path, "methods"), report)
        and len(set(map(str, methods))) != len(methods)
    ):
        report.error((*path, "methods"), f"methods are listed more than once: {methods}")
    paths = value.get("paths")
    if paths is not None and _is_list(paths, (*path, "paths"), report):
        for index, entry in enumerate(paths):
            entry_path = (*path, "paths", index)
            if not _is_mapping(entry, entry_path, report, "a mapping with exact or prefix"):
                continue
            _check_fields(entry, ("exact", "prefix"), entry_path, report)
            if entry.get("exact") and entry.get("prefix"):
                report.error(entry_path, "set either exact or prefix, not both")
                continue
            text = entry.get("exact") or entry.get("prefix")
            if not text:
                report.error(entry_path, "set exact or prefix to a path")
            elif not isinstance(text, str) or not text.startswith("/") or _HTTP_PATH_FORBIDDEN.search(text):
                report.error(
                    entry_path,
                    f"invalid path {text!r}: it must start with '/' and not contain '?', '#' or spaces",
                )


def _check_services(
    sides: Mapping[str, Mapping[str, Any]], direction: str, scope: RuleScope, path: Path, report: ObjectReport
) -> None:
    destination = sides.get("destination", {})
    if destination.get("services") is not None:
        for key in ("ports", "notPorts"):
            if destination.get(key):
                report.error(
                    (*path, "destination", key),
                    f"cannot specify {key} with a service match: the Service's own ports are used",
                )
    wrong_side = "destination" if direction == "ingress" else "source"
    if sides.get(wrong_side, {}).get("services") is not None:
        report.error(
            (*path, wrong_side, "services"), f"services is not allowed in an {direction} rule's {wrong_side}"
        )
    if scope is RuleScope.GLOBAL:
        right_side = "source" if direction == "ingress" else "destination"
        services = sides.get(right_side, {}).get("services")
        if isinstance(services, Mapping) and not services.get("namespace"):
            report.error(
                (*path, right_side, "services", "namespace"),
                "must specify a namespace: a global policy has no namespace of its own",
            )


# ---------------------------------------------------------------------------------------------------------
# Calico policies
# ---------------------------------------------------------------------------------------------------------

_POLICY_FIELDS = (
    "tier",
    "order",
    "selector",
    "types",
    "ingress",
    "egress",
    "serviceAccountSelector",
    "performanceHints",
)
_GLOBAL_POLICY_FIELDS = ("namespaceSelector", "doNotTrack", "preDNAT", "applyOnForward")


def check_staged_action(spec: Mapping[str, Any], report: ObjectReport) -> StagedAction | None:
    value = spec.get("stagedAction")
    if value is None:
        return StagedAction.SET
    if value not in STAGED_ACTIONS:
        report.error(
            ("spec", "stagedAction"), f"unknown stagedAction {value!r}: use Set, Delete, Learn or Ignore"
        )
        return None
    return StagedAction(value)


def check_calico_policy(kind: ObjectKind, doc: Mapping[str, Any], report: ObjectReport) -> None:
    policy_kind = kind.policy_kind
    assert policy_kind is not None
    spec = doc.get("spec")
    if spec is None:
        spec = {}
    elif not _is_mapping(spec, ("spec",), report):
        return
    allowed = _POLICY_FIELDS + (_GLOBAL_POLICY_FIELDS if policy_kind.is_global else ())
    allowed += ("stagedAction",) if policy_kind.staged else ()
    _check_fields(spec, allowed, ("spec",), report)
    if spec.get("tier") is not None and _is_text(spec["tier"], ("spec", "tier"), report):
        check_tier_name(spec["tier"], ("spec", "tier"), report)

    if policy_kind.staged:
        staged_action = check_staged_action(spec, report)
        if staged_action is StagedAction.DELETE:
            # The client clears `types` for a Delete before validating it, so types may stay.
            extra = [
                k for k, v in spec.items() if k not in ("tier", "stagedAction", "types") and not _zero(v)
            ]
            if extra:
                report.error(
                    ("spec",),
                    "Spec fields, except Tier, should all be zero-value if stagedAction is Delete "
                    f"(found {', '.join(extra)}); a Delete names the policy to remove and nothing else",
                )
            return

    if spec.get("order") is not None:
        _check_number(spec["order"], ("spec", "order"), report)
    check_selector(spec.get("selector"), ("spec", "selector"), report)
    check_selector(spec.get("serviceAccountSelector"), ("spec", "serviceAccountSelector"), report)
    if policy_kind.is_global:
        check_selector(spec.get("namespaceSelector"), ("spec", "namespaceSelector"), report)
    types = _check_types(spec.get("types"), ("spec", "types"), report)
    scope = RuleScope.GLOBAL if policy_kind.is_global else RuleScope.NAMESPACED
    check_rules(spec.get("ingress"), ("spec", "ingress"), "ingress", scope, report)
    check_rules(spec.get("egress"), ("spec", "egress"), "egress", scope, report)
    _warn_ignored_rules(spec, types, "types", report)

    if policy_kind.is_global:
        flags = {}
        for key in ("doNotTrack", "preDNAT", "applyOnForward"):
            if spec.get(key) is not None and _is_bool(spec[key], ("spec", key), report):
                flags[key] = spec[key]
        if flags.get("doNotTrack") and flags.get("preDNAT"):
            report.error(("spec", "preDNAT"), "preDNAT and doNotTrack cannot both be true")
        if flags.get("preDNAT") and spec.get("egress"):
            report.error(
                ("spec", "egress"), "a preDNAT policy cannot have egress rules: preDNAT is ingress only"
            )
        if flags.get("preDNAT") and types and "Egress" in types:
            report.error(
                ("spec", "types"), "a preDNAT policy cannot have the Egress type: preDNAT is ingress only"
            )
        if (flags.get("doNotTrack") or flags.get("preDNAT")) and not flags.get("applyOnForward"):
            report.error(
                ("spec", "applyOnForward"),
                "applyOnForward must be true if either preDNAT or doNotTrack is true",
            )


def _check_types(value: Any, path: Path, report: ObjectReport, what: str = "type") -> list[str] | None:
    if value is None or not _is_list(value, path, report, "a list of Ingress / Egress"):
        return None
    seen: list[str] = []
    for index, entry in enumerate(value):
        if entry not in DIRECTIONS:
            proper = next(
                (d for d in DIRECTIONS if isinstance(entry, str) and d.lower() == entry.lower()), None
            )
            hint = f" (write '{proper}')" if proper else ""
            report.error((*path, index), f"unknown {what} {entry!r}{hint}: use Ingress or Egress")
        elif entry in seen:
            report.error((*path, index), f"'{entry}' {what} specified more than once")
        else:
            seen.append(entry)
    return seen


def _warn_ignored_rules(
    spec: Mapping[str, Any], types: list[str] | None, key: str, report: ObjectReport
) -> None:
    if not types:
        return
    for direction, field in (("Ingress", "ingress"), ("Egress", "egress")):
        if direction not in types and isinstance(spec.get(field), list) and spec[field]:
            report.warning(
                ("spec", field), f"these {field} rules are ignored: {key} does not include {direction}"
            )


# ---------------------------------------------------------------------------------------------------------
# Kubernetes NetworkPolicy and StagedKubernetesNetworkPolicy
# ---------------------------------------------------------------------------------------------------------


def check_label_selector(value: Any, path: Path, report: ObjectReport) -> None:
    """A Kubernetes LabelSelector (matchLabels / matchExpressions) as the API server validates it."""
    if value is None or not _is_mapping(
        value, path, report, "a label selector (matchLabels / matchExpressions)"
    ):
        return
    _check_fields(value, ("matchLabels", "matchExpressions"), path, report)
    check_labels(value.get("matchLabels"), (*path, "matchLabels"), report)
    expressions = value.get("matchExpressions")
    if expressions is None or not _is_list(expressions, (*path, "matchExpressions"), report):
        return
    for index, expr in enumerate(expressions):
        expr_path = (*path, "matchExpressions", index)
        if not _is_mapping(expr, expr_path, report, "a mapping with key, operator and values"):
            continue
        _check_fields(expr, ("key", "operator", "values"), expr_path, report)
        key = expr.get("key")
        if not isinstance(key, str) or not _is_qualified_name(key):
            report.error((*expr_path, "key"), f"invalid label key {key!r}")
        operator = expr.get("operator")
        values = expr.get("values")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            report.error(
                (*expr_path, "operator"),
                f"unknown operator {operator!r}: use In, NotIn, Exists or DoesNotExist",
            )
        elif operator in ("In", "NotIn") and not values:
            report.error((*expr_path, "values"), f"operator {operator} needs at least one value")
        elif operator in ("Exists", "DoesNotExist") and values:
            report.error((*expr_path, "values"), f"operator {operator} takes no values")
        if values and _is_list(values, (*expr_path, "values"), report):
            for value_index, entry in enumerate(values):
                if not isinstance(entry, str) or len(entry) > 63 or not _LABEL_VALUE.match(entry):
                    report.error((*expr_path, "values", value_index), f"invalid label value {entry!r}")


def _check_kubernetes_port(value: Any, path: Path, report: ObjectReport) -> None:
    if not _is_mapping(value, path, report, "a port (protocol, port, endPort)"):
        return
    _check_fields(value, ("protocol", "port", "endPort"), path, report)
    protocol = value.get("protocol")
    if protocol is not None and protocol not in KUBERNETES_PROTOCOLS:
        report.error((*path, "protocol"), f"unknown protocol {protocol!r}: use TCP, UDP or SCTP")
    port = value.get("port")
    numeric = False
    # A quoted port is a name to Kubernetes, even "80" (IntOrString keeps the string).
    if isinstance(port, str):
        if (
            len(port) > 15
            or not _IANA_SERVICE_NAME.match(port)
            or "--" in port
            or not re.search("[a-z]", port)
        ):
            report.error(
                (*path, "port"),
                f"'{port}' is not a valid port name: up to 15 lower-case letters, digits and '-', with at least "
                "one letter (write a number without quotes)",
            )
    elif port is not None:
        numeric = _check_int(port, 1, 65535, (*path, "port"), report, "port")
    end = value.get("endPort")
    if end is not None:
        if port is None or not numeric:
            report.error((*path, "endPort"), "endPort needs a numeric port to start the range")
        elif _check_int(end, 1, 65535, (*path, "endPort"), report, "endPort") and end < int(port):
            report.error((*path, "endPort"), f"endPort {end} is below port {port}: the range is reversed")


def _check_peer(value: Any, path: Path, report: ObjectReport) -> None:
    if not _is_mapping(value, path, report, "a peer (podSelector, namespaceSelector or ipBlock)"):
        return
    _check_fields(value, ("podSelector", "namespaceSelector", "ipBlock"), path, report)
    block = value.get("ipBlock")
    if block is None:
        if value.get("podSelector") is None and value.get("namespaceSelector") is None:
            report.error(path, "a peer needs podSelector, namespaceSelector or ipBlock")
        check_label_selector(value.get("podSelector"), (*path, "podSelector"), report)
        check_label_selector(value.get("namespaceSelector"), (*path, "namespaceSelector"), report)
        return
    if value.get("podSelector") is not None or value.get("namespaceSelector") is not None:
        report.error(path, "ipBlock cannot be combined with podSelector or namespaceSelector in one peer")
    if not _is_mapping(block, (*path, "ipBlock"), report, "a mapping with cidr and except"):
        return
    _check_fields(block, ("cidr", "except"), (*path, "ipBlock"), report)
    try:
        cidr = convert.parse_cidr(block.get("cidr"))
    except ValueError as err:
        report.error((*path, "ipBlock", "cidr"), str(err))
        return
    excepts = block.get("except")
    if excepts is None or not _is_list(excepts, (*path, "ipBlock", "except"), report, "a list of CIDRs"):
        return
    for index, entry in enumerate(excepts):
        try:
            network = convert.parse_cidr(entry)
        except ValueError as err:
            report.error((*path, "ipBlock", "except", index), str(err))
            continue
        if network.version != cidr.version or not network.subnet_of(cidr) or network == cidr:  # type: ignore[arg-type]
            report.error(
                (*path, "ipBlock", "except", index),
                f"except {entry} must be a strict subset of cidr {block.get('cidr')}",
            )


def _check_kubernetes_rules(value: Any, path: Path, peer_key: str, report: ObjectReport) -> None:
    if value is None or not _is_list(value, path, report, "a list of rules"):
        return
    for index, rule in enumerate(value):
        rule_path = (*path, index)
        if rule is None:
            continue  # `- {}` written as `-`: allows everything in that direction
        if not _is_mapping(rule, rule_path, report, f"a rule ({peer_key} and ports)"):
            continue
        _check_fields(rule, (peer_key, "ports"), rule_path, report)
        peers = rule.get(peer_key)
        if peers is not None and _is_list(peers, (*rule_path, peer_key), report, "a list of peers"):
            for peer_index, peer in enumerate(peers):
                _check_peer(peer, (*rule_path, peer_key, peer_index), report)
        ports = rule.get("ports")
        if ports is not None and _is_list(ports, (*rule_path, "ports"), report, "a list of ports"):
            for port_index, port in enumerate(ports):
                _check_kubernetes_port(port, (*rule_path, "ports", port_index), report)


def check_kubernetes_policy(kind: ObjectKind, doc: Mapping[str, Any], report: ObjectReport) -> None:
    staged = kind is ObjectKind.STAGED_KUBERNETES_NETWORK_POLICY
    spec = doc.get("spec")
    if spec is None:
        spec = {}
    elif not _is_mapping(spec, ("spec",), report):
        return
    _check_fields(
        spec,
        ("podSelector", "policyTypes", "ingress", "egress", *(("stagedAction",) if staged else ())),
        ("spec",),
        report,
    )
    if staged:
        staged_action = check_staged_action(spec, report)
        if staged_action is StagedAction.DELETE:
            extra = [k for k, v in spec.items() if k != "stagedAction" and not _zero(v)]
            if extra:
                report.error(
                    ("spec",),
                    "Spec fields should all be zero-value if stagedAction is Delete "
                    f"(found {', '.join(extra)}); a Delete names the policy to remove and nothing else",
                )
            return
    if spec.get("podSelector") is None:
        report.warning(
            ("spec", "podSelector"), "podSelector is required; read as {} (every pod in the namespace)"
        )
    check_label_selector(spec.get("podSelector"), ("spec", "podSelector"), report)
    types = _check_types(spec.get("policyTypes"), ("spec", "policyTypes"), report, "policy type")
    _check_kubernetes_rules(spec.get("ingress"), ("spec", "ingress"), "from", report)
    _check_kubernetes_rules(spec.get("egress"), ("spec", "egress"), "to", report)
    _warn_ignored_rules(spec, types, "policyTypes", report)
    if staged and not types and isinstance(spec.get("egress"), list) and spec["egress"]:
        report.warning(
            ("spec", "policyTypes"),
            "no policyTypes: staged, this policy governs Ingress only and its egress rules are ignored, but "
            "once promoted Kubernetes fills in Ingress and Egress; write policyTypes to say which you mean",
        )


# ---------------------------------------------------------------------------------------------------------
# Tiers, sets, profiles, endpoints, inventory
# ---------------------------------------------------------------------------------------------------------


def check_tier(doc: Mapping[str, Any], name: str, report: ObjectReport) -> None:
    spec = doc.get("spec") or {}
    if not _is_mapping(spec, ("spec",), report):
        return
    _check_fields(spec, ("order", "defaultAction"), ("spec",), report)
    order = spec.get("order")
    if order is not None:
        _check_number(order, ("spec", "order"), report)
    if name == convert.DEFAULT_TIER and order != 1_000_000:
        report.error(("spec", "order"), "default tier order must be 1000000")
    action = spec.get("defaultAction")
    if action is not None and action not in ("Deny", "Pass"):
        report.error(("spec", "defaultAction"), f"tier defaultAction must be Deny or Pass, found {action!r}")


def check_network_set(doc: Mapping[str, Any], report: ObjectReport) -> None:
    labels = (doc.get("metadata") or {}).get("labels")
    if isinstance(labels, Mapping) and convert.NAMESPACE_LABEL in labels:
        report.error(
            ("metadata", "labels", convert.NAMESPACE_LABEL),
            "projectcalico.org/namespace is not a valid label name: Calico sets it itself",
        )
    spec = doc.get("spec") or {}
    if not _is_mapping(spec, ("spec",), report):
        return
    _check_fields(spec, ("nets", "allowedEgressDomains"), ("spec",), report)
    _check_cidr_list(spec.get("nets"), ("spec", "nets"), report)


def _check_cidr_list(value: Any, path: Path, report: ObjectReport, parse=convert.parse_cidr) -> None:
    if value is None or not _is_list(value, path, report):
        return
    for index, entry in enumerate(value):
        try:
            parse(entry)
        except ValueError as err:
            report.error((*path, index), str(err))


def check_profile(doc: Mapping[str, Any], report: ObjectReport) -> None:
    spec = doc.get("spec") or {}
    if not _is_mapping(spec, ("spec",), report):
        return
    _check_fields(spec, ("ingress", "egress", "labelsToApply"), ("spec",), report)
    check_rules(spec.get("ingress"), ("spec", "ingress"), "ingress", RuleScope.PROFILE, report)
    check_rules(spec.get("egress"), ("spec", "egress"), "egress", RuleScope.PROFILE, report)
    check_labels(spec.get("labelsToApply"), ("spec", "labelsToApply"), report)


def _check_endpoint_ports(value: Any, path: Path, report: ObjectReport, port_key: str = "port") -> None:
    if value is None or not _is_list(value, path, report, "a list of ports"):
        return
    for index, port in enumerate(value):
        port_path = (*path, index)
        if not _is_mapping(port, port_path, report, "a port (name, protocol, number)"):
            continue
        if port.get(port_key) is not None:
            _check_int(port[port_key], 1, 65535, (*port_path, port_key), report, "port")
        protocol = port.get("protocol")
        if protocol is not None and protocol not in KUBERNETES_PROTOCOLS:
            report.error(
                (*port_path, "protocol"), f"port protocol must be TCP, UDP or SCTP, found {protocol!r}"
            )
        if port.get("name") is not None:
            _is_text(port["name"], (*port_path, "name"), report)


def check_host_endpoint(doc: Mapping[str, Any], report: ObjectReport) -> None:
    spec = doc.get("spec") or {}
    if not _is_mapping(spec, ("spec",), report):
        return
    _check_fields(spec, ("node", "interfaceName", "expectedIPs", "profiles", "ports"), ("spec",), report)
    if not spec.get("node"):
        report.error(("spec", "node"), "no node has been specified")
    if not spec.get("interfaceName") and not spec.get("expectedIPs"):
        report.error(("spec",), "no interface or expected IPs have been specified")
    for key in ("node", "interfaceName"):
        if spec.get(key) is not None:
            _is_text(spec[key], ("spec", key), report)
    _check_cidr_list(spec.get("expectedIPs"), ("spec", "expectedIPs"), report, convert.parse_ip)
    profiles = spec.get("profiles")
    if profiles is not None and _is_list(profiles, ("spec", "profiles"), report):
        for index, name in enumerate(profiles):
            _is_text(name, ("spec", "profiles", index), report)
    _check_endpoint_ports(spec.get("ports"), ("spec", "ports"), report)


def check_pod(doc: Mapping[str, Any], report: ObjectReport) -> None:
    spec = doc.get("spec") or {}
    if not _is_mapping(spec, ("spec",), report):
        return
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if containers is None or not _is_list(containers, ("spec", key), report):
            continue
        for index, container in enumerate(containers):
            # Hand-edited dumps write `ports: {}` for "no ports"; it means the same to flowstage.
            if _is_mapping(container, ("spec", key, index), report) and container.get("ports") != {}:
                _check_endpoint_ports(
                    container.get("ports"), ("spec", key, index, "ports"), report, "containerPort"
                )
    status = doc.get("status") or {}
    if _is_mapping(status, ("status",), report):
        ips = status.get("podIPs")
        if ips is not None and _is_list(ips, ("status", "podIPs"), report):
            for index, entry in enumerate(ips):
                if _is_mapping(entry, ("status", "podIPs", index), report) and entry.get("ip") is not None:
                    _check_cidr_list(
                        [entry["ip"]], ("status", "podIPs", index, "ip"), report, convert.parse_ip
                    )


def check_workload_endpoint(doc: Mapping[str, Any], report: ObjectReport) -> None:
    spec = doc.get("spec") or {}
    if not _is_mapping(spec, ("spec",), report):
        return
    _check_cidr_list(spec.get("ipNetworks"), ("spec", "ipNetworks"), report)
    _check_endpoint_ports(spec.get("ports"), ("spec", "ports"), report)
    profiles = spec.get("profiles")
    if profiles is not None:
        _is_list(profiles, ("spec", "profiles"), report)


def check_object(kind: ObjectKind, doc: Mapping[str, Any], name: str, report: ObjectReport) -> None:
    """Every check for one object whose metadata (name, namespace) the caller has already read."""
    check_name(kind, name, report)
    check_labels((doc.get("metadata") or {}).get("labels"), ("metadata", "labels"), report)
    if kind.policy_kind is not None:
        if kind in (ObjectKind.KUBERNETES_NETWORK_POLICY, ObjectKind.STAGED_KUBERNETES_NETWORK_POLICY):
            check_kubernetes_policy(kind, doc, report)
        else:
            check_calico_policy(kind, doc, report)
    elif kind is ObjectKind.TIER:
        check_tier(doc, name, report)
    elif kind in (ObjectKind.GLOBAL_NETWORK_SET, ObjectKind.NETWORK_SET):
        check_network_set(doc, report)
    elif kind is ObjectKind.PROFILE:
        check_profile(doc, report)
    elif kind is ObjectKind.HOST_ENDPOINT:
        check_host_endpoint(doc, report)
    elif kind is ObjectKind.POD:
        check_pod(doc, report)
    elif kind is ObjectKind.WORKLOAD_ENDPOINT:
        check_workload_endpoint(doc, report)
