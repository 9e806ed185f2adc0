"""Normalising one batch of raw records into canonical flow rows and quarantine rows, vectorised in DuckDB.

Records are parsed once with `json_transform`; labels and policy traces, which repeat heavily, are decoded
once per distinct value in Python and joined back.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from flowstage import schema
from flowstage.ingest.detect import FAMILY_OF, S3, SSE
from flowstage.ingest.families import FAMILIES, MACROS, Family
from flowstage.ingest.labels import LabelsError, decode_labels
from flowstage.ingest.lines import INVALID_UTF8, UNTERMINATED
from flowstage.ingest.policy_hits import TRACE_COLUMNS, TraceError, decode_policies
from flowstage.store import Part, StoreWriter

RAW_CAP = 64 * 1024  # quarantined text kept per record
_TOO_DEEP = "it nests too deeply to read (more than about a thousand levels)"

# Quarantine reason codes.
INVALID_JSON = "invalid_json"
TRUNCATED_FIRST_LINE = "truncated_first_line"
TRUNCATED_LAST_LINE = "truncated_last_line"
WRONG_TYPE = "wrong_type"
NOT_A_FLOW_RECORD = "not_a_flow_record"
STREAM_ERROR = "stream_error"

# json_transform structure of one trace: a list of POLICY_HIT objects.
_HITS_SPEC = json.dumps([{f.name: schema.duckdb_type(f.type) for f in schema.POLICY_HIT}])


@dataclass
class BatchResult:
    read: int = 0
    flows: list[Part] = field(default_factory=list)
    quarantine: list[Part] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    unterminated_quarantined: bool = False

    @property
    def stored(self) -> int:
        return sum(p.rows for p in self.flows)


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
    # A cheap length test first: trimming every long line costs more than parsing it.
    blank = "strlen(text) <= 64 AND trim(text, E' \\t\\r\\n') = ''"
    if framing == SSE:
        return f"NOT ({blank}) AND (starts_with(text, 'data:') OR starts_with(text, 'error:'))"
    return f"NOT ({blank})"


class Normaliser:
    """Turns line tables into committed-ready parts; keeps the label and trace decodings across batches."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute(MACROS).fetchall()
        self._labels: dict[str, tuple[str | None, str | None]] = {}
        self._traces: dict[str, tuple[dict[str, str | None], str | None]] = {}

    def run(self, writer: StoreWriter, lines: pa.Table, fmt: str, framing: str, source_name: str,
            at_file_start: bool) -> BatchResult:
        family = FAMILIES[FAMILY_OF[fmt]]
        con = self.con
        con.register("fs_raw", lines)
        try:
            return self._run(writer, family, fmt, framing, source_name, at_file_start)
        finally:
            con.unregister("fs_raw")
            con.execute("DROP TABLE IF EXISTS fs_parsed").fetchall()

    def _run(self, writer: StoreWriter, family: Family, fmt: str, framing: str, source_name: str,
             at_file_start: bool) -> BatchResult:
        con = self.con
        self._parse(family, framing)
        result = BatchResult(read=con.execute("SELECT count(*) FROM fs_parsed").fetchone()[0])
        problem = f"""CASE
            WHEN flag = '{INVALID_UTF8}' THEN '{INVALID_UTF8}'
            WHEN r IS NULL THEN 'unparsed'
            WHEN NOT ({family.identity_sql()}) THEN '{NOT_A_FLOW_RECORD}'
            ELSE '{WRONG_TYPE}:' || ({family.wrong_type_sql()}) END"""
        bad = con.execute(
            f"""SELECT p.line_no, p.problem, raw.text, raw.flag
            FROM (SELECT line_no, {problem} AS problem FROM fs_parsed) p JOIN fs_raw raw USING (line_no)
            WHERE p.problem IS NOT NULL ORDER BY p.line_no"""
        ).fetchall()
        quarantined = [self._classify(line_no, problem, text, flag, at_file_start, framing)
                       for line_no, problem, text, flag in bad]
        self._drop_lines([line_no for line_no, *_ in bad])

        joins = (
            f"LEFT JOIN fs_labels sl ON sl.key = {family.source_labels} "
            f"LEFT JOIN fs_labels dl ON dl.key = {family.dest_labels} "
            f"LEFT JOIN fs_traces tr ON tr.key = {family.policies}"
        )
        if self._lookups(family):
            undecodable = con.execute(
                f"""SELECT p.line_no, CASE WHEN sl.error IS NOT NULL THEN 'source_labels'
                        WHEN dl.error IS NOT NULL THEN 'dest_labels' ELSE 'policies' END,
                        coalesce(sl.error, dl.error, tr.error), raw.text
                    FROM fs_parsed p {joins} JOIN fs_raw raw USING (line_no)
                    WHERE coalesce(sl.error, dl.error, tr.error) IS NOT NULL"""
            ).fetchall()
            quarantined += [(line_no, WRONG_TYPE, f"field `{which}` has the wrong type: {error}", text.rstrip("\r\n"))
                            for line_no, which, error, text in undecodable]
            self._drop_lines([line_no for line_no, *_ in undecodable])
        select = f"SELECT {self._columns(family, fmt, source_name)} FROM fs_parsed p {joins}"
        result.flows = writer.write_flows(con, select)
        if quarantined:
            result.quarantine = self.write_quarantine(writer, quarantined, fmt, source_name)
            result.reasons.update(reason for _, reason, _, _ in quarantined)
            result.unterminated_quarantined = TRUNCATED_LAST_LINE in result.reasons
        return result

    def _parse(self, family: Family, framing: str) -> None:
        """Parse every record line once into `fs_parsed(line_no, flag, r)`; r is NULL for unreadable text."""
        def create(tolerant: bool) -> None:
            parse = f"json_transform({_record_text(framing)}, {_quote(family.spec_json)})"
            if tolerant:
                parse = f"TRY({parse})"
            if framing == SSE:
                parse = f"CASE WHEN starts_with(text, 'data:') THEN {parse} END"
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE fs_parsed AS SELECT line_no, flag, {parse} AS r "
                f"FROM fs_raw WHERE {_is_record_line(framing)}"
            ).fetchall()

        try:
            create(tolerant=False)
        except (duckdb.InvalidInputException, UnicodeDecodeError):
            # Some line is not JSON. TRY turns it into NULL, at about twice the cost: only when needed. (DuckDB's
            # message quotes the line, cut at a byte count: a cut inside a character fails to decode instead.)
            create(tolerant=True)

    def _drop_lines(self, line_numbers: list[int]) -> None:
        if line_numbers:
            self.con.execute("DELETE FROM fs_parsed WHERE line_no IN (SELECT unnest(?::BIGINT[]))",
                             [line_numbers]).fetchall()

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
            return line_no, INVALID_JSON, f"not valid JSON: {_TOO_DEEP}", body
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

    # --- labels and policy traces --------------------------------------------------------------------------

    def _decode(self, label_keys: list[str], trace_keys: list[str]) -> None:
        """Decode values not seen before; kept as JSON text that DuckDB turns into the schema's types."""
        for key in label_keys:
            if key not in self._labels:
                try:
                    pairs = decode_labels(json.loads(key))
                    entries = None if pairs is None else json.dumps([{"key": k, "value": v} for k, v in pairs])
                    self._labels[key] = (entries, None)
                except LabelsError as exc:
                    self._labels[key] = (None, str(exc))
                except RecursionError:
                    self._labels[key] = (None, _TOO_DEEP)
        for key in trace_keys:
            if key not in self._traces:
                try:
                    traces = decode_policies(json.loads(key))
                    self._traces[key] = ({c: None if h is None else json.dumps(h) for c, h in traces.items()}, None)
                except (TraceError, ValueError, TypeError) as exc:
                    self._traces[key] = (dict.fromkeys(TRACE_COLUMNS), str(exc))
                except RecursionError:
                    self._traces[key] = (dict.fromkeys(TRACE_COLUMNS), _TOO_DEEP)

    def _lookups(self, family: Family) -> bool:
        """Make `fs_labels` and `fs_traces` for this batch's distinct values; say whether any is undecodable."""
        con = self.con
        label_keys = [k for (k,) in con.execute(
            f"SELECT DISTINCT k FROM (SELECT {family.source_labels} AS k FROM fs_parsed "
            f"UNION ALL SELECT {family.dest_labels} FROM fs_parsed) WHERE k IS NOT NULL"
        ).fetchall()]
        trace_keys = [k for (k,) in con.execute(
            f"SELECT DISTINCT {family.policies} FROM fs_parsed WHERE {family.policies} IS NOT NULL"
        ).fetchall()]
        self._decode(label_keys, trace_keys)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE fs_labels AS SELECT unnest($1::VARCHAR[]) AS key,
                CAST(map_from_entries(json_transform(unnest($2::VARCHAR[]), '[{{"key":"VARCHAR","value":"VARCHAR"}}]'))
                     AS {schema.duckdb_type(schema.LABELS)}) AS labels,
                unnest($3::VARCHAR[]) AS error""",
            [label_keys, [self._labels[k][0] for k in label_keys], [self._labels[k][1] for k in label_keys]],
        ).fetchall()
        hits = _quote(_HITS_SPEC)
        traces = ", ".join(
            f"CAST(json_transform(unnest(${i}::VARCHAR[]), {hits}) AS {schema.duckdb_type(schema.POLICY_HITS)}) AS {c}"
            for i, c in enumerate(TRACE_COLUMNS, start=2))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE fs_traces AS SELECT unnest($1::VARCHAR[]) AS key, {traces},
                unnest(${len(TRACE_COLUMNS) + 2}::VARCHAR[]) AS error""",
            [trace_keys, *[[self._traces[k][0][c] for k in trace_keys] for c in TRACE_COLUMNS],
             [self._traces[k][1] for k in trace_keys]],
        ).fetchall()
        return any(self._labels[k][1] for k in label_keys) or any(self._traces[k][1] for k in trace_keys)

    # --- the canonical row -----------------------------------------------------------------------------------

    @staticmethod
    def _columns(family: Family, fmt: str, source_name: str) -> str:
        special = {
            "source_labels": "sl.labels",
            "dest_labels": "dl.labels",
            **{c: f"tr.{c}" for c in TRACE_COLUMNS},
            "format": _quote(fmt),
            "source_file": _quote(source_name),
            "source_line": "p.line_no",
        }
        exprs = []
        for column in schema.COLUMNS:
            sql = special.get(column.name) or family.columns.get(column.name, "NULL")
            exprs.append(f'CAST({sql} AS {schema.duckdb_type(column.type)}) AS "{column.name}"')
        return ",\n".join(exprs)
