"""Explain: the whole evaluation trace of one stored flow under the current and proposed sets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from replay_helpers import LESSON_POLICIES, flow, hit, make_store, pod, profile_allow, write_policies

from flowstage.errors import FlowstageError
from flowstage.policy.traffic import Outcome
from flowstage.replay import explain, load_inputs, replay

FRONTEND = pod("prod", "frontend", env="prod")
BACKEND = pod("prod", "backend", env="prod", note="[red]from the log[/red]")
DATABASE = pod("prod", "database", env="prod")


@pytest.fixture
def replayed(tmp_path: Path):
    rows = [
        flow(FRONTEND, BACKEND, reporter="src", line=1, file="/var/log/calico/flows.log"),
        flow(FRONTEND, BACKEND, reporter="dst", line=2, file="/var/log/calico/flows.log",
             enforced_policies=[profile_allow("prod")],
             pending_policies=[hit(0, "default", "sgnp", "backend-lockdown-staged", "deny", -1)]),
        flow(BACKEND, DATABASE, reporter="dst", line=3, file="/var/log/calico/flows.log"),
    ]
    store = make_store(tmp_path / "store", rows)
    policies = write_policies(tmp_path / "lesson.yaml", LESSON_POLICIES)
    replay(store, load_inputs([policies]))
    return store, policies


def test_explain_evaluates_the_row_under_each_set_with_a_trace(replayed):
    store, _ = replayed
    result = explain(store, line="calico/flows.log:2")

    assert result.row_id == "/var/log/calico/flows.log:2"
    assert set(result.verdicts) == {"current", "proposed", "pending"}
    current, proposed = result.verdicts["current"], result.verdicts["proposed"]
    assert (current.outcome, current.policy) == (Outcome.ALLOW, "kns.prod")
    assert (proposed.outcome, proposed.policy, proposed.rule) == (Outcome.DENY, "backend-lockdown-staged", -1)
    assert proposed.trace, "explain asks the engine for the full trace"
    assert any(step.policy == "backend-lockdown-staged" for step in proposed.trace)
    assert result.stored is not None
    assert (result.stored["current_verdict"], result.stored["proposed_verdict"]) == ("allow", "deny")


def test_explain_by_row_id_finds_the_same_row(replayed):
    store, _ = replayed
    result = explain(store, row_id="/var/log/calico/flows.log:3")
    assert result.verdicts["current"].policy == "database-allow-from-backend"
    assert "pending" not in result.verdicts  # the row logs no pending trace


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("flows.log", "expected FILE:LINE"),
        ("flows.log:0", "expected FILE:LINE"),
        ("other.log:2", "no stored row comes from line 2"),
        ("flows.log:99", "no stored row comes from line 99"),
    ],
)
def test_explain_says_clearly_when_the_line_names_no_row(replayed, line, message):
    store, _ = replayed
    with pytest.raises(FlowstageError, match=message):
        explain(store, line=line)


def test_explain_cli_prints_the_row_and_every_step_escaped(replayed):
    store, _ = replayed
    done = subprocess.run(
        [sys.executable, "-m", "flowstage", "explain", "--store", str(store.root), "--line",
         "/var/log/calico/flows.log:2"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "row /var/log/calico/flows.log:2" in out
    assert "current (dst row)" in out and "proposed (dst row)" in out and "pending (dst row)" in out
    assert "backend-lockdown-staged" in out
    assert "kns.prod" in out
    # A label value that looks like terminal markup is printed as it was logged.
    assert "[red]from the log[/red]" in out
    assert "stored by the last replay: current: allow by kns.prod rule 0, proposed: deny by " in out


def test_explain_cli_without_a_replay_asks_for_one(tmp_path):
    store = make_store(tmp_path / "store", [flow(FRONTEND, BACKEND, reporter="dst", line=1, file="/x/flows.log")])
    done = subprocess.run(
        [sys.executable, "-m", "flowstage", "explain", "--store", str(store.root), "--line", "/x/flows.log:1"],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "run `flowstage replay` first" in done.stderr
    assert "Traceback" not in done.stderr
