"""`flowstage promote`: the output directory is the policy set after promotion, written so a person can review it.

The test of record: promote, load the output again, and compare its `current` set with the input's `proposed`.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from policy_helpers import write

from flowstage.cli import main
from flowstage.errors import UsageError
from flowstage.policy.loader import load_policies, read_documents
from flowstage.policy.promote import PromotionError, plan_promotion
from flowstage.policy.sets import build_sets

LESSON = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: database-allow-from-backend
spec:
  selector: env == 'prod' && app == 'database'
  types:
  - Ingress
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: env == 'prod' && app == 'backend'
    destination:
      ports: [8080]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: backend-lockdown-staged
spec:
  selector: env == 'prod' && app == 'backend'
  types:
  - Ingress
"""


def assert_output_is_the_proposed_set(inputs: list[Path], output: Path) -> None:
    proposed = build_sets(load_policies(inputs)).proposed
    reloaded = load_policies([output])
    assert reloaded.errors == [], "\n".join(map(str, reloaded.errors))
    current = build_sets(reloaded).current
    assert current.tiers == proposed.tiers
    assert dict(current.policies) == dict(proposed.policies)


def test_the_lessons_staged_policy_is_promoted_by_deleting_one_word(tmp_path):
    source = write(tmp_path / "in", LESSON)
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    assert plan.write() == [tmp_path / "out" / "policies.yaml"]
    written = (tmp_path / "out" / "policies.yaml").read_text()
    # Exactly one line differs: the kind.
    changed = [
        (a, b) for a, b in zip(source.read_text().splitlines(), written.splitlines(), strict=True) if a != b
    ]
    assert changed == [("kind: StagedGlobalNetworkPolicy", "kind: GlobalNetworkPolicy")]
    assert_output_is_the_proposed_set([tmp_path / "in"], tmp_path / "out")


ROUND_TRIP = """
# Team policies. Reviewed 2024-05-01.
apiVersion: projectcalico.org/v3
kind: "StagedNetworkPolicy"   # staged while we watch flow logs
metadata:
  name: api-lockdown
  namespace: prod
spec:
  stagedAction: Set  # remove when promoted
  # only the API pods
  selector: "app == 'api'"
  order: 100
  types: [Ingress, Egress]
  ingress:
    - action: Allow
      protocol: TCP
      source: {selector: "role == 'frontend'"}
      destination:
        ports: [443, '8000:8080']
  egress:
    - action: Allow   # DNS
      protocol: UDP
      destination: {ports: [53]}
"""


def test_round_trip_keeps_key_order_comments_quotes_and_flow_style(tmp_path):
    write(tmp_path / "in", ROUND_TRIP)
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    (promoted,) = plan.files
    expected = (
        textwrap.dedent(ROUND_TRIP)
        .lstrip("\n")
        .replace('kind: "StagedNetworkPolicy"   #', 'kind: "NetworkPolicy"         #')
        .replace("  stagedAction: Set  # remove when promoted\n", "")
    )
    assert promoted.after == expected


def test_a_key_written_twice_in_a_staged_policy_stops_promotion(tmp_path):
    # Which of the two values counts is ambiguous; promotion must not pick one silently.
    write(tmp_path / "in", LESSON + "  order: 1\n  order: 2\n")  # in the staged policy's spec
    with pytest.raises(PromotionError, match="cannot rewrite it keeping its formatting: .*duplicate key"):
        plan_promotion([tmp_path / "in"], tmp_path / "out")


def test_staged_kubernetes_policy_becomes_a_kubernetes_network_policy(tmp_path):
    write(
        tmp_path / "in",
        """
        apiVersion: projectcalico.org/v3
        kind: StagedKubernetesNetworkPolicy
        metadata: {name: api, namespace: prod}
        spec:
          stagedAction: Set
          podSelector: {matchLabels: {app: api}}
          policyTypes: [Ingress]
          ingress:
          - from: [{podSelector: {}}]
        """,
    )
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    document = yaml.safe_load(plan.files[0].after)
    assert (document["apiVersion"], document["kind"]) == ("networking.k8s.io/v1", "NetworkPolicy")
    assert "stagedAction" not in document["spec"]
    plan.write()
    assert_output_is_the_proposed_set([tmp_path / "in"], tmp_path / "out")


