"""Reading policy files: YAML and JSON, directories, multi-document YAML, List wrappers, and hostile input.

Whatever is wrong with a file comes back as a Problem naming the file (and line); load_policies never raises.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_helpers import load_text, messages, write

from flowstage.policy import loader
from flowstage.policy.loader import load_policies
from flowstage.policy.model import PolicyKind, PortRange
from flowstage.policy.validate import Severity

GNP = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: {name}
spec:
  selector: app == 'web'
"""


def test_multi_document_yaml_loads_every_document(tmp_path):
    bundle = load_text(tmp_path, GNP.format(name="a") + "---\n" + GNP.format(name="b") + "---\n")
    assert [p.name for p in bundle.policies] == ["a", "b"]
    assert [p.origin.document for p in bundle.policies] == [1, 2]
    assert bundle.problems == []


def test_json_file_loads_like_yaml(tmp_path):
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "j"}}
    bundle = load_policies([write(tmp_path, json.dumps(doc), "p.json")])
    assert [p.name for p in bundle.policies] == ["j"]


def test_kubectl_list_and_typed_lists_are_unwrapped(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: projectcalico.org/v3
          kind: GlobalNetworkPolicy
          metadata: {name: from-list}
        ---
        apiVersion: v1
        kind: NamespaceList
        items:
        - metadata: {name: prod, labels: {team: a}}
        """,
    )
    assert [p.name for p in bundle.policies] == ["from-list"]
    assert [ns.name for ns in bundle.namespaces] == ["prod"]
    assert bundle.problems == []


def test_calicoctl_style_list_with_kinded_items(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicyList
        items:
        - apiVersion: projectcalico.org/v3
          kind: GlobalNetworkPolicy
          metadata: {name: one}
        - metadata: {name: two}
        """,
    )
    assert [p.name for p in bundle.policies] == ["one", "two"]


def test_top_level_array_of_objects_is_read(tmp_path):
    docs = [
        {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "x"}},
        {"kind": "NamespaceList", "apiVersion": "v1", "items": [{"metadata": {"name": "n"}}]},
    ]
    bundle = load_policies([write(tmp_path, json.dumps(docs), "dump.json")])
    assert [p.name for p in bundle.policies] == ["x"] and [n.name for n in bundle.namespaces] == ["n"]


def test_directories_are_read_recursively_skipping_hidden_and_other_files(tmp_path):
    write(tmp_path, GNP.format(name="top"), "a.yaml")
    write(tmp_path, GNP.format(name="nested"), "sub/b.yml")
    write(tmp_path, GNP.format(name="hidden"), ".git/c.yaml")
    write(tmp_path, "not yaml at all: [", "notes.txt")
    bundle = load_policies([tmp_path])
    assert sorted(p.name for p in bundle.policies) == ["nested", "top"]
    assert len(bundle.files) == 2


def test_missing_path_is_a_problem_not_an_exception(tmp_path):
    bundle = load_policies([tmp_path / "nope.yaml"])
    assert messages(bundle.errors) == ["no such file or directory"]
    assert bundle.errors[0].file.endswith("nope.yaml")


