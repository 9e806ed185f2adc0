"""The report queries: discovering `queries/*.sql`, reading each file's header (question, columns), running it.

A query's parameters are bound values (`$top`), never pasted into SQL text; a file is one question.

Header comment of a query file: `-- Question: …` (first sentence: the question; the rest of the paragraph: how
to read the answer), `-- Columns:` with one `--   name  meaning` line per column, and optional lines
`-- Parameter: $name — …`, `-- Show: col, col, …` (the columns a terminal or Markdown table shows; JSON, CSV
and HTML carry every column) and `-- Chart: bars|matrix|timeline` (how the HTML report draws it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from flowstage.errors import FlowstageError, UsageError
from flowstage.interrupt import interruptible

QUERIES_DIR = Path(__file__).resolve().parents[2] / "queries"

# The order a full report shows its sections in: the answer first, then the evidence.
REPORT_ORDER: tuple[str, ...] = (
    "would_break",
    "would_break_by_source",
    "lockout_risk",
    "staged_policies",
    "safety_net",
    "newly_allowed",
    "unknown_verdicts",
    "fidelity",
    "would_break_matrix",
    "would_break_timeline",
)

_COLUMN_LINE = re.compile(r"^ {2,4}(\$?[A-Za-z_][A-Za-z0-9_]*) {2,}(\S.*)$")
_CONTINUATION = re.compile(r"^ {5,}(\S.*)$")


class QueryError(FlowstageError):
    """A report query failed: names the file and says what DuckDB objected to."""


@dataclass(frozen=True)
class Query:
    """One `queries/<name>.sql` file and what its header comment says about it."""

    name: str
    path: Path
    sql: str
    question: str  # the question the file answers (its first sentence)
    description: str  # the rest of the header's first paragraph
    column_docs: dict[str, str] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()  # bound parameter names used in the SQL (`$top` → "top")
    chart: str | None = None  # `bars`, `matrix`, `timeline`: how the HTML report draws it
    shown: tuple[str, ...] = ()  # columns a terminal / Markdown table shows; empty = all

    def bind(self, **values: Any) -> dict[str, Any]:
        """Parameter values for this query: only the names it uses, missing ones as NULL."""
        return {name: values.get(name) for name in self.parameters}


def _header(sql: str) -> list[str]:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].removeprefix(" ") if line.startswith("-- ") else line[2:])
    return lines


def parse_query(path: Path) -> Query:
    """Read one query file; a file without a `-- Question:` header is refused with the file named."""
    try:
        sql = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise QueryError(f"{path}: cannot read the query file ({exc.strerror})") from exc
    header = _header(sql)
    if not header or not header[0].startswith("Question:"):
        raise QueryError(
            f"{path}: a report query must start with a comment `-- Question: …` saying what it answers, "
            "then one `--   column  meaning` line per column"
        )
    paragraph: list[str] = []
    for line in header:
        if not line.strip():
            break
        paragraph.append(line.strip())
    text = " ".join(paragraph).removeprefix("Question:").strip()
    end = text.find("?")
    question, description = (text[: end + 1], text[end + 1 :].strip()) if end >= 0 else (text, "")

    columns: dict[str, str] = {}
    chart = None
    shown: tuple[str, ...] = ()
    in_columns = False
    current: str | None = None
    for line in header:
        stripped = line.strip()
        if stripped == "Columns:":
            in_columns, current = True, None
            continue
        if stripped.startswith("Chart:"):
            chart = stripped.removeprefix("Chart:").strip() or None
        if stripped.startswith("Show:"):
            shown = tuple(c.strip() for c in stripped.removeprefix("Show:").split(",") if c.strip())
        if not in_columns:
            continue
        match = _COLUMN_LINE.match(line)
        if match:
            current = match.group(1)
            columns[current] = match.group(2).strip()
            continue
        cont = _CONTINUATION.match(line)
        if cont and current is not None:
            columns[current] += " " + cont.group(1).strip()
            continue
        in_columns, current = False, None

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"{path}: not valid SQL ({str(exc).splitlines()[0]})") from exc
    parameters = tuple(dict.fromkeys(p.name for p in tree.find_all(exp.Placeholder) if p.name))
    return Query(
        name=path.stem,
        path=path,
        sql=sql.strip().rstrip(";"),
        question=question,
        description=description,
        column_docs=columns,
        parameters=parameters,
        chart=chart,
        shown=shown,
    )


def discover(directory: Path = QUERIES_DIR) -> dict[str, Query]:
    """Every query in `directory`, in report order (known reports first, then the others by name)."""
    if not directory.is_dir():
        raise QueryError(f"{directory}: the queries folder is missing")
    found = {p.stem: p for p in directory.glob("*.sql")}
    ordered = [n for n in REPORT_ORDER if n in found] + sorted(n for n in found if n not in REPORT_ORDER)
    return {name: parse_query(found[name]) for name in ordered}


def find(name: str, directory: Path = QUERIES_DIR) -> Query:
    """One query by name (`would_break` or `would_break.sql`); an unknown name lists the known ones."""
    stem = Path(name).name.removesuffix(".sql")
    path = directory / f"{stem}.sql"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.sql")))
        raise UsageError(f"no report named {name!r}; known reports: {known}")
    return parse_query(path)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.sql)?$")


def resolve_named(text: str, directory: Path = QUERIES_DIR) -> Query | None:
    """The query file `text` names (`would_break` or `would_break.sql`), or None when `text` is SQL, not a name.

    For `flowstage sql NAME`: run `query.sql` with `params=query.bind(top=…)`, never with values pasted in.
    """
    name = text.strip()
    if not _NAME.match(name):
        return None
    path = directory / f"{name.removesuffix('.sql')}.sql"
    return parse_query(path) if path.is_file() else None


def run(con: duckdb.DuckDBPyConnection, query: Query, **parameters: Any) -> pa.Table:
    """Run one query with bound parameters and return its rows as an Arrow table."""
    try:
        return interruptible(con, lambda: con.sql(query.sql, params=query.bind(**parameters)).to_arrow_table())
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise QueryError(f"{query.path.name}: the query failed: {first}") from exc


def scalar_summary(con: duckdb.DuckDBPyConnection, query: Query, select: str, **parameters: Any) -> tuple:
    """Aggregate over a query's full result (e.g. `count(*), sum(flows)`), with its parameters still bound."""
    sql = f"SELECT {select} FROM (\n{query.sql}\n) AS report"
    try:
        row = interruptible(con, lambda: con.execute(sql, query.bind(**parameters)).fetchone())
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise QueryError(f"{query.path.name}: the query failed: {first}") from exc
    return tuple(row) if row is not None else ()
