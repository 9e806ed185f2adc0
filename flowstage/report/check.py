"""The promotion gate: judge a report's figures against thresholds (would-break flows, unknown verdicts, lockout
risk), say why it fails, and write the result as JUnit XML for CI systems.

`check` and `report` share one computation, so the gate and the report never disagree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import duckdb

from flowstage.errors import FlowstageError
from flowstage.report.build import Report, build_report, format_bytes, open_replay
from flowstage.report.render import display_table

CHECK_REPORTS = ("would_break", "would_break_by_source", "lockout_risk", "unknown_verdicts", "staged_policies")
_EVIDENCE_ROWS = 5


class CheckFailed(FlowstageError):
    """Promotion is not safe by the thresholds given: exit 1, with the reasons."""

    exit_code = 1


@dataclass(frozen=True)
class Thresholds:
    max_would_break: int = 0  # flows (as in the would-break report) that may break
    max_unknown: int | None = None  # flows whose verdict after promotion is unknown; None = no limit
    allow_lockout: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    """One check: its name, whether it passed, one line saying why, and the rows behind it."""

    name: str
    passed: bool
    message: str
    evidence: tuple[str, ...] = field(default=())  # a few lines naming the worst offenders
    skipped: bool = False


@dataclass(frozen=True)
class CheckResult:
    outcomes: tuple[CheckOutcome, ...]
    verdict: str
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def failures(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.passed]


def _evidence(report: Report, name: str) -> tuple[str, ...]:
    section = report.sections.get(name)
    if section is None or section.table.num_rows == 0:
        return ()
    headers, cells = display_table(section.shown.slice(0, _EVIDENCE_ROWS))
    lines = [", ".join(f"{h}={c}" for h, c in zip(headers, row, strict=True) if h != "rank") for row in cells]
    if section.total_rows > _EVIDENCE_ROWS:
        lines.append(f"… and {section.total_rows - _EVIDENCE_ROWS:,} more (flowstage report {name})")
    return tuple(lines)


def evaluate(report: Report, thresholds: Thresholds) -> CheckResult:
    """Judge a report built with at least CHECK_REPORTS; thresholds are inclusive (≤ passes)."""
    s = report.summary
    outcomes: list[CheckOutcome] = []

    flows = s.would_break_flows or 0
    limit = thresholds.max_would_break
    if flows <= limit:
        message = f"{flows:,} would-break flows (limit {limit:,})"
        if flows:
            message += f" to {s.would_break_services or 0:,} services"
        outcomes.append(CheckOutcome("would-break", True, message))
    else:
        outcomes.append(
            CheckOutcome(
                "would-break",
                False,
                f"promotion would break {flows:,} flows ({format_bytes(s.would_break_bytes or 0)}) to "
                f"{s.would_break_services or 0:,} services from {s.would_break_clients or 0:,} clients; "
                f"the limit is {limit:,} (--max-would-break)",
                _evidence(report, "would_break"),
            )
        )

    unknown = s.unknown_flows or 0
    if thresholds.max_unknown is None:
        outcomes.append(
            CheckOutcome("unknown-verdicts", True, f"{unknown:,} flows undecided after promotion (no limit set)",
                         skipped=True)
        )
    elif unknown <= thresholds.max_unknown:
        outcomes.append(
            CheckOutcome("unknown-verdicts", True, f"{unknown:,} flows undecided (limit {thresholds.max_unknown:,})")
        )
    else:
        outcomes.append(
            CheckOutcome(
                "unknown-verdicts",
                False,
                f"{unknown:,} flows cannot be judged after promotion; the limit is {thresholds.max_unknown:,} "
                "(--max-unknown); the unknown-verdicts report says which input would decide them",
                _evidence(report, "unknown_verdicts"),
            )
        )

    risks = s.lockout_risks or 0
    certain = s.lockout_certain or 0
    if risks == 0:
        outcomes.append(CheckOutcome("lockout-risk", True, "no would-be deny touches cluster-critical traffic"))
    elif thresholds.allow_lockout:
        outcomes.append(
            CheckOutcome("lockout-risk", True, f"{risks:,} lockout risks accepted (--allow-lockout)",
                         _evidence(report, "lockout_risk"))
        )
    else:
        possible = risks - certain
        detail = f"{certain:,} certain" + (f", {possible:,} possible (verdict unknown)" if possible else "")
        outcomes.append(
            CheckOutcome(
                "lockout-risk",
                False,
                f"{risks:,} lockout risks ({detail}): promotion would deny traffic that keeps the cluster alive; "
                "pass --allow-lockout to accept them",
                _evidence(report, "lockout_risk"),
            )
        )
    return CheckResult(outcomes=tuple(outcomes), verdict=s.verdict())


def run_check(con: duckdb.DuckDBPyConnection, thresholds: Thresholds) -> tuple[CheckResult, Report]:
    """Build the reports the gate needs and judge them."""
    started = dt.datetime.now(dt.UTC)
    report = build_report(con, names=list(CHECK_REPORTS), top=_EVIDENCE_ROWS)
    result = evaluate(report, thresholds)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return CheckResult(outcomes=result.outcomes, verdict=result.verdict, seconds=seconds), report


def junit_xml(result: CheckResult, suite: str = "flowstage check") -> str:
    """JUnit XML: one testsuite, one testcase per check; failures carry the reason and the evidence."""
    failures = len(result.failures)
    skipped = sum(1 for o in result.outcomes if o.skipped)
    root = ET.Element(
        "testsuites", name=suite, tests=str(len(result.outcomes)), failures=str(failures), errors="0",
        time=f"{result.seconds:.3f}",
    )
    suite_el = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(result.outcomes)), failures=str(failures), errors="0",
        skipped=str(skipped), time=f"{result.seconds:.3f}",
        timestamp=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )
    for outcome in result.outcomes:
        case = ET.SubElement(suite_el, "testcase", classname="flowstage.check", name=outcome.name, time="0")
        if not outcome.passed:
            failure = ET.SubElement(case, "failure", message=outcome.message, type=outcome.name)
            failure.text = "\n".join([outcome.message, *outcome.evidence])
        elif outcome.skipped:
            ET.SubElement(case, "skipped", message=outcome.message)
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join([outcome.message, *outcome.evidence])
    properties = ET.SubElement(suite_el, "properties")
    ET.SubElement(properties, "property", name="verdict", value=result.verdict)
    ET.indent(root)
    # Values from logs can hold characters XML 1.0 cannot carry; drop them rather than write a broken file.
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    text = "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"


def write_junit(result: CheckResult, path: Path) -> None:
    try:
        path.write_text(junit_xml(result), encoding="utf-8")
    except OSError as exc:
        raise FlowstageError(f"{path}: cannot write the JUnit file ({exc.strerror})") from exc


def gate_promotion(store: Path, paths: Sequence[Path], force: bool = False,
                   thresholds: Thresholds | None = None) -> list[str]:
    """The check `flowstage promote --store` runs first: the store's replay must have judged these very files and
    the check must pass. Raises CheckFailed with every reason unless `force`; returns the reasons it overrode."""
    con = open_replay(store)
    try:
        stale = unreplayed_files(con, paths)
        result, _ = run_check(con, thresholds or Thresholds())
    finally:
        con.close()
    reasons = [f"{o.name}: {o.message}" for o in result.failures]
    if stale:
        names = ", ".join(str(p) for p in stale)
        reasons.insert(
            0, f"the replay in {store} did not judge {names} as it is now; run flowstage replay --store {store} "
            "with these policies again"
        )
    if reasons and not force:
        lines = "\n".join(f"  {r}" for r in reasons)
        raise CheckFailed(f"refusing to promote, the check on {store} fails:\n{lines}\npass --force to promote anyway")
    return reasons


def replayed_inputs(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """sha256 → path of every policy file the store's replay read."""
    rows = con.execute("SELECT inputs FROM replay_info").fetchall()
    found: dict[str, str] = {}
    for (inputs,) in rows:
        for item in inputs or []:
            if item.get("role") == "policies":
                found[item["sha256"]] = item["path"]
    return found


def unreplayed_files(con: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> list[Path]:
    """Policy files (or files inside folders) whose current content the store's replay did not judge."""
    known = replayed_inputs(con)
    missing = []
    for path in _members(paths):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in known:
            missing.append(path)
    return missing


def _members(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))
        elif path.is_file():
            found.append(path)
    return found
