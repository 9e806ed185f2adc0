"""Ingesting inputs into a store: detection, resuming where the last run stopped, batches, commits, summary.

Every batch commits its parts together with how far the input has been consumed, so a re-run adds nothing
twice, an appended file adds only its new lines, and a crash loses at most the batches in flight. Batches that
worker processes stage out of order are committed in file order: the manifest only ever records a prefix.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from flowstage.errors import UsageError
from flowstage.ingest.detect import DOCUMENT, FORMATS, Detection, detect
from flowstage.ingest.parallel import Finished, Job, Pool, Staged, default_workers
from flowstage.ingest.ranges import pieces
from flowstage.ingest.sources import FINGERPRINT_BYTES, Content, DamagedInput, Source, expand
from flowstage.options import INGEST_BATCH_ROWS
from flowstage.store import DEFAULT_LOCK_TIMEOUT, Store, StoreWriter, WriteBehind

if TYPE_CHECKING:
    from flowstage.ingest.normalise import BatchResult, Normaliser

# Parsing (DuckDB, Arrow) is imported where an input is read in this process: when workers read everything, the
# parent only plans and commits, and starts in a fraction of the time.

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

    def add(self, batch: BatchResult | Staged) -> None:
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
           lock_timeout: float = DEFAULT_LOCK_TIMEOUT, progress: ProgressCallback | None = None,
           workers: int | None = None, piece_bytes: int | None = None) -> IngestSummary:
    """Read every input into `store`; records that cannot be read go to its quarantine.

    With `workers` above 1 (default: one per core), inputs large enough to pay for it are read by that many
    processes at once: plain files in pieces of about `piece_bytes` (default: two even shares per worker, 16 to
    256 MiB), compressed files whole, each beside the others. The store shows the same rows either way.
    """
    if format != "auto" and format not in FORMATS:
        raise UsageError(f"unknown format {format!r}; choose auto or one of {', '.join(FORMATS)}")
    if batch_rows < 1:
        raise UsageError("--batch-rows must be at least 1")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if piece_bytes is not None and piece_bytes < 1:
        raise UsageError("piece_bytes must be at least 1")
    # A folder being ingested may hold the store itself: its own files are never input.
    sources = [s for s in expand(paths) if s.path is None or not s.path.is_relative_to(store.root)]
    sizes = [s.path.stat().st_size if s.path is not None else 0 for s in sources]
    tracker = _Progress(progress, sum(sizes))
    summary = IngestSummary()
    forced = None if format == "auto" else format
    workers = default_workers() if workers is None else workers
    with store.writer(timeout=lock_timeout) as writer, _Session(writer, forced, batch_rows, tracker) as session:
        if workers > 1 and (piece_bytes is not None or sum(sizes) >= MIN_PARALLEL_BYTES):
            summary.files = session.ingest_across(sources, sizes, workers, piece_bytes)
        else:
            for source, size in zip(sources, sizes, strict=True):
                summary.files.append(session.ingest_one(source))
                tracker.finish(size)
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


@dataclass
class _Opened:
    """An input ready to read: content open at its start, format known, and the manifest entry it resumes."""

    source: Source
    content: Content
    detection: Detection
    entry: dict[str, Any] | None
    base: dict[str, Any]
    result: FileResult


class _Session:
    """One ingest holding the store's writer lock: inputs read here, or handed to workers and committed here."""

    def __init__(self, writer: StoreWriter, forced: str | None, batch_rows: int, progress: _Progress) -> None:
        self.writer, self.forced, self.batch_rows, self.progress = writer, forced, batch_rows, progress
        self._normaliser: Normaliser | None = None

    @property
    def normaliser(self) -> Normaliser:
        # Made on first use: an ingest whose inputs all go to workers never parses here.
        if self._normaliser is None:
            from flowstage.ingest.normalise import Normaliser, ingest_connection

            self._normaliser = Normaliser(ingest_connection())
        return self._normaliser

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._normaliser is not None:
            self._normaliser.con.close()

    def open(self, source: Source) -> _Opened | FileResult:
        """Open an input, tell its format and where it resumes; a FileResult when there is nothing to read."""
        try:
            content = Content(source)
        except OSError as exc:
            return FileResult(source.name, FAILED, note=f"cannot read: {exc.strerror or exc}")
        try:
            prepared = self._prepare(source, content)
        except BaseException:
            content.close()
            raise
        if isinstance(prepared, FileResult):
            content.close()
        return prepared

    def _prepare(self, source: Source, content: Content) -> _Opened | FileResult:
        detection = detect(content.head, self.forced)
        if detection.format is None:
            if source.explicit and not detection.format_would_help:
                return FileResult(source.name, FAILED, note=f"not a flow log: {detection.reason}")
            if source.explicit:
                return FileResult(source.name, FAILED, note=(
                    f"cannot tell which flow-log format this is ({detection.reason}); "
                    "name it with --format (felix, elastic, linseed, s3, goldmane, whisker)"))
            return FileResult(source.name, SKIPPED, note=f"not a flow log ({detection.reason})")
        entry, note = _resume_point(source, content, self.writer)
        stat = source.path.stat() if source.path is not None else None
        if entry is not None and stat is not None and _unchanged(entry, stat, content.compression):
            if self.writer.source(source.name) is None:
                self.writer.commit(sources={source.name: entry})  # a renamed copy: know it by its new name too
            return FileResult(source.name, UNCHANGED, detection.format, note=note or "already ingested")
        return _Opened(source, content, detection, entry, _base_entry(content, detection, stat),
                       FileResult(source.name, INGESTED, detection.format, note=note))

    def ingest_one(self, source: Source) -> FileResult:
        """Read one input here, batch after batch."""
        opened = self.open(source)
        if isinstance(opened, FileResult):
            return opened
        with opened.content:
            self._read_here(opened)
        return opened.result

    def _read_here(self, opened: _Opened) -> None:
        content, detection, result = opened.content, opened.detection, opened.result
        try:
            if detection.framing == DOCUMENT:
                _ingest_documents(content, detection, opened.entry, opened.base, self.writer, self.normaliser,
                                  result)
            else:
                _ingest_lines(content, detection, opened.entry, opened.base, self.writer, self.normaliser,
                              self.batch_rows, result, self.progress)
        except UnicodeDecodeError as exc:
            result.status, result.note = FAILED, f"not UTF-8 text ({exc.reason})"
        except (OSError, EOFError, ValueError) as exc:
            # A corrupt or cut compressed stream: what was committed before the damage stays.
            result.status, result.note = FAILED, f"cannot read past byte {content.position}: {exc}"

    def ingest_across(self, sources: list[Source], sizes: list[int], workers: int,
                      piece_bytes: int | None) -> list[FileResult]:
        """Read the inputs with `workers` processes: line-framed files go out as jobs (plain ones in pieces) and
        each file's batches are committed in file order as they come back; documents and stdin are read here."""
        results: list[FileResult] = []
        files: list[_FileCommits] = []
        for source, size in zip(sources, sizes, strict=True):
            opened = self.open(source)
            if isinstance(opened, FileResult):
                results.append(opened)
                self.progress.finish(size)
                continue
            results.append(opened.result)
            if source.path is None or opened.detection.framing == DOCUMENT:
                with opened.content:
                    self._read_here(opened)
                self.progress.finish(size)
                continue
            opened.content.close()
            files.append(_FileCommits(self.writer, opened))
        if not files:
            return results
        left = sum(f.bytes_left for f in files)
        piece = piece_bytes or min(max(-(-left // (workers * PIECES_PER_WORKER)), MIN_PIECE_BYTES), MAX_PIECE_BYTES)
        jobs = _Jobs(files, piece, self.batch_rows)
        jobs_in_all = sum(f.jobs_expected(piece) for f in files)
        if jobs_in_all < 2 or (piece_bytes is None and left < MIN_PARALLEL_BYTES):
            # Too little left to pay for starting workers (a file grown by a few lines): read it here.
            from flowstage.ingest.worker import run_job

            for job in jobs:
                for message in run_job(job, self.writer, self.normaliser):
                    self._receive(jobs, message)
        else:
            try:
                with Pool(min(workers, jobs_in_all), self.writer.root, self.writer.staging) as pool:
                    for message in pool.run(iter(jobs)):
                        self._receive(jobs, message)
            except BaseException:
                # The workers are gone: parts they staged that were never committed are removed now, not left
                # for the next writer.
                self.writer.clean_orphans()
                raise
        for f in files:
            f.discard_uncommitted()
        return results

    def _receive(self, jobs: _Jobs, message: Staged | Finished) -> None:
        self.progress.done += jobs.receive(message)
        self.progress.at(0)


# The input left is cut into this many pieces per worker: equal shares, and a second round so that a worker that
# started late or ran slow leaves less to wait for. (Memory follows --batch-rows, not the piece size.)
PIECES_PER_WORKER = 2
MIN_PIECE_BYTES = 16 * 1024 * 1024  # a batch costs ~40 ms to plan and write whatever its size: pieces amortise it
MAX_PIECE_BYTES = 256 * 1024 * 1024  # what a crash can leave staged but uncommitted, per worker, to redo
MIN_PARALLEL_BYTES = 2 * MIN_PIECE_BYTES  # less input than this is read faster than workers start


class _FileCommits:
    """One file read by workers: its jobs in file order, and its staged batches committed in that order."""

    def __init__(self, writer: StoreWriter, opened: _Opened) -> None:
        entry = opened.entry or {}
        self.writer, self.source, self.base, self.result = writer, opened.source, opened.base, opened.result
        self.detection = opened.detection
        self.compressed = opened.content.compression is not None
        self.start = entry.get("offset", 0)
        self.first_line = entry.get("newlines", 0) + 1
        self.records = entry.get("records", 0)
        self.done = {**self.base, "offset": self.start, "newlines": self.first_line - 1, "records": self.records,
                     "partial_tail": entry.get("partial_tail", 0)}
        self.jobs: list[int] = []  # not yet committed, in file order
        self.staged: dict[int, list[Staged]] = {}
        self.finished: dict[int, Finished] = {}
        self.stopped = False  # reading failed: nothing after the failure is committed

    @property
    def bytes_left(self) -> int:
        return max(self.base["file_size"] - (0 if self.compressed else self.start), 0)

    def jobs_expected(self, piece_bytes: int) -> int:
        if self.compressed:
            return 1
        return -(-self.bytes_left // piece_bytes)

    def stretches(self, piece_bytes: int) -> Iterator[tuple[int, int | None, int]]:
        """(start, end, first line) of each job: the rest of a compressed file, pieces of a plain one."""
        if self.compressed:
            yield self.start, None, self.first_line
            return
        # The size when the ingest began: lines appended since are for the next run, as a cut last line is.
        for piece in pieces(self.source.path, self.start, self.base["file_size"], self.first_line, piece_bytes):
            yield piece.start, piece.end, piece.first_line

    def receive(self, message: Staged | Finished) -> None:
        if isinstance(message, Staged):
            self.staged.setdefault(message.job, []).append(message)
        else:
            self.finished[message.job] = message
        while self.jobs and not self.stopped:
            job = self.jobs[0]
            for staged in self.staged.pop(job, []):
                self._commit(staged)
            if job not in self.finished:
                return
            self.jobs.pop(0)
            self._finish(self.finished.pop(job))

    def _commit(self, staged: Staged) -> None:
        end, partial = staged.end, 0
        if staged.unterminated_quarantined:
            # A last line cut mid-record may be a writer still writing: read it again if the file grows.
            end, partial = staged.end - staged.unterminated_bytes, staged.unterminated_bytes
        self.records += staged.read
        self.done = {**self.base, "offset": end, "newlines": staged.newlines, "records": self.records,
                     "partial_tail": partial}
        _commit(self.writer, self.source, staged, self.done)
        self.result.add(staged)

    def _finish(self, finished: Finished) -> None:
        if finished.failure is not None:
            self.result.status, self.result.note = FAILED, finished.failure
            self.stopped = True
        if self.compressed and finished.read_to_end:
            _mark_complete(self.writer, self.source, self.done)

    def discard_uncommitted(self) -> None:
        """Remove the parts of batches staged after a failure: they were never committed."""
        for batches in self.staged.values():
            for staged in batches:
                for part in (*staged.flows, *staged.quarantine):
                    (self.writer.root / part.path).unlink(missing_ok=True)
        self.staged.clear()


class _Jobs:
    """The jobs of every file in order, made as workers ask for them, and who each belongs to."""

    def __init__(self, files: list[_FileCommits], piece_bytes: int, batch_rows: int) -> None:
        self.files, self.piece_bytes, self.batch_rows = files, piece_bytes, batch_rows
        self.owner: dict[int, _FileCommits] = {}
        self.read_bytes: dict[int, int] = {}  # how far each job has got, for progress

    def __iter__(self) -> Iterator[Job]:
        number = 0
        for f in self.files:
            for start, end, first_line in f.stretches(self.piece_bytes):
                if f.stopped:
                    break
                job = Job(number, str(f.source.path), start, end, first_line, f.detection.format,
                          f.detection.framing, self.batch_rows)
                self.owner[number] = f
                self.read_bytes[number] = 0 if end is None else start
                f.jobs.append(number)
                number += 1
                yield job

    def receive(self, message: Staged | Finished) -> int:
        """Hand a message to its file; returns the bytes of input it accounts for, for progress."""
        self.owner[message.job].receive(message)
        if isinstance(message, Staged):
            advance = max(message.read_bytes - self.read_bytes[message.job], 0)
            self.read_bytes[message.job] = message.read_bytes
            return advance
        return 0


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


def _commit(writer: StoreWriter, source: Source, batch: BatchResult | Staged, entry: dict[str, Any]) -> None:
    sources = {source.name: entry} if source.path is not None else None
    entry["ingested_at"] = datetime.now(UTC).isoformat()
    writer.commit(flows=batch.flows, quarantine=batch.quarantine, sources=sources)


def _stage_and_commit(job: tuple[StoreWriter, Content, BatchResult, dict[str, Any], FileResult]) -> None:
    writer, content, outcome, done, result = job
    outcome.stage(writer)
    _commit(writer, content.source, outcome, done)
    result.add(outcome)


def _ingest_lines(content: Content, detection: Detection, entry: dict[str, Any] | None, base: dict[str, Any],
                  writer: StoreWriter, normaliser: Normaliser, batch_rows: int, result: FileResult,
                  progress: _Progress) -> None:
    from flowstage.ingest.lines import CHUNK_BYTES, line_batches

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
            for batch in _read_ahead(line_batches(content.chunks(CHUNK_BYTES), newlines + 1, offset, batch_rows)):
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
        if content.compression is not None:
            _mark_complete(writer, content.source, done)
        raise
    if content.compression is not None:
        _mark_complete(writer, content.source, done)


def _mark_complete(writer: StoreWriter, source: Source, done: dict[str, Any]) -> None:
    """Record that a compressed file was read to its end: its size and mtime alone cannot tell."""
    if source.path is not None:
        writer.commit(sources={source.name: {**done, "complete": True}})


def _ingest_documents(content: Content, detection: Detection, entry: dict[str, Any] | None, base: dict[str, Any],
                      writer: StoreWriter, normaliser: Normaliser, result: FileResult) -> None:
    from flowstage.ingest.documents import document_records
    from flowstage.ingest.normalise import INVALID_JSON

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
    _commit(writer, content.source, outcome, {**base, "offset": content.position, "newlines": text.count("\n"),
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
