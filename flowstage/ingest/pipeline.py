"""Ingesting inputs into a store: detection, resuming where the last run stopped, batches, commits, summary.

Every batch commits its parts together with how far the input has been consumed, so a re-run adds nothing
twice, an appended file adds only its new lines, and a crash loses at most the batch in flight.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb

from flowstage.errors import UsageError
from flowstage.ingest.detect import DOCUMENT, FORMATS, Detection, detect
from flowstage.ingest.documents import document_records
from flowstage.ingest.lines import line_batches
from flowstage.ingest.normalise import INVALID_JSON, BatchResult, Normaliser
from flowstage.ingest.sources import FINGERPRINT_BYTES, Content, DamagedInput, Source, expand
from flowstage.options import INGEST_BATCH_ROWS
from flowstage.store import DEFAULT_LOCK_TIMEOUT, Store, StoreWriter, WriteBehind

DEFAULT_BATCH_ROWS = INGEST_BATCH_ROWS

# What happened to one input.
INGESTED, UNCHANGED, SKIPPED, FAILED = "ingested", "unchanged", "skipped", "error"


@dataclass
class FileResult:
    source: str
    status: str
    format: str | None = None
    read: int = 0
    stored: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    note: str = ""  # why skipped / failed, or what was resumed

    def add(self, batch: BatchResult) -> None:
        self.read += batch.read
        self.stored += batch.stored
        self.quarantined.update(batch.reasons)


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)

    @property
    def read(self) -> int:
        return sum(f.read for f in self.files)

    @property
    def stored(self) -> int:
        return sum(f.stored for f in self.files)

    @property
    def quarantined(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.quarantined)
        return total

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.status == FAILED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "records_read": self.read,
            "stored": self.stored,
            "quarantined": sum(self.quarantined.values()),
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
            "by_file": [
                {"source": f.source, "status": f.status, "format": f.format, "records_read": f.read,
                 "stored": f.stored, "quarantined": dict(sorted(f.quarantined.items())), "note": f.note}
                for f in self.files
            ],
        }


ProgressCallback = Callable[[int, int], None]  # (bytes of input read so far, bytes of input in all)


def ingest(paths: Sequence[str], store: Store, format: str = "auto", batch_rows: int = DEFAULT_BATCH_ROWS,
           lock_timeout: float = DEFAULT_LOCK_TIMEOUT, progress: ProgressCallback | None = None) -> IngestSummary:
    """Read every input into `store`; records that cannot be read go to its quarantine."""
    if format != "auto" and format not in FORMATS:
        raise UsageError(f"unknown format {format!r}; choose auto or one of {', '.join(FORMATS)}")
    if batch_rows < 1:
        raise UsageError("--batch-rows must be at least 1")
    # A folder being ingested may hold the store itself: its own files are never input.
    sources = [s for s in expand(paths) if s.path is None or not s.path.is_relative_to(store.root)]
    sizes = [s.path.stat().st_size if s.path is not None else 0 for s in sources]
    tracker = _Progress(progress, sum(sizes))
    summary = IngestSummary()
    forced = None if format == "auto" else format
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'").fetchall()
    # Rows carry their source line, so parts need not keep file order; letting DuckDB write in any order
    # lets both cores work on the Parquet output.
    con.execute("SET preserve_insertion_order = false").fetchall()
    try:
        normaliser = Normaliser(con)
        with store.writer(timeout=lock_timeout) as writer:
            for source, size in zip(sources, sizes, strict=True):
                summary.files.append(_ingest_one(source, writer, normaliser, forced, batch_rows, tracker))
                tracker.finish(size)
    finally:
        con.close()
    return summary


def _resume_point(source: Source, content: Content, writer: StoreWriter) -> tuple[dict[str, Any] | None, str]:
    """The manifest entry this input continues (same path, or a renamed/rotated copy), and a note."""
    if source.path is None:
        return None, ""
    entry = writer.source(source.name)
    if entry is not None:
        if content.matches(entry["head_len"], entry["head_sha256"]):
            return entry, ""
        return None, "content replaced since the last ingest: read again from the start"
    length, digest = content.fingerprint
    if length < FINGERPRINT_BYTES:
        return None, ""
    for name, other in writer.sources().items():
        if other.get("head_len") == length and other.get("head_sha256") == digest:
            return other, f"continues {name} (renamed or rotated)"
    return None, ""


class _Progress:
    """Turns positions within the current file into a running total for the caller's callback."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def at(self, position: int) -> None:
        if self.callback:
            self.callback(self.done + position, self.total)

    def finish(self, size: int) -> None:
        self.done += size
        self.at(0)


def _ingest_one(source: Source, writer: StoreWriter, normaliser: Normaliser, forced: str | None, batch_rows: int,
                progress: _Progress) -> FileResult:
    try:
        content = Content(source)
    except OSError as exc:
        return FileResult(source.name, FAILED, note=f"cannot read: {exc.strerror or exc}")
    with content:
        detection = detect(content.head, forced)
        if detection.format is None:
            if source.explicit and not detection.format_would_help:
                return FileResult(source.name, FAILED, note=f"not a flow log: {detection.reason}")
            if source.explicit:
                return FileResult(source.name, FAILED, note=(
                    f"cannot tell which flow-log format this is ({detection.reason}); "
                    "name it with --format (felix, elastic, linseed, s3, goldmane, whisker)"))
            return FileResult(source.name, SKIPPED, note=f"not a flow log ({detection.reason})")
        entry, note = _resume_point(source, content, writer)
        stat = source.path.stat() if source.path is not None else None
        if entry is not None and stat is not None and _unchanged(entry, stat, content.compression):
            if writer.source(source.name) is None:
                writer.commit(sources={source.name: entry})  # a renamed copy: know it by its new name too
            return FileResult(source.name, UNCHANGED, detection.format, note=note or "already ingested")
        result = FileResult(source.name, INGESTED, detection.format, note=note)
        base = _base_entry(content, detection, stat)
        try:
            if detection.framing == DOCUMENT:
                _ingest_documents(content, detection, entry, base, writer, normaliser, result)
            else:
                _ingest_lines(content, detection, entry, base, writer, normaliser, batch_rows, result, progress)
        except UnicodeDecodeError as exc:
            result.status, result.note = FAILED, f"not UTF-8 text ({exc.reason})"
        except (OSError, EOFError, ValueError) as exc:
            # A corrupt or cut compressed stream: what was committed before the damage stays.
            result.status, result.note = FAILED, f"cannot read past byte {content.position}: {exc}"
        return result


