"""`flowstage policies lint | show`, run through the real command entry point."""

from __future__ import annotations

import json
import sys

import pytest
from policy_helpers import write

from flowstage.cli import main

VALID = """
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.block}
spec: {tier: security, order: 10, selector: app == 'db', types: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: web, namespace: prod}
spec: {selector: app == 'web', egress: [{action: Allow}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: prod}
spec: {podSelector: {}}
"""


def flowstage(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["flowstage", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


def test_lint_of_valid_files_exits_zero_with_a_summary(tmp_path, monkeypatch, capsys):
    code, out, err = flowstage(monkeypatch, capsys, "policies", "lint", str(write(tmp_path, VALID)))
    assert (code, out) == (0, "")
    assert err.strip() == "0 errors, 0 warnings in 1 file; loaded 3 policies, 1 tiers"


def test_lint_prints_every_problem_and_exits_one(tmp_path, monkeypatch, capsys):
    broken = VALID.replace("order: 10,", "order: ten,").replace("app == 'web'", "app = 'web'")
    path = write(tmp_path, broken + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    code, out, err = flowstage(monkeypatch, capsys, "policies", "lint", str(path))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"{path}:9: error: GlobalNetworkPolicy security.block (document 2) spec.order: expected a number, "
        "found a string ('ten')"
    )
    assert lines[1].startswith(
        f"{path}:14: error: StagedNetworkPolicy prod/web (document 3) spec.selector: invalid selector"
    )
    assert lines[2:] == ["    app = 'web'", "        ^"]
    assert (
        err.strip()
        == "2 errors, 0 warnings in 1 file; loaded 1 policies, 1 tiers; skipped (not modelled): Service ×1"
    )


def test_lint_warnings_fail_only_with_strict(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, VALID.replace(", namespace: prod}", "}"))
    code, out, _ = flowstage(monkeypatch, capsys, "policies", "lint", str(path))
    assert code == 0 and "warning: StagedNetworkPolicy default/web" in out
    code, _, _ = flowstage(monkeypatch, capsys, "policies", "lint", "--strict", str(path))
    assert code == 1


def test_lint_reads_inventory_files(tmp_path, monkeypatch, capsys):
    namespaces = write(
        tmp_path, "apiVersion: v1\nkind: NamespaceList\nitems: [{metadata: {name: prod}}]\n", "ns.yaml"
    )
    code, _, err = flowstage(
        monkeypatch, capsys, "policies", "lint", str(write(tmp_path, VALID)), "--namespaces", str(namespaces)
    )
    assert code == 0 and "1 namespaces" in err


def test_show_lists_policies_tier_by_tier_in_evaluation_order(tmp_path, monkeypatch, capsys):
    code, out, _ = flowstage(
        monkeypatch, capsys, "policies", "show", str(write(tmp_path, VALID)), "--format", "json"
    )
    assert code == 0
    rows = json.loads(out)
    assert [(r["tier"], r["order"], r["name"], r["kind"], r["types"], r["staged"]) for r in rows] == [
        ("security", 10.0, "security.block", "GlobalNetworkPolicy", ["Ingress"], ""),
        ("default", 1000.0, "prod/api", "KubernetesNetworkPolicy", ["Ingress"], ""),
        ("default", None, "prod/web", "StagedNetworkPolicy", ["Egress"], "Set"),
    ]
    assert rows[0]["selector"] == 'app == "db"'


def test_show_a_policy_set_and_effective_selectors(tmp_path, monkeypatch, capsys):
    path = str(write(tmp_path, VALID))
    code, out, _ = flowstage(
        monkeypatch, capsys, "policies", "show", path, "--set", "current", "--format", "json"
    )
    assert [r["name"] for r in json.loads(out)] == ["security.block", "prod/api"]
    code, out, _ = flowstage(
        monkeypatch, capsys, "policies", "show", path, "--set", "proposed", "--effective", "--format", "json"
    )
    web = json.loads(out)[-1]
    assert (web["kind"], web["selector"]) == (
        "NetworkPolicy",
        '(app == "web" && projectcalico.org/namespace == "prod")',
    )


def test_show_table_has_the_documented_columns(tmp_path, monkeypatch, capsys):
    code, out, _ = flowstage(monkeypatch, capsys, "policies", "show", str(write(tmp_path, VALID)))
    header = out.splitlines()[1]
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "tier",
        "order",
        "name",
        "kind",
        "types",
        "selector",
        "staged",
    ]
    assert "security (100, Deny)" in out and "StagedNetworkPolicy" in out


def test_show_rejects_an_unknown_set_as_a_usage_error(tmp_path, monkeypatch, capsys):
    code, _, err = flowstage(
        monkeypatch, capsys, "policies", "show", str(write(tmp_path, VALID)), "--set", "future"
    )
    assert code == 2 and "choose one of all, current, proposed, pending" in err and "Traceback" not in err
