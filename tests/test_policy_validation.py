"""Validation as Calico's validator and the Kubernetes API server do it: one case per rule, each checked for the
field path it names and the plain-words message it gives. A case is data: adding one is adding a line."""

from __future__ import annotations

import pytest
from policy_helpers import load_text

from flowstage.policy.validate import Severity

NP = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: prod}}\nspec: {spec}\n"
GNP = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: p}}\nspec: {spec}\n"
KNP = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: prod}}\nspec: {spec}\n"


def rule(text: str) -> str:
    """A NetworkPolicy whose only ingress rule is `text` (a YAML flow mapping)."""
    return NP.format(spec=f"{{ingress: [{text}]}}")


# fmt: off
ERRORS = [
    # actions and types
    (rule("{action: allow}"), "spec.ingress[0].action", "unknown action 'allow' (actions are case-sensitive: write 'Allow'): use Allow, Deny, Pass or Log"),
    (rule("{action: Accept}"), "spec.ingress[0].action", "unknown action 'Accept': use Allow, Deny, Pass or Log"),
    (rule("{protocol: TCP}"), "spec.ingress[0].action", "every rule needs an action: Allow, Deny, Pass or Log"),
    (NP.format(spec="{types: [Ingress, Egress, Ingress]}"), "spec.types[2]", "'Ingress' type specified more than once"),
    (NP.format(spec="{types: [ingress]}"), "spec.types[0]", "unknown type 'ingress' (write 'Ingress'): use Ingress or Egress"),
    # protocols and ports
    (rule("{action: Allow, protocol: tcp}"), "spec.ingress[0].protocol", "unknown protocol 'tcp' (protocol names are case-sensitive: write 'TCP')"),
    (rule("{action: Allow, protocol: 0}"), "spec.ingress[0].protocol", "protocol number 0 is invalid: it must be between 1 and 255"),
    (rule("{action: Allow, destination: {ports: [80]}}"), "spec.ingress[0].destination.ports", "no protocol is set: rules that specify ports must set protocol to TCP, UDP or SCTP"),
    (rule("{action: Allow, protocol: ICMP, source: {notPorts: [80]}}"), "spec.ingress[0].source.notPorts", "protocol ICMP has no ports: rules that specify ports must set protocol to TCP, UDP or SCTP"),
    (rule("{action: Allow, protocol: UDPLite, destination: {ports: [http]}}"), "spec.ingress[0].destination.ports", "protocol UDPLite has no ports"),
    (rule("{action: Allow, protocol: TCP, destination: {ports: [0]}}"), "spec.ingress[0].destination.ports[0]", "port 0 is invalid: port numbers run from 1 to 65535"),
    (rule("{action: Allow, protocol: TCP, destination: {ports: [65536]}}"), "spec.ingress[0].destination.ports[0]", "port 65536 is invalid: port numbers run from 1 to 65535"),
    (rule("{action: Allow, protocol: TCP, destination: {ports: ['90:80']}}"), "spec.ingress[0].destination.ports[0]", "port range '90:80' is reversed: write '80:90'"),
    (rule("{action: Allow, protocol: TCP, destination: {ports: ['80:x']}}"), "spec.ingress[0].destination.ports[0]", "port range '80:x' is invalid: write it as 'min:max'"),
    (rule("{action: Allow, protocol: TCP, destination: {ports: ['my port']}}"), "spec.ingress[0].destination.ports[0]", "'my port' is not a valid port name"),
    # nets
    (rule("{action: Allow, source: {nets: [10.0.0.0/33]}}"), "spec.ingress[0].source.nets[0]", "'10.0.0.0/33' is not a valid CIDR or IP address"),
    (rule("{action: Allow, source: {nets: [10.0.0.0/255.0.0.0]}}"), "spec.ingress[0].source.nets[0]", "the prefix length after '/' must be a number"),
    (rule("{action: Allow, source: {nets: [10.0.0.0/8]}, destination: {nets: ['fd00::/8']}}"), "spec.ingress[0].destination.nets", "rule contains both IPv4 and IPv6 CIDRs: write one rule per IP family"),
    (rule("{action: Allow, source: {nets: [10.0.0.0/8, 'fd00::/8']}}"), "spec.ingress[0].source.nets", "rule contains both IPv4 and IPv6 CIDRs"),
    (rule("{action: Allow, destination: {notNets: [0.0.0.0/0]}}"), "spec.ingress[0].destination.notNets[0]", "notNets must not contain 0.0.0.0/0: it excludes every address, so the rule could never match"),
    (rule("{action: Allow, destination: {notNets: ['::/0']}}"), "spec.ingress[0].destination.notNets[0]", "notNets must not contain ::/0"),
    (rule("{action: Allow, ipVersion: 6, source: {nets: [10.0.0.0/8]}}"), "spec.ingress[0].source.nets", "rule IP version doesn't match CIDR version (ipVersion is 6)"),
    (rule("{action: Allow, ipVersion: 5}"), "spec.ingress[0].ipVersion", "ipVersion must be 4 or 6, found 5"),
    # ICMP
    (rule("{action: Allow, protocol: ICMP, icmp: {code: 0}}"), "spec.ingress[0].icmp.code", "ICMP code specified without an ICMP type"),
    (rule("{action: Allow, protocol: TCP, icmp: {type: 8}}"), "spec.ingress[0].icmp", "rules that specify ICMP fields must set protocol to ICMP or ICMPv6"),
    (rule("{action: Allow, notICMP: {type: 8}}"), "spec.ingress[0].notICMP", "rules that specify ICMP fields must set protocol to ICMP or ICMPv6"),
    (rule("{action: Allow, protocol: ICMP, icmp: {type: 255}}"), "spec.ingress[0].icmp.type", "ICMP type 255 is out of range: it must be between 0 and 254"),
    (rule("{action: Allow, protocol: ICMP, ipVersion: 6}"), "spec.ingress[0].ipVersion", "protocol ICMP is IPv4 only: set ipVersion to 4 or use ICMPv6"),
    # selectors and global()
    (NP.format(spec="{selector: app = 'web'}"), "spec.selector", "invalid selector: expected =="),
    (NP.format(spec="{selector: global()}"), "spec.selector", "global() can only be used in an EntityRule namespaceSelector"),
    (GNP.format(spec="{namespaceSelector: global()}"), "spec.namespaceSelector", "global() can only be used in an EntityRule namespaceSelector"),
    (rule("{action: Allow, source: {selector: global()}}"), "spec.ingress[0].source.selector", "global() can only be used in an EntityRule namespaceSelector"),
    (rule("{action: Allow, source: {namespaceSelector: global() && team == 'a'}}"), "spec.ingress[0].source.namespaceSelector", "global() cannot be combined with other selectors"),
    (rule("{action: Allow, source: {namespaceSelector: '!global()'}}"), "spec.ingress[0].source.namespaceSelector", "global() cannot be combined with other selectors"),
    # tiers
    ("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: Security.Tier}\n", "metadata.name", "tier name 'Security.Tier' is invalid"),
    (NP.format(spec="{tier: my_tier}"), "spec.tier", "tier name 'my_tier' is invalid"),
    ("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\nspec: {defaultAction: Allow}\n", "spec.defaultAction", "tier defaultAction must be Deny or Pass, found 'Allow'"),
    ("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: 5}\n", "spec.order", "default tier order must be 1000000"),
    # staged objects
    ("apiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata: {name: p, namespace: a}\nspec: {stagedAction: Delete, tier: t, selector: all()}\n", "spec", "Spec fields, except Tier, should all be zero-value if stagedAction is Delete (found selector)"),
    ("apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: p}\nspec: {stagedAction: Delete, ingress: [{action: Allow}]}\n", "spec", "Spec fields, except Tier, should all be zero-value if stagedAction is Delete (found ingress)"),
    ("apiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy\nmetadata: {name: p, namespace: a}\nspec: {stagedAction: Delete, podSelector: {matchLabels: {a: b}}}\n", "spec", "Spec fields should all be zero-value if stagedAction is Delete (found podSelector)"),
    ("apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: p}\nspec: {stagedAction: Remove}\n", "spec.stagedAction", "unknown stagedAction 'Remove': use Set, Delete, Learn or Ignore"),
    # host-endpoint stages
    (GNP.format(spec="{preDNAT: true, doNotTrack: true, applyOnForward: true}"), "spec.preDNAT", "preDNAT and doNotTrack cannot both be true"),
    (GNP.format(spec="{doNotTrack: true}"), "spec.applyOnForward", "applyOnForward must be true if either preDNAT or doNotTrack is true"),
    (GNP.format(spec="{preDNAT: true, applyOnForward: true, egress: [{action: Allow}]}"), "spec.egress", "a preDNAT policy cannot have egress rules: preDNAT is ingress only"),
    (GNP.format(spec="{preDNAT: true, applyOnForward: true, types: [Ingress, Egress]}"), "spec.types", "a preDNAT policy cannot have the Egress type"),
    (GNP.format(spec="{doNotTrack: yes please}"), "spec.doNotTrack", "expected true or false"),
    # services
    (rule("{action: Allow, source: {services: {name: web}, selector: app == 'x'}}"), "spec.ingress[0].source.services", "cannot specify selector/notSelector and services on the same rule"),
    (rule("{action: Allow, source: {services: {name: web}, nets: [10.0.0.0/8]}}"), "spec.ingress[0].source.services", "cannot specify nets/notNets and services on the same rule"),
    (rule("{action: Allow, source: {services: {name: web}, namespaceSelector: all()}}"), "spec.ingress[0].source.services", "cannot specify namespaceSelector and services on the same rule"),
    (NP.format(
            spec="{egress: [{action: Allow, protocol: TCP, destination: {services: {name: web}, ports: [80]}}]}"
        ), "spec.egress[0].destination.ports", "cannot specify ports with a service match"),
    (rule("{action: Allow, destination: {services: {name: web}}}"), "spec.ingress[0].destination.services", "services is not allowed in an ingress rule's destination"),
    (GNP.format(spec="{ingress: [{action: Allow, source: {services: {name: web}}}]}"), "spec.ingress[0].source.services.namespace", "must specify a namespace"),
    (rule("{action: Allow, source: {services: {namespace: a}}}"), "spec.ingress[0].source.services.name", "must specify a service name"),
    (rule("{action: Allow, source: {serviceAccounts: {names: [\"it's\"]}}}"), "spec.ingress[0].source.serviceAccounts.names[0]", "service account name \"it's\" is invalid"),
    # http
    (rule("{action: Deny, http: {methods: [GET]}}"), "spec.ingress[0].http", "http matches are only valid for Allow rules"),
    (NP.format(spec="{egress: [{action: Allow, http: {methods: [GET]}}]}"), "spec.egress[0].http", "http matches are not allowed in egress rules"),
    (rule("{action: Allow, protocol: UDP, http: {methods: [GET]}}"), "spec.ingress[0].http", "rules that specify HTTP fields must set protocol to TCP or leave it out"),
    (rule("{action: Allow, http: {paths: [{exact: /a, prefix: /b}]}}"), "spec.ingress[0].http.paths[0]", "set either exact or prefix, not both"),
    (rule("{action: Allow, http: {paths: [{exact: 'no-slash'}]}}"), "spec.ingress[0].http.paths[0]", "it must start with '/'"),
    # sizes and shapes
    (NP.format(spec="{ingress: [" + ", ".join(["{action: Allow}"] * 1025) + "]}"), "spec.ingress", "1025 rules: Calico allows at most 1024 ingress rules per policy"),
    (NP.format(spec="{order: high}"), "spec.order", "expected a number, found a string ('high')"),
    (NP.format(spec="{ingress: {action: Allow}}"), "spec.ingress", "expected a list of rules, found a mapping"),
    (NP.format(spec="[]"), "spec", "expected a mapping of fields, found a list"),
    ("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {namespace: a}\n", "metadata.name", "every object needs a name (metadata.name)"),
    # Kubernetes NetworkPolicy
    (KNP.format(spec="{podSelector: {}, policyTypes: [Ingress, Ingress]}"), "spec.policyTypes[1]", "'Ingress' policy type specified more than once"),
    (KNP.format(
            spec="{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]}"
        ), "spec.ingress[0].from[0].ipBlock.except[0]", "except 10.1.0.0/24 must be a strict subset of cidr 10.0.0.0/16"),
    (KNP.format(
            spec="{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}"
        ), "spec.ingress[0].from[0]", "ipBlock cannot be combined with podSelector or namespaceSelector in one peer"),
    (KNP.format(spec="{podSelector: {}, ingress: [{from: [{}]}]}"), "spec.ingress[0].from[0]", "a peer needs podSelector, namespaceSelector or ipBlock"),
    (KNP.format(spec="{podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}"), "spec.ingress[0].ports[0].endPort", "endPort 80 is below port 90: the range is reversed"),
    (KNP.format(spec="{podSelector: {}, ingress: [{ports: [{port: http, endPort: 80}]}]}"), "spec.ingress[0].ports[0].endPort", "endPort needs a numeric port to start the range"),
    (KNP.format(spec="{podSelector: {}, ingress: [{ports: [{port: '80'}]}]}"), "spec.ingress[0].ports[0].port", "'80' is not a valid port name"),
    (KNP.format(spec="{podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}"), "spec.ingress[0].ports[0].protocol", "unknown protocol 'ICMP': use TCP, UDP or SCTP"),
    (KNP.format(spec="{podSelector: {matchExpressions: [{key: a, operator: In}]}}"), "spec.podSelector.matchExpressions[0].values", "operator In needs at least one value"),
    (KNP.format(spec="{podSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}}"), "spec.podSelector.matchExpressions[0].operator", "unknown operator 'Equals'"),
    (KNP.format(spec="{podSelector: {matchLabels: {app: 'two words'}}}"), "spec.podSelector.matchLabels.app", "label value 'two words' is invalid"),
    # other kinds
    ("apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h}\nspec: {interfaceName: eth0}\n", "spec.node", "no node has been specified"),
    ("apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n}\n", "spec", "no interface or expected IPs have been specified"),
    ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s, labels: {projectcalico.org/namespace: x}}\n", "metadata.labels.projectcalico.org/namespace", "projectcalico.org/namespace is not a valid label name"),
    ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\nspec: {nets: [not-a-cidr]}\n", "spec.nets[0]", "'not-a-cidr' is not a valid CIDR or IP address"),
    ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s, labels: {role: true}}\n", "metadata.labels.role", "label values must be strings, found a boolean; quote it"),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "path", "message"), ERRORS, ids=[f"{i}:{c[1]}" for i, c in enumerate(ERRORS)]
)
def test_invalid_objects_are_reported_with_path_and_message(tmp_path, text, path, message):
    bundle = load_text(tmp_path, text)
    found = [(p.path, p.message) for p in bundle.errors]
    assert any(p == path and message in m for p, m in found), found
    assert bundle.policies == [] and bundle.tiers == [] and bundle.network_sets == []  # left out of the model


