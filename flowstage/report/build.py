"""A full report over one replay: every query's rows, the figures behind the one-paragraph verdict, and the
replay run it describes. The CLI, `check` and notebooks all build reports through `build_report`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowstage.errors import FlowstageError, UsageError
from flowstage.interrupt import interruptible
from flowstage.report import queries as q
from flowstage.store import Store


class ReplayMissingError(FlowstageError):
    """The store has flows but no replay: there is nothing to report yet."""


FINDINGS = "findings"  # the view every report but fidelity reads (flowstage.replay.views)


def open_replay(store: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a store that has been replayed; a clear error when it has not."""
    con = Store.open(store).connect()
    views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    if "replay" not in views:
        con.close()
        raise ReplayMissingError(
            f"{store} has no replay yet: run `flowstage replay --store {store} --policies POLICIES` first"
        )
    if FINDINGS not in views:
        con.close()
        raise ReplayMissingError(
            f"{store} was replayed by an earlier flowstage, whose replay lacks the `{FINDINGS}` view the reports read: "
            f"run `flowstage replay --store {store} --policies POLICIES` again"
        )
    return con


@contextlib.contextmanager
def findings_at_hand(con: Any) -> Iterator[None]:
    """The `findings` view's rows kept in a temporary table of the same name while the block runs, so a report run
    joins the rows to their verdicts once instead of once per report.

    A connection's views read a fixed set of files, so the table answers exactly as the view does; it shadows the
    view for every query on `con` (temporary objects come first) and is dropped afterwards. Only on DuckDB; other
    engines read the view.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection) or not _has_view(con, FINDINGS) or _has_temp_table(con, FINDINGS):
        yield
        return
    try:
        create = f"CREATE TEMP TABLE {FINDINGS} AS SELECT * FROM main.{FINDINGS}"
        interruptible(con, lambda: con.execute(create).fetchall())  # Ctrl-C stops it at once
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise q.QueryError(f"the {FINDINGS} view failed: {first}") from exc
    try:
        yield
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{FINDINGS}").fetchall()


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT temporary", [name]).fetchall()
    return found == [(1,)]


def _has_temp_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [name]).fetchall()
    return found != [(0,)]


@dataclass
class Section:
    """One query's result in a report: the rows shown (top N) and, on demand, all of them."""

    query: q.Query
    table: pa.Table
    total_rows: int
    _full: pa.Table | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.query.name

    @property
    def truncated(self) -> bool:
        return self.total_rows > self.table.num_rows

    @property
    def shown(self) -> pa.Table:
        """The columns a terminal or Markdown table shows (the query's `-- Show:` list), in that order."""
        columns = [c for c in self.query.shown if c in self.table.column_names]
        return self.table.select(columns) if columns else self.table


