"""Hostile policy files: invalid YAML, alias bombs, Python tags, wrong types, huge selectors, deep nesting.

Each gets an error naming the file (and line, object and field where there is one), in bounded memory; nothing
runs code from a tag, and `flowstage policies lint` reports them all without a traceback or a hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowstage.policy.loader import load_policies

MEMORY_LIMIT = 64 * 1024 * 1024  # bytes of Python allocations loading one hostile file may peak at
TIMEOUT = 300  # seconds for linting all of them in one process: running out of it is a hang


def gnp(spec: str, name: str = "p", kind: str = "GlobalNetworkPolicy", api: str = "projectcalico.org/v3") -> str:
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n{spec}"


def knp(spec: str) -> str:
    return f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: web\n  namespace: shop\nspec:\n{spec}"


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The 'billion laughs': each level repeats the one before `width` times."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Hostile:
    name: str  # file name; the suffix decides JSON or YAML
    text: str | bytes
    says: str  # in the error message
    line: int | None = None  # line the error names
    where: str = ""  # object and field the error names, e.g. "GlobalNetworkPolicy p (document 1) spec.order"


MARKER = "flowstage-tag-ran"  # a Python tag that ran would create this file next to the policies

HOSTILE = [
    # --- invalid YAML -------------------------------------------------------------------------------------------
    Hostile("unclosed-flow.yaml", gnp("  selector: all()\n  types: [Ingress\n"), "not valid YAML", 9),
    Hostile("tab-indent.yaml", gnp("\tselector: all()\n"), "not valid YAML", 7),
    Hostile("unclosed-quote.yaml", gnp('  selector: "all()\n  order: 1\n'), "not valid YAML"),
    Hostile("bad-indent.yaml", gnp("  selector: all()\n order: 1\n"), "not valid YAML", 8),
    Hostile("undefined-alias.yaml", gnp("  selector: *nowhere\n"), "not valid YAML", 7),
    Hostile("colon-soup.yaml", "a: b: c: d\n", "not valid YAML", 1),
    Hostile("nul-byte.yaml", gnp("  selector: all()\x00\n"), "not valid YAML"),
    Hostile("binary.yaml", bytes(range(256)) * 4, "not UTF-8"),
    Hostile("utf-16.yaml", gnp("  selector: all()\n").encode("utf-16"), "not UTF-8"),
    Hostile("truncated.json", '{"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {',
            "not valid JSON", 1),
    # --- expansion and nesting ----------------------------------------------------------------------------------
    Hostile("alias-bomb.yaml", alias_bomb(), "alias bomb"),
    Hostile("alias-bomb-in-policy.yaml", alias_bomb(8) + "---\n" + gnp("  selector: all()\n  x: *l7\n"), "alias bomb"),
    Hostile("merge-bomb.yaml", "m0: &m0 {" + ", ".join(f"k{i}: v" for i in range(20)) + "}\n"
            + "".join(f"m{i}: &m{i} {{<<: *m{i - 1}, x{i}: [*m{i - 1}, *m{i - 1}]}}\n" for i in range(1, 14)),
            "alias bomb"),
    Hostile("self-alias.yaml", "a: &a [1, *a]\n", "(a cycle)", 1),
    Hostile("deep-yaml.yaml", "a: " + "[" * 10_000 + "]" * 10_000 + "\n", "nesting depth", 1),
    Hostile("deep-yaml-block.yaml", "".join("  " * i + f"k{i}:\n" for i in range(1_500)) + "  " * 1_500 + "v: 1\n",
            "exceeded maximum nesting depth"),
    Hostile("deep-json.json", "[" * 100_000 + "]" * 100_000, "nests more than 100 levels"),
    Hostile("deep-json-in-yaml.yaml", '{"a":' * 100_000 + "1" + "}" * 100_000, "nests more than 100 levels"),
    # --- tags that would run code in an unsafe loader ----------------------------------------------------------
    Hostile("python-apply.yaml", f"!!python/object/apply:os.system ['touch {MARKER}']\n", "unsupported YAML tag", 1),
    Hostile("python-new.yaml", f"!!python/object/new:subprocess.Popen [[touch, {MARKER}]]\n",
            "unsupported YAML tag !!python/object/new:subprocess.Popen", 1),
    Hostile("python-name.yaml", gnp("  selector: !!python/name:os.system\n"), "unsupported YAML tag", 7),
    Hostile("python-module.yaml", gnp("  selector: !!python/module:os\n"), "unsupported YAML tag", 7),
    Hostile("python-object.yaml", gnp("  order: !!python/object:os._wrap_close {}\n"), "unsupported YAML tag", 7),
    Hostile("binary-tag.yaml", gnp("  selector: !!binary YWxsKCk=\n"), "unsupported YAML tag !!binary", 7),
    Hostile("set-tag.yaml", gnp("  types: !!set {Ingress, Egress}\n"), "unsupported YAML tag !!set", 7),
    Hostile("custom-tag.yaml", gnp("  selector: !Ref all\n"), "unsupported YAML tag !Ref", 7),
    # --- wrong types ---------------------------------------------------------------------------------------------
    Hostile("spec-list.yaml", gnp("  - all()\n"), "expected a mapping", 6, "GlobalNetworkPolicy p (document 1) spec"),
    Hostile("metadata-string.yaml", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: p\n",
            "needs metadata with a name", 3),
    Hostile("selector-number.yaml", gnp("  selector: 5\n"), "expected", 7, "GlobalNetworkPolicy p (document 1) spec.selector"),
    Hostile("order-text.yaml", gnp("  order: first\n"), "expected a number", 7, "GlobalNetworkPolicy p (document 1) spec.order"),
    Hostile("ingress-mapping.yaml", gnp("  ingress: {action: Allow}\n"), "expected a list of rules", 7,
            "GlobalNetworkPolicy p (document 1) spec.ingress"),
    Hostile("action-list.yaml", gnp("  ingress:\n  - action: [Allow]\n"), "unknown action", 8,
            "GlobalNetworkPolicy p (document 1) spec.ingress[0].action"),
    Hostile("nets-string.yaml", gnp("  ingress:\n  - action: Allow\n    source:\n      nets: 10.0.0.0/8\n"), "expected", 10,
            "GlobalNetworkPolicy p (document 1) spec.ingress[0].source.nets"),
    Hostile("port-object.yaml", gnp("  ingress:\n  - action: Allow\n    protocol: TCP\n    destination:\n"
                                    "      ports: [{from: 1}]\n"), "a port must be", 11,
            "GlobalNetworkPolicy p (document 1) spec.ingress[0].destination.ports[0]"),
    Hostile("types-string.yaml", gnp("  types: Ingress\n"), "expected", 7, "GlobalNetworkPolicy p (document 1) spec.types"),
    Hostile("kind-number.yaml", "apiVersion: projectcalico.org/v3\nkind: 5\nmetadata: {name: p}\n",
            "kind must be text", 2, "object p (document 1) kind"),
    Hostile("k8s-podselector-string.yaml", knp("  podSelector: app=web\n"), "expected", 7,
            "KubernetesNetworkPolicy shop/web (document 1) spec.podSelector"),
    Hostile("k8s-cidr-number.yaml", knp("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 5}\n"), "cidr", 10,
            "KubernetesNetworkPolicy shop/web (document 1) spec.ingress[0].from[0].ipBlock.cidr"),
    Hostile("order-infinite.yaml", gnp("  order: .inf\n"), "order", 7, "GlobalNetworkPolicy p (document 1) spec.order"),
    Hostile("tier-order-text.yaml", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\nspec: {order: high}\n",
            "expected a number", 4, "Tier t (document 1) spec.order"),
    # --- huge selectors ------------------------------------------------------------------------------------------
    Hostile("selector-100k.yaml", gnp("  selector: 'app == \"" + "x" * 100_000 + "\"'\n"), "selector too long", 7,
            "GlobalNetworkPolicy p (document 1) spec.selector"),
    Hostile("selector-100k-terms.yaml", gnp("  selector: '" + " && ".join(["has(a)"] * 15_000) + "'\n"),
            "selector too long", 7),
    Hostile("parens-10k.yaml", gnp("  selector: '" + "(" * 10_000 + "all()" + ")" * 10_000 + "'\n"),
            "nested too deeply", 7, "GlobalNetworkPolicy p (document 1) spec.selector"),
    Hostile("parens-10k-unclosed.yaml", gnp("  selector: '" + "(" * 10_000 + "all()'\n"), "nested too deeply", 7),
    Hostile("rule-selector-parens.yaml", gnp("  ingress:\n  - action: Allow\n    source:\n      selector: '"
                                             + "(" * 10_000 + "has(a)" + ")" * 10_000 + "'\n"), "nested too deeply", 10,
            "GlobalNetworkPolicy p (document 1) spec.ingress[0].source.selector"),
    Hostile("namespace-selector-100k.yaml", gnp("  namespaceSelector: '" + "a == \"b\" || " * 9_000 + "all()'\n"),
            "selector too long", 7),
]


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-policies")
    for case in HOSTILE:
        data = case.text.encode() if isinstance(case.text, str) else case.text
        (folder / case.name).write_bytes(data)
    return folder


@pytest.mark.parametrize("case", HOSTILE, ids=lambda case: case.name)
def test_each_hostile_file_gets_an_error_naming_file_line_and_object(case: Hostile, hostile_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(hostile_dir)  # where a Python tag that ran would touch its marker
    path = hostile_dir / case.name
    tracemalloc.start()
    try:
        bundle = load_policies([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    errors = [p for p in bundle.errors if case.says in str(p)]
    assert errors, [str(p)[:300] for p in bundle.problems]
    first = errors[0]
    assert str(first).startswith(f"{path}:" if case.line is None else f"{path}:{case.line}: error: ")
    if case.where:
        assert f"error: {case.where}: " in str(first)
    assert not bundle.policies and not bundle.tiers
    assert peak < MEMORY_LIMIT
    assert not (hostile_dir / MARKER).exists()


def test_lint_reports_every_hostile_file_without_a_traceback(hostile_dir: Path):
    result = subprocess.run([sys.executable, "-m", "flowstage", "--quiet", "policies", "lint", str(hostile_dir)],
                            capture_output=True, text=True, timeout=TIMEOUT, cwd=hostile_dir,
                            env={**os.environ, "COLUMNS": "100000"})
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    for case in HOSTILE:
        assert f"{hostile_dir / case.name}:" in result.stdout, case.name
    assert f"{len(HOSTILE)} files" in result.stderr
    assert not (hostile_dir / MARKER).exists()


def test_good_objects_next_to_hostile_ones_still_load(tmp_path: Path):
    policies = tmp_path / "policies.yaml"
    policies.write_text(gnp("  selector: all()\n  order: first\n", name="broken") + "---\n"
                        + gnp("  selector: all()\n  ingress:\n  - action: Allow\n", name="fine") + "---\n"
                        + "!!python/object/apply:os.system ['true']\n")
    bundle = load_policies([policies])
    assert [p.name for p in bundle.policies] == ["fine"]
    messages = [str(p) for p in bundle.errors]
    assert any("GlobalNetworkPolicy broken (document 1) spec.order" in m for m in messages)
    assert any("unsupported YAML tag" in m for m in messages)


def test_promote_refuses_a_file_with_a_hostile_document(tmp_path: Path):
    staged = ("apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata:\n  name: default.p\n"
              "spec:\n  tier: default\n  selector: all()\n  stagedAction: Set\n  ingress:\n  - action: Allow\n")
    for name, hostile in (("bomb.yaml", alias_bomb()),
                          ("tag.yaml", f"!!python/object/apply:os.system ['touch {MARKER}']\n")):
        (tmp_path / name).write_text(staged + "---\n" + hostile)
        result = subprocess.run([sys.executable, "-m", "flowstage", "--quiet", "promote", name, "-o", "out"],
                                capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert f"{name}:12: error: (document 2)" in result.stdout + result.stderr
        assert not (tmp_path / "out").exists() and not (tmp_path / MARKER).exists()
