"""The HTML report: one self-contained file — inline CSS, inline SVG charts, no script, nothing fetched — that
opens offline. Charts: top-N bars of what breaks, a namespace-to-namespace matrix, a timeline.

Every value from the logs or the policies passes through `html.escape`; a Content-Security-Policy forbids the
page from loading anything even if a value somehow were not.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from flowstage.console import printable
from flowstage.report.build import Report, Section, format_bytes, format_time
from flowstage.report.render import NONE, display_table, numeric_columns, title

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 78rem;
       padding: 0 1rem; color: #1d2430; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 .25rem; }
p.meta { color: #5b6575; margin: 0 0 1rem; }
.verdict { font-size: 1.1rem; border-left: 4px solid #c0392b; background: #fdf3f2; padding: .75rem 1rem; }
.verdict.safe { border-color: #2e8b57; background: #f1faf5; }
.figures { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.figure { border: 1px solid #d9dee7; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem; }
.figure b { display: block; font-size: 1.3rem; }
.figure span { color: #5b6575; font-size: .85rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(24rem, 1fr)); gap: 1.5rem; }
.chart h3 { font-size: .95rem; margin: .5rem 0; }
svg text { font: 11px system-ui, sans-serif; fill: #1d2430; }
svg .bar { fill: #c0392b; }
svg .axis { stroke: #9aa3b2; stroke-width: 1; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .85rem; }
th, td { border-bottom: 1px solid #e3e7ee; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f6f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.matrix td { text-align: right; min-width: 3rem; }
caption { caption-side: bottom; text-align: left; color: #5b6575; font-size: .8rem; padding-top: .25rem; }
details { color: #5b6575; font-size: .85rem; }
.none { color: #5b6575; }
"""


def esc(value: Any) -> str:
    # Control and bidi characters would reach a reader as raw bytes (or reorder the text around them): shown.
    return html.escape(printable("" if value is None else str(value)), quote=True)


def render_html(report: Report, title: str = "flowstage report") -> str:
    summary = report.summary
    generated = dt.datetime.now(dt.UTC)
    safe = not summary.would_break_flows and not summary.lockout_risks
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{esc(_meta_line(report, generated))}</p>',
        f'<p class="verdict{" safe" if safe else ""}">{esc(summary.verdict())}</p>',
        _figures(report),
        _charts(report),
    ]
    for section in report.sections.values():
        parts.append(_section(section))
    parts += ["</body>", "</html>", ""]
    return "\n".join(p for p in parts if p)


def _meta_line(report: Report, generated: dt.datetime) -> str:
    info = report.replay
    text = f"generated {format_time(generated)}"
    finished = info.get("finished_at")
    if isinstance(finished, dt.datetime):
        text += f" · replay {info.get('run_id', '')[:12]} of {format_time(finished)}"
    inputs = [i.get("path", "") for i in info.get("inputs") or [] if isinstance(i, dict) and i.get("role") == "policies"]
    if inputs:
        text += " · policies: " + ", ".join(inputs)
    return text


def _figures(report: Report) -> str:
    s = report.summary
    items = [
        (s.would_break_flows, "flows would break", lambda v: f"{v:,}"),
        (s.would_break_bytes, "would break", format_bytes),
        (s.would_break_services, "services affected", lambda v: f"{v:,}"),
        (s.would_break_clients, "clients affected", lambda v: f"{v:,}"),
        (s.lockout_risks, "lockout risks", lambda v: f"{v:,}"),
        (s.unknown_flows, "flows undecided", lambda v: f"{v:,}"),
        (s.safety_net_flows, "held only by a safety net", lambda v: f"{v:,}"),
        (s.fidelity, "logged verdicts reproduced", lambda v: f"{100 * v:.1f}%"),
    ]
    cells = [
        f'<div class="figure"><b>{esc(fmt(value))}</b><span>{esc(label)}</span></div>'
        for value, label, fmt in items
        if value is not None
    ]
    return f'<div class="figures">{"".join(cells)}</div>' if cells else ""


# --- charts ------------------------------------------------------------------------------------------------


def _charts(report: Report) -> str:
    charts = []
    for section in report.sections.values():
        if section.table.num_rows == 0:
            continue
        kind = section.query.chart
        if section.name == "would_break" or kind == "bars":
            charts.append(_chart("Top destinations that would break (flows)", bars_svg(section)))
        elif kind == "matrix":
            charts.append(_chart("What breaks, namespace to namespace (flows)", matrix_table(section)))
        elif kind == "timeline":
            charts.append(_chart("When would-break traffic happens (flows per hour, UTC)", timeline_svg(section)))
    return f'<div class="charts">{"".join(charts)}</div>' if charts else ""


def _chart(title: str, body: str) -> str:
    return f'<div class="chart"><h3>{esc(title)}</h3>{body}</div>'


def _label(row: dict[str, Any]) -> str:
    ns, workload = row.get("dest_namespace"), row.get("dest_workload")
    name = f"{ns}/{workload}" if ns else str(workload)
    port, proto = row.get("dest_port"), row.get("proto")
    if port is not None:
        name += f":{port}"
    if proto is not None:
        name += f"/{proto}"
    return name