@dataclass(frozen=True)
class Summary:
    """The figures of the verdict paragraph; `check` judges the same numbers. None = that report is absent."""

    staged_policies: int | None
    would_break_flows: int | None
    would_break_bytes: int | None
    would_break_services: int | None
    would_break_clients: int | None
    lockout_risks: int | None  # client→server pairs that touch critical traffic and would (or might) be denied
    lockout_certain: int | None  # of those, the ones replay says would be denied (not merely unknown)
    unknown_flows: int | None  # flows whose verdict after promotion is unknown
    newly_allowed_flows: int | None
    safety_net_flows: int | None  # flows only a safety net would keep open after promotion
    safety_nets: tuple[str, ...]  # the nets that keep those flows open
    fidelity: float | None  # share of logged verdicts the current set reproduces
    replayed_rows: int | None
    stale_rows: int  # rows ingested after the replay ran (not judged)
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None

    def verdict(self) -> str:
        """One paragraph: what promotion would break, then what the reader should know to trust it."""
        n = self.staged_policies
        lead = "Promoting the staged policies" if n is None else f"Promoting {n} staged {_plural(n, 'policy', 'policies')}"
        if not self.would_break_flows:
            text = f"{lead} would break none of the logged traffic"
        else:
            text = (
                f"{lead} would break {self.would_break_flows:,} {_plural(self.would_break_flows, 'flow')} "
                f"({format_bytes(self.would_break_bytes or 0)}) to {self.would_break_services or 0:,} "
                f"{_plural(self.would_break_services or 0, 'service')} from {self.would_break_clients or 0:,} "
                f"{_plural(self.would_break_clients or 0, 'client')}"
            )
        if self.lockout_risks is not None:
            if self.lockout_risks == 0:
                text += "; no lockout risk"
            else:
                text += f"; {self.lockout_risks:,} lockout {_plural(self.lockout_risks, 'risk')}"
                possible = self.lockout_risks - (self.lockout_certain or 0)
                if possible:
                    text += f" ({possible:,} only possible: verdict unknown)"
        text += "."
        if self.unknown_flows:
            text += (
                f" {self.unknown_flows:,} {_plural(self.unknown_flows, 'flow')} could not be judged after promotion"
                " (see unknown verdicts for the input that would decide them)."
            )
        if self.newly_allowed_flows:
            text += f" Promotion would also allow {self.newly_allowed_flows:,} denied {_plural(self.newly_allowed_flows, 'flow')}."
        if self.safety_net_flows:
            nets = ", ".join(self.safety_nets) or "a safety net"
            text += (
                f" {self.safety_net_flows:,} {_plural(self.safety_net_flows, 'flow')} would stay open only because of "
                f"{nets}: they break the day it is removed."
            )
        if self.fidelity is not None:
            text += f" The model reproduces {100 * self.fidelity:.1f}% of logged verdicts."
        if self.first_seen is not None and self.last_seen is not None and self.replayed_rows is not None:
            text += (
                f" Based on {self.replayed_rows:,} logged rows from {format_time(self.first_seen)} "
                f"to {format_time(self.last_seen)}."
            )
        if self.stale_rows:
            text += f" {self.stale_rows:,} rows were ingested after the replay and are not judged: run flowstage replay again."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict(),
            "staged_policies": self.staged_policies,
            "would_break_flows": self.would_break_flows,
            "would_break_bytes": self.would_break_bytes,
            "would_break_services": self.would_break_services,
            "would_break_clients": self.would_break_clients,
            "lockout_risks": self.lockout_risks,
            "lockout_certain": self.lockout_certain,
            "unknown_flows": self.unknown_flows,
            "newly_allowed_flows": self.newly_allowed_flows,
            "safety_net_flows": self.safety_net_flows,
            "safety_nets": list(self.safety_nets),
            "fidelity": self.fidelity,
            "replayed_rows": self.replayed_rows,
            "stale_rows": self.stale_rows,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


@dataclass
class Report:
    summary: Summary
    sections: dict[str, Section]
    replay: dict[str, Any]  # the replay_info row: run id, when, inputs, promotion, safety nets
    top: int | None


def _plural(n: int, one: str, many: str | None = None) -> str:
    return one if n == 1 else (many or one + "s")


def format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def format_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _integral(table: pa.Table) -> pa.Table:
    # DuckDB sums BIGINT into HUGEINT (Arrow decimal128(38, 0)); reports carry counts, so give them as int64.
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            table = table.set_column(i, f.name, pc.cast(table.column(i), pa.int64()))
    return table


# The verdict's figures are totals over these reports: they run once in full and are cut to --top for display,
# rather than once with $top bound and again in full.
SUMMARY_REPORTS = frozenset(
    {"would_break", "would_break_by_source", "lockout_risk", "staged_policies", "safety_net", "newly_allowed",
     "unknown_verdicts", "fidelity"}
)


def run_section(con: duckdb.DuckDBPyConnection, query: q.Query, top: int | None) -> Section:
    """One report's rows, the first `top` of them shown; its total row count is always known."""
    if top is None or query.name in SUMMARY_REPORTS or "top" not in query.parameters:
        full = _integral(q.run(con, query, top=None))
        shown = full.slice(0, top) if top is not None else full
        return Section(query=query, table=shown, total_rows=full.num_rows, _full=full)
    table = _integral(q.run(con, query, top=top))
    if table.num_rows < top:
        return Section(query=query, table=table, total_rows=table.num_rows, _full=table)
    full = _integral(q.run(con, query, top=None))
    return Section(query=query, table=table, total_rows=full.num_rows, _full=full)


def full_table(con: duckdb.DuckDBPyConnection, section: Section) -> pa.Table:
    if section._full is None:
        section._full = _integral(q.run(con, section.query, top=None))
    return section._full