def test_replace_delete_learn_and_ignore(tmp_path):
    write(
        tmp_path / "in",
        """
        apiVersion: projectcalico.org/v3
        kind: NetworkPolicy
        metadata: {name: web, namespace: prod}
        spec: {selector: app == 'web', ingress: [{action: Allow}]}
        ---
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: legacy-allow}
        spec: {ingress: [{action: Allow}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: old-knp, namespace: prod}
        spec: {podSelector: {}}
        """,
        "enforced.yaml",
    )
    write(
        tmp_path / "in",
        """
        apiVersion: projectcalico.org/v3
        kind: StagedNetworkPolicy
        metadata: {name: web, namespace: prod}
        spec: {selector: app == 'web', ingress: [{action: Deny}]}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedGlobalNetworkPolicy
        metadata: {name: legacy-allow}
        spec: {stagedAction: Delete, tier: default}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedKubernetesNetworkPolicy
        metadata: {name: old-knp, namespace: prod}
        spec: {stagedAction: Delete}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedGlobalNetworkPolicy
        metadata: {name: elsewhere}
        spec: {stagedAction: Delete}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedGlobalNetworkPolicy
        metadata: {name: suggestion}
        spec: {stagedAction: Learn, selector: all()}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedGlobalNetworkPolicy
        metadata: {name: parked}
        spec: {stagedAction: Ignore}
        """,
        "staged.yaml",
    )
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    plan.write()
    # Every enforced object was replaced or deleted, so its file has nothing left to write.
    assert not (tmp_path / "out" / "enforced.yaml").exists()
    staged = list(yaml.safe_load_all((tmp_path / "out" / "staged.yaml").read_text()))
    assert [(d["kind"], d["metadata"]["name"]) for d in staged] == [("NetworkPolicy", "web")]
    deletions = list(yaml.safe_load_all((tmp_path / "out" / "deletions.txt").read_text()))
    assert deletions == [
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "legacy-allow"},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "old-knp", "namespace": "prod"},
        },
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "elsewhere"},
        },
    ]
    deletions_text = (tmp_path / "out" / "deletions.txt").read_text()
    assert f"kubectl delete -f {tmp_path / 'out' / 'deletions.txt'}" in deletions_text
    assert deletions_text.count("# not among the inputs") == 1
    assert [d.found for d in plan.deletions] == [True, True, False]
    assert_output_is_the_proposed_set([tmp_path / "in"], tmp_path / "out")


def test_a_file_whose_objects_all_go_away_is_not_written(tmp_path):
    write(
        tmp_path / "in",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n",
        "a.yaml",
    )
    write(
        tmp_path / "in",
        "apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: a}\nspec: {stagedAction: Delete}\n",
        "b.yaml",
    )
    written = plan_promotion([tmp_path / "in"], tmp_path / "out").write()
    assert written == [tmp_path / "out" / "deletions.txt"]


def test_deletions_never_land_where_kubectl_apply_would_read_them(tmp_path):
    write(tmp_path / "in", LESSON)
    with pytest.raises(UsageError, match="would be applied with the rest"):
        plan_promotion(
            [tmp_path / "in"], tmp_path / "out", deletions_file=tmp_path / "out" / "deletions.yaml"
        )
    outside = plan_promotion([tmp_path / "in"], tmp_path / "out", deletions_file=tmp_path / "deletions.yaml")
    assert outside.deletions_file == tmp_path / "deletions.yaml"


def test_unchanged_files_are_copied_byte_for_byte(tmp_path):
    odd = "# odd spacing kept\napiVersion:   projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\nspec: {order: 100}\n"
    write(tmp_path / "in", odd, "tiers.yaml")
    write(tmp_path / "in", LESSON, "sub/lesson.yaml")
    plan_promotion([tmp_path / "in"], tmp_path / "out").write()
    assert (tmp_path / "out" / "tiers.yaml").read_text() == odd
    assert (tmp_path / "out" / "sub" / "lesson.yaml").exists()  # directory layout kept


def test_lists_and_typed_lists_are_promoted_item_by_item(tmp_path):
    write(
        tmp_path / "in",
        """
        apiVersion: projectcalico.org/v3
        kind: StagedNetworkPolicyList
        items:
        - metadata: {name: a, namespace: prod}
          spec: {stagedAction: Set, selector: all()}
        - metadata: {name: b, namespace: prod}
          spec: {stagedAction: Learn}
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: projectcalico.org/v3
          kind: StagedGlobalNetworkPolicy
          metadata: {name: c}
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: untouched}
        """,
    )
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    typed, generic = yaml.safe_load_all(plan.files[0].after)
    assert typed["kind"] == "NetworkPolicyList" and [i["metadata"]["name"] for i in typed["items"]] == ["a"]
    assert [i["kind"] for i in generic["items"]] == ["GlobalNetworkPolicy", "ConfigMap"]
    plan.write()
    assert_output_is_the_proposed_set([tmp_path / "in"], tmp_path / "out")


def test_json_files_are_promoted_as_json(tmp_path):
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "StagedGlobalNetworkPolicy",
        "metadata": {"name": "j"},
        "spec": {"stagedAction": "Set", "selector": "all()", "order": 5},
    }
    write(tmp_path / "in", json.dumps(doc, indent=4), "p.json")
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    promoted = json.loads(plan.files[0].after)
    assert list(promoted) == ["apiVersion", "kind", "metadata", "spec"]
    assert promoted["kind"] == "GlobalNetworkPolicy" and promoted["spec"] == {"selector": "all()", "order": 5}
    assert plan.files[0].after.startswith('{\n    "apiVersion"')  # indentation kept