def bars_svg(section: Section) -> str:
    """Horizontal bars: one per row of a destination-ranked report, length by flows."""
    rows = section.table.to_pylist()
    if not rows or "flows" not in section.table.column_names:
        return ""
    peak = max((r.get("flows") or 0) for r in rows) or 1
    label_w, bar_w, row_h = 230, 260, 22
    height = row_h * len(rows) + 8
    width = label_w + bar_w + 90
    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="top destinations by flows">']
    for i, row in enumerate(rows):
        y = 4 + i * row_h
        flows = row.get("flows") or 0
        w = max(1.0, bar_w * flows / peak)
        label = _label(row)
        short = label if len(label) <= 36 else label[:35] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end"><title>{esc(label)}</title>{esc(short)}</text>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}"></rect>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{esc(f"{flows:,}")}</text>')
    out.append("</svg>")
    return "".join(out)


def matrix_table(section: Section) -> str:
    """Client namespaces as rows, server namespaces as columns, cell shade by flows."""
    rows = section.table.to_pylist()
    sources = sorted({str(r["source_namespace"]) for r in rows})
    dests = sorted({str(r["dest_namespace"]) for r in rows})
    cells = {(str(r["source_namespace"]), str(r["dest_namespace"])): r.get("flows") or 0 for r in rows}
    peak = max(cells.values()) or 1
    out = ['<table class="matrix"><thead><tr><th>client ↓ / server →</th>']
    out += [f"<th>{esc(d)}</th>" for d in dests]
    out.append("</tr></thead><tbody>")
    for s in sources:
        out.append(f"<tr><th>{esc(s)}</th>")
        for d in dests:
            flows = cells.get((s, d))
            if flows is None:
                out.append("<td></td>")
                continue
            alpha = 0.12 + 0.78 * flows / peak
            out.append(f'<td style="background: rgba(192, 57, 43, {alpha:.2f})">{esc(f"{flows:,}")}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def timeline_svg(section: Section) -> str:
    """One column per hour with would-break traffic, height by flows; empty hours between stay empty."""
    rows = [r for r in section.table.to_pylist() if isinstance(r.get("hour"), dt.datetime)]
    if not rows:
        return ""
    first, last = rows[0]["hour"], rows[-1]["hour"]
    hours = int((last - first).total_seconds() // 3600) + 1
    by_hour = {int((r["hour"] - first).total_seconds() // 3600): r.get("flows") or 0 for r in rows}
    peak = max(by_hour.values()) or 1
    plot_w, plot_h, left, bottom = 480, 140, 48, 24
    step = plot_w / max(hours, 1)
    out = [f'<svg viewBox="0 0 {left + plot_w + 10} {plot_h + bottom + 10}" width="100%" role="img" '
           'aria-label="would-break flows per hour">']
    out.append(f'<line class="axis" x1="{left}" y1="{plot_h + 5}" x2="{left + plot_w}" y2="{plot_h + 5}"></line>')
    out.append(f'<text x="{left - 4}" y="14" text-anchor="end">{esc(f"{peak:,}")}</text>')
    out.append(f'<text x="{left - 4}" y="{plot_h + 5}" text-anchor="end">0</text>')
    for i, flows in by_hour.items():
        h = plot_h * flows / peak
        x = left + i * step
        when = (first + dt.timedelta(hours=i)).strftime("%Y-%m-%d %H:00")
        out.append(
            f'<rect class="bar" x="{x + step * 0.1:.1f}" y="{plot_h + 5 - h:.1f}" width="{max(step * 0.8, 1):.1f}" '
            f'height="{h:.1f}"><title>{esc(f"{when}: {flows:,} flows")}</title></rect>'
        )
    y = plot_h + bottom
    out.append(f'<text x="{left}" y="{y}">{esc(first.strftime("%Y-%m-%d %H:00"))}</text>')
    if hours > 1:
        out.append(f'<text x="{left + plot_w}" y="{y}" text-anchor="end">{esc(last.strftime("%Y-%m-%d %H:00"))}</text>')
    out.append("</svg>")
    return "".join(out)


# --- tables ------------------------------------------------------------------------------------------------


def _section(section: Section) -> str:
    query = section.query
    out = [f'<section id="{esc(section.name)}">', f"<h2>{esc(title(section))}</h2>"]
    if query.description:
        out.append(f"<p>{esc(query.description)}</p>")
    if section.table.num_rows == 0:
        out.append('<p class="none">None.</p></section>')
        return "".join(out)
    headers, cells = display_table(section.table)
    numbers = numeric_columns(section.table)
    numeric = [h in numbers for h in headers]
    out.append("<table><thead><tr>")
    out += [f"<th>{esc(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for row in cells:
        out.append("<tr>")
        out += [
            f'<td class="num">{esc(c)}</td>' if num and c != NONE else f"<td>{esc(c)}</td>"
            for c, num in zip(row, numeric, strict=True)
        ]
        out.append("</tr>")
    out.append("</tbody>")
    if section.truncated:
        out.append(f"<caption>{esc(f'top {section.table.num_rows} of {section.total_rows:,} rows')}</caption>")
    out.append("</table>")
    if query.column_docs:
        out.append("<details><summary>Columns</summary><dl>")
        for name, doc in query.column_docs.items():
            out.append(f"<dt><code>{esc(name)}</code></dt><dd>{esc(doc)}</dd>")
        out.append("</dl></details>")
    out.append("</section>")
    return "".join(out)