def _unchanged(entry: dict[str, Any], stat: os.stat_result, compression: str | None) -> bool:
    if compression is None:
        return stat.st_size == entry["offset"] + entry.get("partial_tail", 0)
    # A compressed file's size says nothing of its content's: only a read to the end marks it complete.
    return (stat.st_size == entry.get("file_size") and stat.st_mtime_ns == entry.get("mtime_ns")
            and entry.get("complete", False))


def _base_entry(content: Content, detection: Detection, stat: os.stat_result | None) -> dict[str, Any]:
    length, digest = content.fingerprint
    return {
        "format": detection.format,
        "framing": detection.framing,
        "compression": content.compression,
        "file_size": stat.st_size if stat else None,
        "mtime_ns": stat.st_mtime_ns if stat else None,
        "head_len": length,
        "head_sha256": digest,
    }


def _commit(writer: StoreWriter, content: Content, batch: BatchResult, entry: dict[str, Any]) -> None:
    sources = {content.source.name: entry} if content.source.path is not None else None
    entry["ingested_at"] = datetime.now(UTC).isoformat()
    writer.commit(flows=batch.flows, quarantine=batch.quarantine, sources=sources)


def _stage_and_commit(job: tuple[StoreWriter, Content, BatchResult, dict[str, Any], FileResult]) -> None:
    writer, content, outcome, done, result = job
    outcome.stage(writer)
    _commit(writer, content, outcome, done)
    result.add(outcome)


def _ingest_lines(content: Content, detection: Detection, entry: dict[str, Any] | None, base: dict[str, Any],
                  writer: StoreWriter, normaliser: Normaliser, batch_rows: int, result: FileResult,
                  progress: _Progress) -> None:
    offset = entry["offset"] if entry else 0
    newlines = entry["newlines"] if entry else 0
    records = entry["records"] if entry else 0
    content.skip(offset)
    done = {**base, "offset": offset, "newlines": newlines, "records": records,
            "partial_tail": entry.get("partial_tail", 0) if entry else 0}
    # Parquet is written and committed behind the reading: the next batch is parsed meanwhile, in order.
    behind = WriteBehind([_stage_and_commit])
    try:
        try:
            for batch in _read_ahead(line_batches(content, newlines + 1, offset, batch_rows)):
                outcome = normaliser.run(writer, batch.table, detection.format, detection.framing,
                                         content.source.name, at_file_start=offset == 0)
                end, partial = batch.end, 0
                if outcome.unterminated_quarantined:
                    # A last line cut mid-record may be a writer still writing: read it again if the file grows.
                    end, partial = batch.end - batch.unterminated_bytes, batch.unterminated_bytes
                records += outcome.read
                done = {**base, "offset": end, "newlines": batch.newlines, "records": records,
                        "partial_tail": partial}
                behind.put((writer, content, outcome, done, result))
                offset = end
                progress.at(content.raw_position)
        finally:
            behind.finish()  # what was read before a failure is committed before the failure is reported
    except DamagedInput:
        # Read as far as it can be read: a re-run would only quarantine the same cut line again.
        _mark_complete(writer, content, done)
        raise
    _mark_complete(writer, content, done)


def _mark_complete(writer: StoreWriter, content: Content, done: dict[str, Any]) -> None:
    """Record that a compressed file was read to its end: its size and mtime alone cannot tell."""
    if content.compression is not None and content.source.path is not None:
        writer.commit(sources={content.source.name: {**done, "complete": True}})


def _ingest_documents(content: Content, detection: Detection, entry: dict[str, Any] | None, base: dict[str, Any],
                      writer: StoreWriter, normaliser: Normaliser, result: FileResult) -> None:
    text = content.rest().decode("utf-8")
    table, unreadable = document_records(text)
    done = entry["records"] if entry else 0
    table = table.slice(min(done, table.num_rows))
    outcome = normaliser.run(writer, table, detection.format, detection.framing, content.source.name,
                             at_file_start=False)
    if unreadable is not None and unreadable.record_no > done:
        extra = normaliser.write_quarantine(writer, [(unreadable.record_no, INVALID_JSON, unreadable.detail,
                                                     unreadable.text)], detection.format, content.source.name)
        outcome.read += 1
        outcome.quarantine.extend(extra)
        outcome.reasons[INVALID_JSON] += 1
    total = done + outcome.read
    outcome.stage(writer)
    _commit(writer, content, outcome, {**base, "offset": content.position, "newlines": text.count("\n"),
                                       "records": total, "partial_tail": 0, "complete": True})
    result.add(outcome)


T = TypeVar("T")


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """Produce the next item in a thread while the caller works on this one (reading overlaps DuckDB work)."""
    slot: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(entry: tuple[str, Any]) -> bool:
        # Every hand-over gives up once the consumer has stopped: a blocking put would wait for ever.
        while not stop.is_set():
            try:
                slot.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it where the read was asked for
            offer(("error", exc))

    thread = threading.Thread(target=produce, name="flowstage-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slot.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()