# fmt: off
WARNINGS = [
    (rule("{action: Allow, destinaton: {ports: [80]}}"), "spec.ingress[0].destinaton", "unknown field 'destinaton' is ignored: did you mean 'destination'?"),
    (rule("{action: Allow, protocol: TCP, destination: {ports: ['80-90']}}"), "spec.ingress[0].destination.ports[0]", "'80-90' is read as a named port; write a port range as '80:90'"),
    (NP.format(spec="{types: [Egress], ingress: [{action: Allow}]}"), "spec.ingress", "these ingress rules are ignored: types does not include Ingress"),
    (KNP.format(spec="{podSelector: {}, policyTypes: [Ingress], egress: [{}]}"), "spec.egress", "these egress rules are ignored: policyTypes does not include Egress"),
    (KNP.format(spec="{}"), "spec.podSelector", "podSelector is required; read as {}"),
    (NP.replace("name: p", "name: Allow_Web").format(spec="{}"), "metadata.name", "name 'Allow_Web' would be rejected by Calico"),
    (GNP.replace("name: p}", "name: p, namespace: prod}").format(spec="{}"), "metadata.namespace", "GlobalNetworkPolicy is not namespaced: the namespace is ignored"),
    (NP.replace(", namespace: prod", "").format(spec="{}"), "metadata", "no namespace: read as namespace 'default', as kubectl would"),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "path", "message"), WARNINGS, ids=[f"{i}:{c[1]}" for i, c in enumerate(WARNINGS)]
)
def test_warnings_keep_the_object(tmp_path, text, path, message):
    bundle = load_text(tmp_path, text)
    assert bundle.errors == []
    found = [(p.path, p.message) for p in bundle.warnings]
    assert any(p == path and message in m for p, m in found), found
    assert all(p.severity is Severity.WARNING for p in bundle.problems)
    assert len(bundle.policies) == 1


