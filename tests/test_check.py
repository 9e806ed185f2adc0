"""`flowstage check`: the promotion gate for CI. Exit 0 when promotion is safe by the thresholds, 1 when it is
not (saying why), 2 on bad input; `--junit` writes one testcase per check.

The cluster: the lesson's frontend → backend (10 flows would break), the backend's DNS lookups (20 flows)
that a staged `dns-lockdown-staged` would deny — a lockout risk — and the frontend's lookups (8 flows) whose
verdict needs namespace labels nobody supplied.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from report_stores import LESSON, build_store, felix, pod, profile
from typer.testing import CliRunner

from flowstage.cli import app, main
from flowstage.ingest import ingest
from flowstage.report import CheckFailed, Thresholds, evaluate, open_replay, run_check
from flowstage.store import Store

FRONTEND = pod("prod", "frontend", env="prod")
BACKEND = pod("prod", "backend", "5c8bd9d4f", env="prod")
COREDNS = pod("kube-system", "coredns", "5d78c9869d", **{"k8s-app": "kube-dns"})

RECORDS = [
    felix(FRONTEND, BACKEND, reporter="src", port=8080, flows=10, enforced=[profile("prod")]),
    felix(FRONTEND, BACKEND, reporter="dst", port=8080, flows=10, enforced=[profile("prod")]),
    felix(BACKEND, COREDNS, reporter="dst", port=53, proto="udp", flows=20, enforced=[profile("kube-system")]),
    felix(FRONTEND, COREDNS, reporter="dst", port=53, proto="udp", flows=8, enforced=[profile("kube-system")]),
]

POLICIES = LESSON + """
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: dns-lockdown-staged
spec:
  selector: k8s-app == 'kube-dns'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: UDP
    source:
      selector: app == 'frontend'
      namespaceSelector: team == 'web'
    destination:
      ports: [53]
"""

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("check"), RECORDS, POLICIES)


@pytest.fixture(scope="module")
def report(store: Path):
    con = open_replay(store)
    try:
        yield run_check(con, Thresholds())[1]
    finally:
        con.close()


def outcomes(result) -> dict[str, bool]:
    return {o.name: o.passed for o in result.outcomes}


def test_default_thresholds_fail_on_any_breakage_and_on_lockout(store):
    result = runner.invoke(app, ["check", "--store", str(store)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "FAIL would-break: promotion would break 30 flows" in out
    assert "the limit is 0 (--max-would-break)" in out
    assert "destination=kube-system/coredns, port=53/udp, flows=20" in out
    assert "FAIL lockout-risk: 2 lockout risks (1 certain, 1 possible (verdict unknown))" in out
    assert "ok unknown-verdicts: 8 flows undecided after promotion (no limit set)" in out
    assert out.endswith("promotion is not safe")


def test_thresholds_that_accept_the_breakage_pass_with_exit_0(store):
    result = runner.invoke(app, ["check", "--store", str(store), "--max-would-break", "30", "--allow-lockout"])
    assert result.exit_code == 0, result.output
    assert "promotion is safe by these thresholds" in result.output
    scripted = runner.invoke(app, ["check", "--store", str(store), "--max-would-break", "30", "--allow-lockout",
                                   "--json"])
    payload = json.loads(scripted.output)
    assert (scripted.exit_code, payload["passed"]) == (0, True)
    assert [c["name"] for c in payload["checks"]] == ["would-break", "unknown-verdicts", "lockout-risk"]


def test_limits_are_inclusive_and_one_flow_over_fails(report):
    assert outcomes(evaluate(report, Thresholds(max_would_break=30, allow_lockout=True))) == {
        "would-break": True, "unknown-verdicts": True, "lockout-risk": True,
    }
    result = evaluate(report, Thresholds(max_would_break=29, allow_lockout=True))
    assert (outcomes(result)["would-break"], result.exit_code) == (False, 1)


def test_max_unknown_limits_the_flows_replay_could_not_judge(report):
    assert outcomes(evaluate(report, Thresholds(max_would_break=30, max_unknown=8, allow_lockout=True))) == {
        "would-break": True, "unknown-verdicts": True, "lockout-risk": True,
    }
    failed = evaluate(report, Thresholds(max_would_break=30, max_unknown=7, allow_lockout=True))
    assert failed.exit_code == 1
    [unknown] = failed.failures
    assert unknown.message.startswith("8 flows cannot be judged after promotion; the limit is 7")


def test_check_uses_the_numbers_of_the_report(report):
    summary = report.summary
    assert (summary.would_break_flows, summary.lockout_risks, summary.lockout_certain, summary.unknown_flows) == (
        30, 2, 1, 8,
    )


def test_junit_xml_has_one_testcase_per_check(store, tmp_path):
    junit = tmp_path / "check.xml"
    result = runner.invoke(app, ["check", "--store", str(store), "--max-unknown", "0", "--junit", str(junit)])
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "3", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"would-break", "unknown-verdicts", "lockout-risk"}
    failure = cases["would-break"].find("failure")
    assert failure.get("message").startswith("promotion would break 30 flows")
    assert "destination=prod/backend, port=8080/tcp, flows=10" in failure.text


def flowstage(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the real entry point (with its error handling) in-process; exit code and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        sys.argv = ["flowstage", *args]
        main()
    return exit_info.value.code, capsys.readouterr().err


def test_bad_input_exits_2_with_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", sys.argv[:])
    code, err = flowstage("check", "--store", str(tmp_path / "nowhere"), capsys=capsys)
    assert code == 2
    assert "no store at" in err and "Traceback" not in err

    log = tmp_path / "flows.log"
    log.write_text("", encoding="utf-8")
    ingest([str(log)], Store.open(tmp_path / "store", create=True))
    code, err = flowstage("check", "--store", str(tmp_path / "store"), capsys=capsys)
    assert code == 2
    assert "has no replay yet: run `flowstage replay" in " ".join(err.split())


def test_promote_refuses_when_the_check_fails_unless_forced(store, tmp_path):
    policies = store.parent / "policies.yaml"
    refused = runner.invoke(app, ["promote", str(policies), "--output", str(tmp_path / "out"), "--store", str(store)])
    assert isinstance(refused.exception, CheckFailed) and refused.exception.exit_code == 1
    assert "refusing to promote, the check on" in str(refused.exception)
    assert "would-break: promotion would break 30 flows" in str(refused.exception)
    assert not (tmp_path / "out").exists()

    # A policy file changed since the replay is not what the check judged; --force overrides and says so.
    edited = tmp_path / "policies.yaml"
    edited.write_text(policies.read_text() + "\n# edited after the replay\n", encoding="utf-8")
    forced = runner.invoke(app, ["promote", str(edited), "--output", str(tmp_path / "forced"), "--store", str(store),
                                 "--force"])
    assert forced.exit_code == 0, forced.output
    warnings = " ".join(forced.output.split())
    assert f"warning (--force): the replay in {store} did not judge {edited} as it is now" in warnings
    assert "warning (--force): lockout-risk: 2 lockout risks" in warnings
    assert (tmp_path / "forced" / "policies.yaml").is_file()


def test_a_replayed_store_with_nothing_to_break_passes(tmp_path):
    records = [felix(pod("prod", "backend", "5c8bd9d4f", env="prod"), COREDNS, reporter="src", port=53, proto="udp",
                     enforced=[profile("prod")])]
    store = build_store(tmp_path, records, LESSON)
    result = runner.invoke(app, ["check", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "would break none of the logged traffic" in " ".join(result.output.split())
