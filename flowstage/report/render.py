"""Rendering a report as terminal tables, Markdown, JSON or CSV (HTML lives in `flowstage.report.html`).

JSON shape (stable; `flowstage report --format json`):

    {
      "flowstage_report": 1,                      # version of this shape
      "summary": {"verdict": "<one paragraph>", "staged_policies": 2, "would_break_flows": 14,
                  "would_break_bytes": 20480, "would_break_services": 3, "would_break_clients": 4,
                  "lockout_risks": 1, "lockout_certain": 1, "unknown_flows": 0, "newly_allowed_flows": 0,
                  "safety_net_flows": 0, "safety_nets": [], "fidelity": 0.998, "replayed_rows": 1200,
                  "stale_rows": 0, "first_seen": "<ISO 8601>", "last_seen": "<ISO 8601>"},
      "replay": {"run_id": "…", "finished_at": "<ISO 8601>", "inputs": [{"role", "path", "sha256"}], …},
      "top": 20,                                  # rows kept per report (null: all)
      "reports": {
        "<name>": {"question": "…", "description": "…",
                   "columns": [{"name": "…", "type": "…", "description": "…"}],
                   "rows": [{"<column>": value, …}],  # numbers as numbers, times as ISO 8601 strings
                   "total_rows": 40, "truncated": true}
      }
    }

Summary figures are null when their report is absent. Every value from the logs is data, never markup: terminal
output goes through `console.escape`, Markdown is escaped for tables, HTML through `html.escape`.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from flowstage import console as fs_console
from flowstage.errors import UsageError
from flowstage.report.build import Report, Section, format_bytes

JSON_VERSION = 1
NONE = "—"
_ENDPOINT_PREFIXES = {"source": "source", "dest": "destination"}
_DECIDER_SUFFIXES = ("_tier", "_policy", "_rule", "_staged")


# --- values ------------------------------------------------------------------------------------------------


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts, with map columns (labels) as dicts rather than Arrow's list of key/value pairs."""
    maps = [f.name for f in table.schema if pa.types.is_map(f.type)]
    rows = table.to_pylist()
    for row in rows:
        for name in maps:
            if row[name] is not None:
                row[name] = dict(row[name])
    return rows


def json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def display_value(column: str, value: Any) -> str:
    """A value as a person reads it in a table: thousands separators, short times, human byte counts."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value.tzinfo else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int):
        if column == "bytes" or column.endswith("_bytes"):
            return format_bytes(value)
        if column in ("rank", "dest_port", "rule") or column.endswith("_rule") or column.endswith("_port"):
            return str(value)
        return f"{value:,}"
    if isinstance(value, float):
        if column == "share" or column.endswith("_share") or column == "fidelity":
            return f"{100 * value:.1f}%"
        return f"{value:,.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or NONE
    if isinstance(value, list | tuple):
        return ", ".join(display_value(column, v) for v in value)
    return " ".join(str(value).split())


def _decider(values: dict[str, Any], prefix: str) -> str:
    policy = values.get(f"{prefix}_policy")
    if policy is None:
        return NONE
    text = str(policy)
    tier = values.get(f"{prefix}_tier")
    if tier is not None:
        text = f"{tier}/{text}"
    rule = values.get(f"{prefix}_rule")
    if rule is not None:
        text += " end of tier" if rule == -1 else f" rule {rule}"
    if values.get(f"{prefix}_staged"):
        text += " (staged)"
    return text


def display_table(table: pa.Table) -> tuple[list[str], list[list[str]]]:
    """Headers and cell texts for a terminal or Markdown table.

    Columns that describe one thing are shown together: `X_namespace` + `X_workload` as `namespace/workload`,
    `dest_port` + `proto` as `8080/tcp`, and `P_tier` / `P_policy` / `P_rule` / `P_staged` as one decider.
    """
    names = table.column_names
    rows = table_rows(table)
    plan: list[tuple[str, Any]] = []
    used: set[str] = set()
    for name in names:
        if name in used:
            continue
        prefix = name.removesuffix("_namespace")
        if name.endswith("_namespace") and f"{prefix}_workload" in names:
            label = _ENDPOINT_PREFIXES.get(prefix, prefix)
            used.update({name, f"{prefix}_workload"})
            plan.append((label, lambda r, p=prefix: _endpoint(r.get(f"{p}_namespace"), r.get(f"{p}_workload"))))
            continue
        if name == "dest_port" and "proto" in names:
            used.update({"dest_port", "proto"})
            plan.append(("port", lambda r: _port(r.get("dest_port"), r.get("proto"))))
            continue
        stem = next((name.removesuffix(s) for s in _DECIDER_SUFFIXES if name.endswith(s)), None)
        if stem and f"{stem}_policy" in names and stem not in ("current", "proposed", "pending"):
            members = [f"{stem}{s}" for s in _DECIDER_SUFFIXES if f"{stem}{s}" in names]
            used.update(members)
            plan.append((stem, lambda r, p=stem: _decider(r, p)))
            continue
        used.add(name)
        plan.append((name, lambda r, n=name: display_value(n, r.get(n))))
    headers = [label for label, _ in plan]
    cells = [[render(row) for _, render in plan] for row in rows]
    return headers, cells


def _endpoint(namespace: Any, workload: Any) -> str:
    if workload is None and namespace is None:
        return NONE
    if namespace is None or namespace == "(none)":
        return str(workload)
    return f"{namespace}/{workload}" if workload is not None else str(namespace)


def _port(port: Any, proto: Any) -> str:
    if port is None:
        return str(proto) if proto is not None else NONE
    return f"{port}/{proto}" if proto is not None else str(port)


# --- terminal ----------------------------------------------------------------------------------------------


def title(section: Section) -> str:
    """A section's heading: its question, capitalised."""
    question = section.query.question
    return question[:1].upper() + question[1:]


