"""Helpers for the policy tests: write YAML into a temporary directory and load it as a user would."""

from __future__ import annotations

import textwrap
from pathlib import Path

from flowstage.policy.loader import PolicyBundle, load_policies
from flowstage.policy.model import Policy
from flowstage.policy.validate import Problem


def write(directory: Path, text: str, name: str = "policies.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_text(directory: Path, text: str, name: str = "policies.yaml") -> PolicyBundle:
    return load_policies([write(directory, text, name)])


def only_policy(bundle: PolicyBundle) -> Policy:
    assert not bundle.errors, "\n".join(map(str, bundle.errors))
    assert len(bundle.policies) == 1, bundle.policies
    return bundle.policies[0]


def messages(problems: list[Problem]) -> list[str]:
    return [p.message for p in problems]