def test_invalid_selector_shows_a_caret_under_the_problem(tmp_path):
    bundle = load_text(tmp_path, rule("{action: Allow, source: {selector: \"app == 'web' && tier = 'db'\"}}"))
    (problem,) = bundle.errors
    assert problem.path == "spec.ingress[0].source.selector"
    lines = str(problem).splitlines()
    assert (
        "error: NetworkPolicy prod/p (document 1) spec.ingress[0].source.selector: invalid selector:"
        in lines[0]
    )
    selector_line, caret_line = lines[1], lines[2]
    assert selector_line.strip() == "app == 'web' && tier = 'db'"
    assert selector_line[caret_line.index("^")] == "="  # the caret sits under the lone '='


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    bundle = load_text(tmp_path, rule("{action: allow, protocol: tcp, source: {nets: [bad]}}"))
    assert {p.path for p in bundle.errors} == {
        "spec.ingress[0].action",
        "spec.ingress[0].protocol",
        "spec.ingress[0].source.nets[0]",
    }


def test_staged_delete_may_keep_its_tier_and_types(tmp_path):
    bundle = load_text(
        tmp_path,
        "apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: p}\n"
        "spec: {stagedAction: Delete, tier: security, types: [Ingress]}\n",
    )
    assert bundle.errors == [] and len(bundle.policies) == 1