def test_kinds_not_modelled_are_listed_as_skipped(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: prod}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        """,
    )
    assert [(s.kind, s.name, s.document) for s in bundle.skipped] == [
        ("Service", "web", 1),
        ("Deployment", "web", 2),
    ]
    assert bundle.problems == []


def test_yaml_that_is_not_a_kubernetes_object_is_skipped_with_a_warning(tmp_path):
    bundle = load_text(tmp_path, "replicaCount: 3\nimage: {tag: v1}\n", "values.yaml")
    assert bundle.errors == [] and bundle.warnings[0].message == "not a Kubernetes object (no kind): skipped"
    assert [(s.kind, s.file.endswith("values.yaml")) for s in bundle.skipped] == [("(no kind)", True)]


def test_invalid_yaml_names_file_and_line(tmp_path):
    bundle = load_text(tmp_path, GNP.format(name="ok") + "---\nkind: [unclosed\nspec: 1\n")
    assert [p.name for p in bundle.policies] == ["ok"]  # documents before the broken one still load
    (problem,) = bundle.errors
    assert problem.message.startswith("not valid YAML")
    assert problem.line is not None and problem.line >= 8
    assert str(problem).startswith(f"{tmp_path / 'policies.yaml'}:{problem.line}: error:")


def test_python_object_tag_is_refused_without_running_anything(tmp_path):
    bundle = load_text(tmp_path, "kind: !!python/object/apply:os.system ['echo pwned']\n")
    (problem,) = bundle.errors
    assert "unsupported YAML tag !!python/object/apply:os.system" in problem.message
    assert problem.line == 1


def test_alias_bomb_is_stopped_with_a_clear_problem(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    bundle = load_text(tmp_path, "\n".join(lines) + "\n")
    (problem,) = bundle.errors
    assert "alias bomb" in problem.message


def test_recursive_alias_is_refused(tmp_path):
    bundle = load_text(tmp_path, "a: &x [1, *x]\n")
    assert "cycle" in bundle.errors[0].message


def test_scalar_documents_are_not_objects(tmp_path):
    bundle = load_text(tmp_path, "just a string\n")
    assert bundle.errors[0].message.startswith("expected a Kubernetes object")


def test_not_utf8_is_a_problem(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in load_policies([path]).errors[0].message


def test_files_above_the_size_limit_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 100)
    bundle = load_text(tmp_path, GNP.format(name="big") * 3)
    assert "above the" in bundle.errors[0].message and bundle.policies == []


def test_repeated_keys_are_warned_about(tmp_path):
    bundle = load_text(tmp_path, GNP.format(name="a") + "  selector: app == 'db'\n")
    (warning,) = bundle.warnings
    assert warning.message == "key 'selector' appears twice in one mapping; the last one is used"
    assert bundle.policies[0].selector.matches({"app": "db"})


def test_port_ranges_are_not_read_as_base_60_numbers(tmp_path):
    # YAML 1.1 reads 10:30 as 630; Kubernetes' YAML (and so Calico) reads the string "10:30".
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: ranges}
        spec:
          ingress:
          - action: Allow
            protocol: TCP
            destination:
              ports: [10:30, 8080]
        """,
    )
    ports = bundle.policies[0].ingress[0].destination.ports
    assert ports.ranges == (PortRange(10, 30), PortRange(8080, 8080))


def test_problem_lines_point_at_the_field(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: NetworkPolicy
        metadata:
          name: web
          namespace: prod
        spec:
          ingress:
          - action: Allow
          - action: allow
        """,
    )
    (problem,) = bundle.errors
    assert (problem.path, problem.line, problem.document) == ("spec.ingress[1].action", 9, 1)
    assert problem.object == "NetworkPolicy prod/web"


def test_namespaced_kind_without_namespace_defaults_to_default_with_a_warning(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny}
        spec: {podSelector: {}}
        """,
    )
    assert bundle.policies[0].namespace == "default"
    (warning,) = bundle.warnings
    assert warning.severity is Severity.WARNING and "read as namespace 'default'" in warning.message


def test_network_policy_without_api_version_is_ambiguous(tmp_path):
    bundle = load_text(tmp_path, "kind: NetworkPolicy\nmetadata: {name: x, namespace: a}\n")
    assert "exists both as projectcalico.org/v3 and networking.k8s.io/v1" in bundle.errors[0].message


def test_unsupported_api_version_of_a_known_kind_is_an_error(tmp_path):
    bundle = load_text(
        tmp_path, "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
    )
    assert (
        bundle.errors[0].message
        == "unsupported apiVersion 'networking.k8s.io/v1beta1' for kind NetworkPolicy"
    )


def test_calico_storage_api_version_is_read_with_a_warning(tmp_path):
    bundle = load_text(
        tmp_path, GNP.format(name="crd").replace("projectcalico.org/v3", "crd.projectcalico.org/v1")
    )
    assert [p.name for p in bundle.policies] == ["crd"]
    assert "storage form" in bundle.warnings[0].message


def test_duplicate_objects_are_errors_and_the_first_is_kept(tmp_path):
    write(tmp_path, GNP.format(name="dup"), "a.yaml")
    write(tmp_path, GNP.format(name="dup").replace("web", "db"), "b.yaml")
    bundle = load_policies([tmp_path])
    (problem,) = bundle.errors
    assert problem.message.startswith("duplicate: GlobalNetworkPolicy dup is already defined in")
    assert problem.file.endswith("b.yaml")
    (kept,) = bundle.policies
    assert kept.selector.matches({"app": "web"}) and kept.origin.file.endswith("a.yaml")


