"""Reports over a replayed store: the SQL files in `queries/`, the verdict paragraph, rendering (terminal,
Markdown, JSON, CSV, HTML) and the promotion gate (`check`, JUnit XML).

Notebook use: `con = open_replay("store"); report = build_report(con, top=10); print(report.summary.verdict())`.
"""

from flowstage.report.build import (
    ReplayMissingError,
    Report,
    Section,
    Summary,
    build_report,
    open_replay,
)
from flowstage.report.check import (
    CheckFailed,
    CheckOutcome,
    CheckResult,
    Thresholds,
    evaluate,
    junit_xml,
    run_check,
)
from flowstage.report.queries import QUERIES_DIR, Query, QueryError, discover, find

__all__ = [
    "QUERIES_DIR",
    "CheckFailed",
    "CheckOutcome",
    "CheckResult",
    "Query",
    "QueryError",
    "ReplayMissingError",
    "Report",
    "Section",
    "Summary",
    "Thresholds",
    "build_report",
    "discover",
    "evaluate",
    "find",
    "junit_xml",
    "open_replay",
    "run_check",
]