def test_dry_run_diff_shows_the_change_and_writes_nothing(tmp_path):
    write(tmp_path / "in", LESSON)
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    diff = plan.diff()
    assert (
        f"--- {tmp_path / 'in' / 'policies.yaml'}" in diff
        and f"+++ {tmp_path / 'out' / 'policies.yaml'}" in diff
    )
    assert "-kind: StagedGlobalNetworkPolicy\n+kind: GlobalNetworkPolicy\n" in diff
    assert not (tmp_path / "out").exists()


def test_output_directory_must_be_empty_unless_overwriting(tmp_path):
    write(tmp_path / "in", LESSON)
    write(tmp_path / "out", "old", "stale.txt")
    plan = plan_promotion([tmp_path / "in"], tmp_path / "out")
    with pytest.raises(UsageError, match="is not empty"):
        plan.write()
    assert plan.write(overwrite=True) == [tmp_path / "out" / "policies.yaml"]


def test_input_with_errors_is_not_promoted(tmp_path):
    write(tmp_path / "in", LESSON.replace("action: Allow", "action: allow"))
    with pytest.raises(PromotionError) as raised:
        plan_promotion([tmp_path / "in"], tmp_path / "out")
    assert [p.path for p in raised.value.problems] == ["spec.ingress[0].action"]
    assert "fix them before promoting" in str(raised.value)


def _staged_copy(document: dict) -> dict:
    """The staged twin of an enforced policy document, with a changed spec so replacement is visible."""
    staged = json.loads(json.dumps(document))
    if document.get("apiVersion") == "networking.k8s.io/v1":
        staged["apiVersion"], staged["kind"] = "projectcalico.org/v3", "StagedKubernetesNetworkPolicy"
        staged.setdefault("spec", {})["policyTypes"] = ["Ingress", "Egress"]
    else:
        staged["kind"] = "Staged" + document["kind"]
        staged.setdefault("spec", {})["order"] = 7
    staged["spec"]["stagedAction"] = "Set"
    return staged


@pytest.mark.slow
def test_nca_inputs_promote_to_their_proposed_set(shared_dir, tmp_path):
    base = shared_dir / "conformance" / "nca-policy-cases"
    cases = json.loads((base / "index.json").read_text())["cases"]
    replaced = 0
    for case in cases:
        if any("testcase16" in f for f in case["policy_files"]):
            continue  # holds policies Calico rejects; promotion refuses input with errors
        inputs = tmp_path / case["id"] / "in"
        for index, name in enumerate(case["policy_files"]):
            enforced = (base / name).read_text()
            write(inputs / "enforced", enforced, f"{index}-{Path(name).name}")
            documents, problems = read_documents(enforced, name)
            assert problems == []
            policies = [
                d.root
                for d in documents
                if d.root and d.root.get("kind") in ("NetworkPolicy", "GlobalNetworkPolicy")
            ]
            if policies:
                write(
                    inputs / "staged",
                    yaml.safe_dump_all([_staged_copy(d) for d in policies[:2]], sort_keys=False),
                    f"{index}.yaml",
                )
        output = tmp_path / case["id"] / "out"
        plan = plan_promotion([inputs], output)
        replaced += sum(1 for step in plan.steps if step.action.value == "replaces")
        plan.write()
        assert_output_is_the_proposed_set([inputs], output)
    assert replaced > 50


def flowstage(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["flowstage", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


def test_promote_command_writes_and_reports(tmp_path, monkeypatch, capsys):
    write(tmp_path / "in", LESSON)
    code, _, err = flowstage(
        monkeypatch, capsys, "promote", str(tmp_path / "in"), "--output", str(tmp_path / "out")
    )
    assert code == 0
    assert (
        "StagedGlobalNetworkPolicy backend-lockdown-staged adds GlobalNetworkPolicy backend-lockdown-staged"
        in err
    )
    assert "wrote 1 file(s)" in err
    assert (tmp_path / "out" / "policies.yaml").exists()


def test_promote_command_dry_run_prints_the_diff(tmp_path, monkeypatch, capsys):
    write(tmp_path / "in", LESSON)
    code, out, _ = flowstage(
        monkeypatch, capsys, "promote", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--dry-run"
    )
    assert code == 0
    assert "+kind: GlobalNetworkPolicy" in out and not (tmp_path / "out").exists()


def test_promote_command_errors_exit_without_traceback(tmp_path, monkeypatch, capsys):
    write(tmp_path / "in", LESSON.replace("types:\n  - Ingress\n", "types:\n  - Ingress\n  - Ingress\n", 1))
    code, _, err = flowstage(
        monkeypatch, capsys, "promote", str(tmp_path / "in"), "-o", str(tmp_path / "out")
    )
    assert code == 1
    assert "'Ingress' type specified more than once" in err and "Traceback" not in err
    write(tmp_path / "ok", LESSON)
    write(tmp_path / "busy", "x", "x.txt")
    code, _, err = flowstage(
        monkeypatch, capsys, "promote", str(tmp_path / "ok"), "-o", str(tmp_path / "busy")
    )
    assert code == 2 and "is not empty" in err