def test_same_name_in_different_kinds_is_not_a_duplicate(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: NetworkPolicy
        metadata: {name: web, namespace: prod}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web, namespace: prod}
        spec: {podSelector: {}}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedNetworkPolicy
        metadata: {name: web, namespace: prod}
        """,
    )
    assert bundle.errors == []
    assert [p.kind for p in bundle.policies] == [
        PolicyKind.NETWORK_POLICY,
        PolicyKind.KUBERNETES_NETWORK_POLICY,
        PolicyKind.STAGED_NETWORK_POLICY,
    ]


def test_inventory_dumps_listed_twice_keep_the_later_listing(tmp_path):
    first = write(
        tmp_path, "kind: Namespace\napiVersion: v1\nmetadata: {name: prod, labels: {v: '1'}}\n", "a.yaml"
    )
    second = write(
        tmp_path, "kind: Namespace\napiVersion: v1\nmetadata: {name: prod, labels: {v: '2'}}\n", "b.yaml"
    )
    bundle = load_policies([], inventory=[first, second])
    assert [ns.labels["v"] for ns in bundle.namespaces] == ["2"]
    assert "this later listing is used" in bundle.warnings[0].message


def test_policies_in_inventory_files_are_ignored_with_a_warning(tmp_path):
    bundle = load_policies([], inventory=[write(tmp_path, GNP.format(name="stray"))])
    assert bundle.policies == []
    assert "in an inventory file is ignored" in bundle.warnings[0].message


def test_objects_with_errors_are_left_out_and_the_rest_load(tmp_path):
    bundle = load_text(
        tmp_path,
        GNP.format(name="good") + "---\n" + GNP.format(name="bad").replace("app == 'web'", "app = 'web'"),
    )
    assert [p.name for p in bundle.policies] == ["good"]
    assert len(bundle.errors) == 1


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-70000, 70000), st.text(max_size=12))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
_kinds = st.sampled_from(
    [
        "GlobalNetworkPolicy",
        "NetworkPolicy",
        "StagedGlobalNetworkPolicy",
        "StagedNetworkPolicy",
        "StagedKubernetesNetworkPolicy",
        "Tier",
        "Profile",
        "HostEndpoint",
        "NetworkSet",
        "GlobalNetworkSet",
        "Namespace",
        "Pod",
        "WorkloadEndpoint",
        "List",
    ]
)
_api_versions = st.sampled_from(["projectcalico.org/v3", "networking.k8s.io/v1", "v1", None])
_rule_keys = ["action", "protocol", "source", "destination", "icmp", "http", "ipVersion", "notProtocol"]
_rules = st.lists(st.dictionaries(st.sampled_from(_rule_keys), _values, max_size=4), max_size=3)
_specs = st.fixed_dictionaries(
    {},
    optional={
        "selector": st.text(max_size=20),
        "ingress": _rules,
        "egress": _rules,
        "types": _values,
        "order": _values,
        "stagedAction": st.sampled_from(["Set", "Delete", "Learn", "x"]),
        "podSelector": _values,
        "policyTypes": _values,
        "nets": _values,
        "tier": _values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=_kinds, api=_api_versions, meta=_values, spec=st.one_of(_specs, _values))
def test_arbitrary_objects_never_raise(tmp_path, kind, api, meta, spec):
    doc = {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec, "items": [{"spec": spec}]}
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc))
    bundle = load_policies([path])
    for problem in bundle.problems:
        assert str(problem)


@pytest.mark.parametrize(
    "text",
    ["", "---\n---\n", "# only a comment\n", "- 1\n- 2\n", "[]", "{}", "null\n"],
)
def test_empty_and_degenerate_files_do_not_raise(tmp_path, text):
    bundle = load_text(tmp_path, text)
    assert bundle.policies == []


def test_deeply_nested_json_arrays_are_a_problem_not_a_crash(tmp_path):
    bundle = load_policies([write(tmp_path, "[" * 900 + "]" * 900, "deep.json")])
    assert bundle.errors[0].message.startswith("expected a Kubernetes object")
