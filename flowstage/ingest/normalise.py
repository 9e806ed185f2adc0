"""Normalising one batch of raw records into canonical flow rows and quarantine rows, vectorised in DuckDB.

Records are parsed once with `json_transform` into Arrow rows, checked and typed in the same pass; labels and
policy traces, which repeat heavily, are decoded once per distinct value in Python and gathered by index.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowstage import schema
from flowstage.ingest.detect import FAMILY_OF, S3, SSE
from flowstage.ingest.families import FAMILIES, MACROS, Family
from flowstage.ingest.lines import INVALID_UTF8, UNTERMINATED
from flowstage.ingest.lookups import TOO_DEEP, Lookup, label_lookup, trace_lookup
from flowstage.ingest.policy_hits import TRACE_COLUMNS
from flowstage.store import Part, StoreWriter

RAW_CAP = 64 * 1024  # quarantined text kept per record

# Quarantine reason codes.
INVALID_JSON = "invalid_json"
TRUNCATED_FIRST_LINE = "truncated_first_line"
TRUNCATED_LAST_LINE = "truncated_last_line"
WRONG_TYPE = "wrong_type"
NOT_A_FLOW_RECORD = "not_a_flow_record"
STREAM_ERROR = "stream_error"

# Columns the parse adds to the canonical ones: what is wrong with the record, and the texts the lookups decode.
_PROBLEM = "fs_problem"
_KEYS = {"source_labels": "fs_source_labels", "dest_labels": "fs_dest_labels", "policies": "fs_policies"}
_LOOKED_UP = frozenset({"source_labels", "dest_labels", *TRACE_COLUMNS})


@dataclass
class BatchResult:
    read: int = 0
    flows: list[Part] = field(default_factory=list)
    quarantine: list[Part] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    unterminated_quarantined: bool = False
    rows: pa.Table | None = None  # canonical rows that `stage` writes as flow parts

    @property
    def stored(self) -> int:
        return sum(p.rows for p in self.flows)

    def stage(self, writer: StoreWriter) -> None:
        """Write the batch's flow rows as parts, renamed into place, not yet committed."""
        if self.rows is not None and self.rows.num_rows:
            self.flows = writer.write_flow_table(self.rows)
        self.rows = None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _record_text(framing: str) -> str:
    """SQL for the JSON text of a record, given the raw line (framing prefixes removed)."""
    if framing == S3:
        return r"regexp_replace(text, '^[^\t\n]*\t[^\t\n]*\t', '')"
    if framing == SSE:
        return "substr(text, 6)"
    return "text"


def _is_record_line(framing: str) -> str:
    """SQL: does this raw line hold a record (blank lines and SSE bookkeeping lines do not)?"""
    # A cheap length test settles long lines: trimming every long line costs more than parsing it, and DuckDB
    # trims under a plain AND / OR anyway, so a CASE keeps the trim to short lines.
    not_blank = "CASE WHEN strlen(text) > 64 THEN true ELSE trim(text, E' \\t\\r\\n') != '' END"
    if framing == SSE:
        return f"{not_blank} AND (starts_with(text, 'data:') OR starts_with(text, 'error:'))"
    return not_blank


