"""Rendering a verdict and its evaluation trace for people: a one-line summary, plain text, and a rich table.

Trace details carry labels and names from flow logs, so the rich form escapes every value.
"""

from __future__ import annotations

from rich.table import Table

from flowstage.console import escape
from flowstage.policy.traffic import PROFILE_TIER, Outcome, TraceStep, Verdict

_STYLE = {
    "matched": "bold",
    "no_match": "dim",
    "unknown": "yellow",
    "assumed": "yellow",
    "skipped": "dim",
    "end_of_tier": "bold",
    "verdict": "bold",
}
_OUTCOME_STYLE = {Outcome.ALLOW: "green", Outcome.DENY: "red", Outcome.UNKNOWN: "yellow"}


def verdict_summary(verdict: Verdict) -> str:
    """E.g. `deny by end of tier default (trigger sgnp:backend-lockdown-staged)` or `unknown (dest_ip_unknown)`."""
    if verdict.outcome is Outcome.UNKNOWN:
        where = f" at {_decider(verdict)}" if verdict.policy or verdict.tier else ""
        return f"unknown ({verdict.reason.value if verdict.reason else '?'}){where}"
    return f"{verdict.outcome.value} by {_decider(verdict)}"


def _decider(verdict: Verdict) -> str:
    if verdict.policy is None and verdict.tier is None:
        return "default (no policy stage applies)"
    if verdict.tier is None:
        return verdict.policy or "?"
    policy = f"{verdict.policy_kind}:{verdict.policy}" if verdict.policy_kind else (verdict.policy or "?")
    staged = ", staged" if verdict.staged else ""
    if verdict.tier == PROFILE_TIER:
        return f"profile {policy} rule {verdict.rule}"
    if verdict.rule == -1:
        return f"end of tier {verdict.tier} (default action; trigger {policy}{staged})"
    return f"tier {verdict.tier} {policy} rule {verdict.rule}{staged}"


def _where(step: TraceStep) -> str:
    parts = [p for p in (step.tier, step.policy) if p]
    if step.rule is not None:
        parts.append(f"rule {step.rule}" if step.rule >= 0 else "end of tier")
    return " / ".join(parts)


def format_trace(verdict: Verdict, title: str | None = None) -> str:
    """Plain text, one line per step, indented by depth (tier > policy > rule)."""
    lines = [f"{title}: {verdict_summary(verdict)}" if title else verdict_summary(verdict)]
    for step in verdict.trace:
        depth = 1 if step.policy is None else 2 if step.rule is None else 3
        direction = f"[{step.direction.value.lower()}] " if step.direction is not None else ""
        lines.append(f"{'  ' * depth}{direction}{_where(step)}: {step.outcome}: {step.detail}")
    return "\n".join(lines)


def trace_table(verdict: Verdict, title: str | None = None) -> Table:
    """A rich table of the trace; every value from logs or policies is escaped."""
    style = _OUTCOME_STYLE[verdict.outcome]
    caption = escape(verdict_summary(verdict))
    table = Table(
        title=f"{escape(title)}: [{style}]{caption}[/]" if title else f"[{style}]{caption}[/]",
        show_lines=False,
        expand=False,
    )
    with_direction = any(step.direction is not None for step in verdict.trace)
    if with_direction:
        table.add_column("dir")
    table.add_column("tier")
    table.add_column("policy")
    table.add_column("rule", justify="right")
    table.add_column("step")
    table.add_column("why", overflow="fold")
    for step in verdict.trace:
        row = [
            escape(step.tier),
            escape(step.policy or ""),
            "" if step.rule is None else ("end" if step.rule == -1 else str(step.rule)),
            f"[{_STYLE.get(step.outcome, '')}]{escape(step.outcome)}[/]" if _STYLE.get(step.outcome) else step.outcome,
            escape(step.detail),
        ]
        if with_direction:
            row.insert(0, step.direction.value.lower() if step.direction else "")
        table.add_row(*row)
    return table