def _caption(section: Section) -> str | None:
    if section.truncated:
        return f"top {section.table.num_rows} of {section.total_rows:,} rows (--top to change)"
    return None


def numeric_columns(table: pa.Table) -> set[str]:
    """Columns holding counts or measures, which read best right-aligned (ranks, ports and rules are labels)."""
    found = set()
    for f in table.schema:
        if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)) and not (
            f.name in ("rank", "dest_port") or f.name.endswith("_rule") or f.name.endswith("_port")
        ):
            found.add(f.name)
    return found


def section_table(section: Section) -> Table:
    shown = section.shown
    headers, cells = display_table(shown)
    numeric = numeric_columns(shown)
    esc = fs_console.escape
    table = Table(
        title=esc(title(section)),
        title_justify="left",
        caption=_caption(section),
        caption_justify="left",
        header_style="bold",
        expand=False,
    )
    for i, header in enumerate(headers):
        # Numbers, ports and ranks never wrap (their headers may); names fold when the terminal is narrow.
        short = header in numeric or header in ("rank", "port")
        table.add_column(
            esc(header),
            justify="right" if header in numeric else "left",
            overflow="fold",
            min_width=max((len(row[i]) for row in cells), default=1) if short else None,
        )
    for row in cells:
        table.add_row(*(esc(c) for c in row))
    return table


def write_terminal(report: Report, out: Console | None = None) -> None:
    out = out or fs_console.out
    out.print(Panel(fs_console.escape(report.summary.verdict()), title="verdict", title_align="left", expand=False))
    for section in report.sections.values():
        out.print()
        if section.table.num_rows == 0:
            out.print(f"[bold]{fs_console.escape(title(section))}[/]\n  none")
            continue
        out.print(section_table(section))


# --- markdown ----------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def md_escape(text: str) -> str:
    """Text safe in a Markdown table cell: no markup, no HTML, no column breaks, no control characters, one line."""
    text = fs_console.printable(" ".join(text.split()))
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def md_trusted(text: str) -> str:
    """flowstage's own words (questions, column docs): Markdown kept, HTML neutralised."""
    return html.escape(" ".join(text.split()), quote=False)


def markdown(report: Report) -> str:
    parts = ["# flowstage report", "", md_escape(report.summary.verdict()), ""]
    for section in report.sections.values():
        parts += markdown_section(section)
    return "\n".join(parts)


def markdown_section(section: Section) -> list[str]:
    query = section.query
    lines = [f"## {md_trusted(title(section))}", ""]
    if query.description:
        lines += [md_trusted(query.description), ""]
    if section.table.num_rows == 0:
        return [*lines, "None.", ""]
    headers, cells = display_table(section.shown)
    lines.append("| " + " | ".join(md_escape(h) for h in headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for row in cells:
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    caption = _caption(section)
    if caption:
        lines += ["", f"_{md_escape(caption)}_"]
    if query.column_docs:
        lines += ["", "<details><summary>Columns</summary>", ""]
        lines += [f"- `{name}`: {md_trusted(doc)}" for name, doc in query.column_docs.items()]
        lines += ["", "</details>"]
    return [*lines, ""]


# --- JSON --------------------------------------------------------------------------------------------------


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "flowstage_report": JSON_VERSION,
        "summary": report.summary.to_dict(),
        "replay": json_value(report.replay),
        "top": report.top,
        "reports": {name: section_dict(section) for name, section in report.sections.items()},
    }


def section_dict(section: Section) -> dict[str, Any]:
    query = section.query
    return {
        "question": query.question,
        "description": query.description,
        "columns": [
            {"name": f.name, "type": str(f.type), "description": query.column_docs.get(f.name, "")}
            for f in section.table.schema
        ],
        "rows": [json_value(row) for row in table_rows(section.table)],
        "total_rows": section.total_rows,
        "truncated": section.truncated,
    }


def to_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"


# --- CSV ---------------------------------------------------------------------------------------------------


def csv_text(section: Section) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180: a CR in a value is then quoted too
    writer.writerow(section.table.column_names)
    for row in table_rows(section.table):
        writer.writerow(["" if v is None else _csv_cell(v) for v in row.values()])
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    value = json_value(value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def write_csv(report: Report, output: Path | None) -> str | None:
    """One CSV per report: into the folder `output`, or (stdout) each preceded by a `# name: question` line."""
    if output is None:
        blocks = [f"# {name}: {s.query.question}\n{csv_text(s)}" for name, s in report.sections.items()]
        return "\n".join(blocks)
    if len(report.sections) == 1 and output.suffix == ".csv":
        output.write_text(csv_text(next(iter(report.sections.values()))), encoding="utf-8")
        return None
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output}: CSV for several reports needs a folder (one file per report) or one report name")
    output.mkdir(parents=True, exist_ok=True)
    for name, section in report.sections.items():
        (output / f"{name}.csv").write_text(csv_text(section), encoding="utf-8")
    return None