def _sum(table: pa.Table, column: str, where: pa.Array | None = None) -> int:
    col = table.column(column)
    if where is not None:
        col = pc.filter(col, where)
    value = pc.sum(col).as_py()
    return int(value or 0)


def _count(where: pa.Array) -> int:
    return int(pc.sum(pc.cast(pc.fill_null(where, False), pa.int64())).as_py() or 0)


def _nets_in_use(nets: pa.Table | None) -> tuple[str, ...]:
    """The safety nets that keep some flow open after promotion (not every net the policies hold)."""
    if nets is None or nets.num_rows == 0:
        return ()
    held = pc.filter(nets.column("kept_open_by"), pc.greater(nets.column("flows_after_promotion"), 0))
    return tuple(sorted({n for n in held.to_pylist() if n is not None}))


def replay_info(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    if "replay_info" not in views:
        return {}
    rows = con.sql("SELECT * FROM replay_info").to_arrow_table().to_pylist()
    return rows[-1] if rows else {}


def summarize(con: duckdb.DuckDBPyConnection, sections: dict[str, Section], info: dict[str, Any]) -> Summary:
    def table(name: str) -> pa.Table | None:
        return full_table(con, sections[name]) if name in sections else None

    would_break = table("would_break")
    by_source = table("would_break_by_source")
    lockout = table("lockout_risk")
    unknown = table("unknown_verdicts")
    newly = table("newly_allowed")
    nets = table("safety_net")
    staged = table("staged_policies")
    fidelity = table("fidelity")

    fidelity_share = None
    if fidelity is not None and fidelity.num_rows:
        current = pc.equal(fidelity.column("comparison"), "current")
        agrees = fidelity.column("verdict_agrees")
        compared = _sum(fidelity, "rows", pc.and_(current, pc.is_valid(agrees)))
        agreed = _sum(fidelity, "rows", pc.and_(current, pc.fill_null(agrees, False)))
        fidelity_share = agreed / compared if compared else None

    flows_count, first_seen, last_seen = con.execute(
        "SELECT count(*), min(start_time), max(end_time) FROM flows"
    ).fetchone()
    replayed_rows = info.get("rows")
    stale = max(0, flows_count - replayed_rows) if replayed_rows is not None else 0

    return Summary(
        staged_policies=_count(staged.column("promoted")) if staged is not None else None,
        would_break_flows=_sum(would_break, "flows") if would_break is not None else None,
        would_break_bytes=_sum(would_break, "bytes") if would_break is not None else None,
        would_break_services=would_break.num_rows if would_break is not None else None,
        would_break_clients=by_source.num_rows if by_source is not None else None,
        lockout_risks=lockout.num_rows if lockout is not None else None,
        lockout_certain=_count(pc.equal(lockout.column("certainty"), "deny")) if lockout is not None else None,
        unknown_flows=(
            _sum(unknown, "flows", pc.equal(unknown.column("policy_set"), "proposed")) if unknown is not None else None
        ),
        newly_allowed_flows=_sum(newly, "flows") if newly is not None else None,
        safety_net_flows=_sum(nets, "flows_after_promotion") if nets is not None else None,
        safety_nets=_nets_in_use(nets),
        fidelity=fidelity_share,
        replayed_rows=replayed_rows if replayed_rows is not None else flows_count,
        stale_rows=stale,
        first_seen=first_seen,
        last_seen=last_seen,
    )


def build_report(
    con: duckdb.DuckDBPyConnection, names: list[str] | None = None, top: int | None = None,
    directory: Path = q.QUERIES_DIR,
) -> Report:
    """Run the named reports (all of `queries/` by default), keep the first `top` rows of each, summarize."""
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    available = q.discover(directory)
    chosen = list(available) if not names else [q.find(n, directory).name for n in names]
    with findings_at_hand(con):
        sections = {name: run_section(con, available[name], top) for name in chosen}
        info = replay_info(con)
        # The verdict needs its figures even when only some reports were asked for.
        helpers = {n: Section(query=available[n], table=pa.table({}), total_rows=0) for n in available if n not in sections}
        summary = summarize(con, {**helpers, **sections}, info)
    return Report(summary=summary, sections=sections, replay=info, top=top)
