"""Explaining one stored flow: find its row, rebuild the Traffic its replay key stands for, and evaluate it
again under every policy set with the engine's full trace.

By default the policy and inventory files of the last replay are used, so the trace explains the stored verdict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from flowstage.errors import FlowstageError
from flowstage.policy.engine import Engine
from flowstage.policy.traffic import Traffic, Verdict
from flowstage.replay.keys import SOURCE_PORT_COLUMN, TrafficBuilder, replay_key_sql
from flowstage.replay.run import PolicyInputs, load_inputs
from flowstage.replay.views import row_id_sql
from flowstage.store import Store


@dataclass
class Explanation:
    """One row, the Traffic the engine saw, and each set's verdict with its trace."""

    row_id: str
    row: dict[str, Any]
    traffic: Traffic
    reporter: str
    verdicts: dict[str, Verdict]  # set name -> verdict with trace (pending only when the row logs a pending trace)
    stored: dict[str, Any] | None  # the row's verdict columns in the `replay` view, if it was replayed
    notes: list[str] = field(default_factory=list)  # e.g. a policy file changed since the replay ran


def parse_line_ref(text: str) -> tuple[str, int]:
    """`FILE:LINE` -> (FILE, LINE); the line is 1-based, as `source_line` stores it."""
    file, sep, line = text.rpartition(":")
    if not sep or not file or not line.strip().isdigit() or int(line) < 1:
        raise FlowstageError(f"--line {text!r}: expected FILE:LINE with a 1-based line number, e.g. flows.log:42")
    return file, int(line)


def find_row(con: duckdb.DuckDBPyConnection, *, line: str | None = None, row_id: str | None = None) -> dict[str, Any]:
    """The `flows` row a `--line FILE:LINE` or `--row ROW_ID` names; a clear error when none or several match."""
    if (line is None) == (row_id is None):
        raise FlowstageError("name exactly one row: --line FILE:LINE or --row ROW_ID")
    if row_id is not None:
        rows = _rows(con, f"{row_id_sql()} = ?", [row_id])
        if not rows:
            raise FlowstageError(
                f"no row with id {row_id!r} in the store; row ids are `source_file:source_line` "
                "as the `replay` view shows them in its row_id column"
            )
        return rows[0]
    assert line is not None
    file, number = parse_line_ref(line)
    absolute = str(Path(file).expanduser().resolve())
    rows = _rows(con, "source_line = ? AND source_file = ?", [number, absolute])
    if not rows:
        # A relative or shortened path: match by trailing path components.
        # ends_with, not LIKE: `%` and `_` in the name the user typed are characters, not wildcards.
        rows = _rows(con, "source_line = ? AND (source_file = ? OR ends_with(source_file, ?))", [number, file, f"/{file}"])
    files = sorted({r["source_file"] for r in rows})
    if len(files) > 1:
        listed = "\n  ".join(files)
        raise FlowstageError(f"--line {line}: {len(files)} ingested files match {file!r}; give a longer path:\n  {listed}")
    if not rows:
        known = [r[0] for r in con.execute("SELECT DISTINCT source_file FROM flows ORDER BY 1 LIMIT 5").fetchall()]
        hint = ("; ingested files include:\n  " + "\n  ".join(known)) if known else "; the store holds no flows yet"
        raise FlowstageError(f"--line {line}: no stored row comes from line {number} of {file!r}{hint}")
    return rows[0]


def _rows(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    result = con.execute(f"SELECT * FROM flows WHERE {where} ORDER BY source_file", params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, values, strict=True)) for values in result.fetchall()]


def last_run_inputs(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, list[str]], list[str]]:
    """The input files of the replay the store shows, by role, plus notes on files changed or gone since."""
    try:
        runs = con.execute("SELECT inputs FROM replay_info").fetchall()
    except duckdb.Error:
        runs = []
    if not runs:
        raise FlowstageError("this store has no replay yet: run `flowstage replay` first, or pass --policies")
    ((inputs,),) = runs
    by_role: dict[str, list[str]] = {}
    notes: list[str] = []
    for item in inputs:
        path = Path(item["path"])
        if not path.exists():
            raise FlowstageError(
                f"{path} (used by the last replay) no longer exists: pass --policies (and --namespaces / --pods)"
            )
        if hashlib.sha256(path.read_bytes()).hexdigest() != item["sha256"]:
            notes.append(f"{path} changed since the last replay; the trace below uses it as it is now")
        by_role.setdefault(item["role"], []).append(str(path))
    return by_role, notes


def _run_key_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    try:
        runs = con.execute("SELECT key_columns FROM replay_info").fetchall()
    except duckdb.Error:
        return []
    return list(runs[0][0]) if runs else []


def explain(
    store: Store,
    *,
    line: str | None = None,
    row_id: str | None = None,
    inputs: PolicyInputs | None = None,
) -> Explanation:
    """Evaluate one stored row under current, proposed (and pending when it logs a pending trace), with traces."""
    con = store.connect()
    try:
        row = find_row(con, line=line, row_id=row_id)
        notes: list[str] = []
        key_cols = _run_key_columns(con)
        if inputs is None:
            by_role, notes = last_run_inputs(con)
            inputs = load_inputs(
                by_role.get("policies", []),
                namespaces=_single(by_role.get("namespaces")),
                pods=_single(by_role.get("pods")),
            )
        the_id = f"{row['source_file']}:{row['source_line']}"
        stored = _stored_verdicts(con, row, key_cols) if key_cols else None
    finally:
        con.close()
    if inputs.errors:
        from flowstage.replay.run import PolicyProblemsError

        raise PolicyProblemsError(inputs.errors)
    # Judge the row as the replay keyed it: without a source port unless the run keyed on it.
    builder = TrafficBuilder(include_source_port=SOURCE_PORT_COLUMN in key_cols if key_cols else True)
    traffic = builder.traffic(row)
    reporter = row["reporter"]
    sets = inputs.sets
    verdicts = {
        "current": Engine(sets.current).decide_reported(traffic, reporter, explain=True),
        "proposed": Engine(sets.proposed).decide_reported(traffic, reporter, explain=True),
    }
    if row.get("pending_policies"):
        verdicts["pending"] = Engine(sets.pending).decide_reported(traffic, reporter, explain=True)
    return Explanation(
        row_id=the_id, row=row, traffic=traffic, reporter=reporter, verdicts=verdicts, stored=stored, notes=notes
    )


def _single(paths: list[str] | None) -> str | None:
    return paths[0] if paths else None


def _stored_verdicts(con: duckdb.DuckDBPyConnection, row: dict[str, Any], key_cols: list[str]) -> dict[str, Any] | None:
    """The verdicts the last replay stored for this row's key (looked up by key, not by scanning `replay`)."""
    result = con.execute(
        f"SELECT * FROM verdicts WHERE replay_key = (SELECT {replay_key_sql(key_cols)} FROM flows "
        "WHERE source_file = ? AND source_line = ? LIMIT 1)",
        [row["source_file"], row["source_line"]],
    )
    found = result.fetchall()
    if not found:
        return None
    return dict(zip([d[0] for d in result.description], found[0], strict=True))