def ingest_connection() -> duckdb.DuckDBPyConnection:
    """The DuckDB connection a Normaliser parses with: times in UTC, rows in any order (they carry their source
    line), so DuckDB need not keep input order, and no progress bar."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'").fetchall()
    con.execute("SET preserve_insertion_order = false").fetchall()
    # DuckDB draws its bar on standard output once a query runs a few seconds (a large batch on a busy machine),
    # where it would land in the middle of `--json`. In Jupyter without ipywidgets it is off and may not be set.
    if con.execute("SELECT current_setting('enable_progress_bar')").fetchall() != [(False,)]:
        con.execute("SET enable_progress_bar = false").fetchall()
    return con


class Normaliser:
    """Turns line tables into committed-ready parts; keeps the label and trace decodings across batches."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute(MACROS).fetchall()
        self.labels: Lookup = label_lookup(con)
        self.traces: Lookup = trace_lookup(con)

    def run(self, writer: StoreWriter, lines: pa.Table, fmt: str, framing: str, source_name: str,
            at_file_start: bool) -> BatchResult:
        """Normalise one batch: quarantine parts staged, flow rows ready for `BatchResult.stage`."""
        family = FAMILIES[FAMILY_OF[fmt]]
        self.con.register("fs_raw", lines)
        try:
            rows = self._parse(family, fmt, framing, source_name)
        finally:
            self.con.unregister("fs_raw")
        result = BatchResult(read=rows.num_rows)
        rows, quarantined = self._problems(rows, lines, at_file_start, framing)
        rows, undecodable = self._decode(rows, lines)
        quarantined += undecodable
        if rows.num_rows:
            result.rows = self._canonical(rows)
        if quarantined:
            result.quarantine = self.write_quarantine(writer, quarantined, fmt, source_name)
            result.reasons.update(reason for _, reason, _, _ in quarantined)
            result.unterminated_quarantined = TRUNCATED_LAST_LINE in result.reasons
        return result

    def _parse(self, family: Family, fmt: str, framing: str, source_name: str) -> pa.Table:
        """Every record line parsed once into typed canonical columns, its problem (NULL when none) and the label
        and trace texts; no table is materialised in DuckDB."""
        problem = f"""CASE
            WHEN flag = '{INVALID_UTF8}' THEN '{INVALID_UTF8}'
            WHEN r IS NULL THEN 'unparsed'
            WHEN NOT ({family.identity_sql()}) THEN '{NOT_A_FLOW_RECORD}'
            ELSE '{WRONG_TYPE}:' || ({family.wrong_type_sql()}) END"""
        keys = ", ".join(f"{getattr(family, name)} AS {alias}" for name, alias in _KEYS.items())

        def query(tolerant: bool) -> pa.Table:
            parse = f"json_transform({_record_text(framing)}, {_quote(family.spec_json)})"
            if tolerant:
                parse = f"TRY({parse})"
            if framing == SSE:
                parse = f"CASE WHEN starts_with(text, 'data:') THEN {parse} END"
            return self.con.sql(
                f"SELECT {self._columns(family, fmt, source_name)}, {problem} AS {_PROBLEM}, {keys} "
                f"FROM (SELECT line_no, flag, {parse} AS r FROM fs_raw WHERE {_is_record_line(framing)}) p"
            ).to_arrow_table()

        try:
            return query(tolerant=False)
        except (duckdb.InvalidInputException, UnicodeDecodeError):
            # Some line is not JSON. TRY turns it into NULL, at about twice the cost: only when needed. (DuckDB's
            # message quotes the line, cut at a byte count: a cut inside a character fails to decode instead.)
            return query(tolerant=True)

    def _problems(self, rows: pa.Table, lines: pa.Table, at_file_start: bool,
                  framing: str) -> tuple[pa.Table, list[tuple[int, str, str, str]]]:
        """Split off the records with a problem, classified for the quarantine."""
        problems = rows.column(_PROBLEM)
        if problems.null_count == rows.num_rows:
            return rows, []
        bad = pc.is_valid(problems)
        found = rows.filter(bad).select(["source_line", _PROBLEM]).sort_by("source_line")
        numbers = found.column("source_line").to_pylist()
        quarantined = [self._classify(line_no, problem, text, flag, at_file_start, framing)
                       for line_no, problem, (text, flag) in zip(
                           numbers, found.column(_PROBLEM).to_pylist(), _raw_lines(lines, numbers), strict=True)]
        return rows.filter(pc.invert(bad)), quarantined

    def _decode(self, rows: pa.Table, lines: pa.Table) -> tuple[pa.Table, list[tuple[int, str, str, str]]]:
        """Learn this batch's new labels and traces; split off the records whose value cannot be decoded."""
        fields = [(name, self.traces if name == "policies" else self.labels, rows.column(alias))
                  for name, alias in _KEYS.items()]
        self.labels.learn(pa.chunked_array([*rows.column(_KEYS["source_labels"]).chunks,
                                            *rows.column(_KEYS["dest_labels"]).chunks], pa.string()))
        self.traces.learn(rows.column(_KEYS["policies"]))
        masks = [mask for _, lookup, texts in fields if (mask := lookup.failing(texts)) is not None]
        if not masks:
            return rows, []
        failing = masks[0]
        for mask in masks[1:]:
            failing = pc.or_kleene(failing, mask)
        failing = pc.fill_null(failing, False)
        found = rows.filter(failing).sort_by("source_line")
        numbers = found.column("source_line").to_pylist()
        quarantined = []
        for i, (line_no, (text, _)) in enumerate(zip(numbers, _raw_lines(lines, numbers), strict=True)):
            which, error = next((name, lookup.errors[value]) for name, lookup, _ in fields
                                if (value := found.column(_KEYS[name])[i].as_py()) in lookup.errors)
            quarantined.append((line_no, WRONG_TYPE, f"field `{which}` has the wrong type: {error}", text.rstrip("\r\n")))
        return rows.filter(pc.invert(failing)), quarantined

    def _canonical(self, rows: pa.Table) -> pa.Table:
        """The schema's columns: typed by the parse, labels and traces gathered from the lookups."""
        looked_up = {
            "source_labels": self.labels.gather(rows.column(_KEYS["source_labels"]))["labels"],
            "dest_labels": self.labels.gather(rows.column(_KEYS["dest_labels"]))["labels"],
            **self.traces.gather(rows.column(_KEYS["policies"])),
        }
        return pa.Table.from_arrays([looked_up[n] if n in looked_up else rows.column(n) for n in schema.COLUMN_NAMES],
                                    names=list(schema.COLUMN_NAMES))

    # --- quarantine ----------------------------------------------------------------------------------------

    @staticmethod
    def _classify(line_no: int, problem: str, text: str, flag: str | None, at_file_start: bool,
                  framing: str) -> tuple[int, str, str, str]:
        body = text.rstrip("\r\n")
        if problem == INVALID_UTF8:
            return line_no, INVALID_UTF8, "the line is not valid UTF-8 text", body
        if problem.startswith(WRONG_TYPE):
            name, _, expected = problem.split(":", 1)[1].partition(":")
            return line_no, WRONG_TYPE, f"field `{name}` has the wrong type or range (expected {expected})", body
        if problem == NOT_A_FLOW_RECORD:
            return line_no, NOT_A_FLOW_RECORD, "valid JSON, but none of the fields of a flow record", body
        if framing == SSE and body.startswith("error:"):
            return line_no, STREAM_ERROR, f"the stream reported an error: {body[6:].strip()}", body
        record = body[5:] if framing == SSE else body
        if framing == S3:
            record = record.split("\t", 2)[-1]
        try:
            json.loads(record)
        except RecursionError:
            return line_no, INVALID_JSON, f"not valid JSON: {TOO_DEEP}", body
        except ValueError as exc:
            if at_file_start and line_no == 1 and not record.lstrip().startswith(("{", "[")):
                return line_no, TRUNCATED_FIRST_LINE, "the file starts in the middle of a record", body
            if flag == UNTERMINATED:
                return line_no, TRUNCATED_LAST_LINE, f"the last line ends in the middle of a record ({exc})", body
            return line_no, INVALID_JSON, f"not valid JSON: {exc}", body
        return line_no, NOT_A_FLOW_RECORD, "valid JSON, but not a flow record object", body

    def write_quarantine(self, writer: StoreWriter, rows: list[tuple[int, str, str, str]], fmt: str,
                         source_name: str) -> list[Part]:
        """Stage one quarantine part for `rows` of (line, reason, detail, raw text)."""
        columns = ", ".join(f'CAST({sql} AS {schema.duckdb_type(f.type)}) AS "{f.name}"' for f, sql in zip(
            schema.QUARANTINE_SCHEMA,
            ["$1", "unnest($2::BIGINT[])", "$3", "unnest($4::VARCHAR[])", "unnest($5::VARCHAR[])",
             "unnest($6::VARCHAR[])", "now()"], strict=True))
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE fs_quarantine_rows AS SELECT {columns}",
            [source_name, [r[0] for r in rows], fmt, [r[1] for r in rows], [r[2] for r in rows],
             [r[3][:RAW_CAP] for r in rows]],
        ).fetchall()
        try:
            return writer.write_quarantine(self.con, "SELECT * FROM fs_quarantine_rows")
        finally:
            self.con.execute("DROP TABLE fs_quarantine_rows").fetchall()

    # --- the canonical row -----------------------------------------------------------------------------------

    @staticmethod
    def _columns(family: Family, fmt: str, source_name: str) -> str:
        """SQL of every canonical column the parse types (all but the looked-up labels and traces)."""
        special = {"format": _quote(fmt), "source_file": _quote(source_name), "source_line": "p.line_no"}
        exprs = []
        for column in schema.COLUMNS:
            if column.name in _LOOKED_UP:
                continue
            sql = special.get(column.name) or family.columns.get(column.name, "NULL")
            exprs.append(f'CAST({sql} AS {schema.duckdb_type(column.type)}) AS "{column.name}"')
        return ",\n".join(exprs)


def _raw_lines(lines: pa.Table, numbers: list[int]) -> list[tuple[str, str | None]]:
    """(text, flag) of the given line numbers of a line table."""
    positions = pc.index_in(pa.array(numbers, pa.int64()), value_set=lines.column("line_no").combine_chunks())
    found = lines.take(positions)
    return list(zip(found.column("text").to_pylist(), found.column("flag").to_pylist(), strict=True))
