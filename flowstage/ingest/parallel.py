"""Ingest on several cores: worker processes that read stretches of input files into staged parts, and the pool
that hands the stretches out and brings back what each batch staged, for the pipeline to commit in file order.

Workers stage parts (renamed into the store, listed nowhere) and never commit: only the parent, which holds the
store's writer lock, makes them visible. A worker stops the moment its parent does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from flowstage.errors import FlowstageError
from flowstage.ingest.lines import CHUNK_BYTES, line_batches
from flowstage.ingest.normalise import BatchResult, Normaliser, ingest_connection
from flowstage.ingest.sources import Content, DamagedInput, Source
from flowstage.store import Store, StoreWriter


@dataclass(frozen=True)
class Job:
    """A contiguous stretch of one input for one worker: a piece of a plain file, or the rest of a compressed one."""

    number: int
    path: str
    start: int  # content offset of the stretch's first line
    end: int | None  # content offset it stops at; None: wherever the content ends
    first_line: int
    format: str
    framing: str
    batch_rows: int


@dataclass
class Staged:
    """A batch of a job, normalised and staged: its parts are in the store but not committed."""

    job: int
    end: int  # content offset just past the batch
    newlines: int  # newlines in the content before `end`
    unterminated_bytes: int  # a last line without newline, included in `end`
    read_bytes: int  # bytes of the file on disk the job has got through
    outcome: BatchResult


@dataclass
class Finished:
    """A job is done: every batch it staged has been sent before this."""

    job: int
    failure: str | None = None  # why reading stopped early (the batches before it stand)
    read_to_end: bool = False  # the content was read as far as it can be read


@dataclass
class _Crashed:
    job: int
    trace: str


class WorkerLost(FlowstageError):
    """A worker process ended without finishing its job (killed, out of memory)."""


class WorkerFailed(RuntimeError):
    """An unexpected error inside a worker; the message carries the worker's traceback."""


# --- the worker side ---------------------------------------------------------------------------------------


def run_job(job: Job, writer: StoreWriter, normaliser: Normaliser) -> Iterator[Staged | Finished]:
    """Read, normalise and stage one job batch by batch; ends with its Finished."""
    source = Source(Path(job.path), explicit=True)
    try:
        content = Content(source)
    except OSError as exc:
        yield Finished(job.number, failure=f"cannot read: {exc.strerror or exc}")
        return
    with content:
        offset = job.start
        try:
            content.skip(job.start)
            for batch in line_batches(_stretch(content, job.end), job.first_line, job.start, job.batch_rows):
                outcome = normaliser.run(writer, batch.table, job.format, job.framing, source.name,
                                         at_file_start=offset == 0)
                outcome.stage(writer)
                yield Staged(job.number, batch.end, batch.newlines, batch.unterminated_bytes, content.raw_position,
                             outcome)
                offset = batch.end
        except DamagedInput as exc:
            yield Finished(job.number, failure=f"cannot read past byte {content.position}: {exc}", read_to_end=True)
            return
        except UnicodeDecodeError as exc:
            yield Finished(job.number, failure=f"not UTF-8 text ({exc.reason})")
            return
        except (OSError, EOFError, ValueError) as exc:
            yield Finished(job.number, failure=f"cannot read past byte {content.position}: {exc}")
            return
    yield Finished(job.number, read_to_end=True)


def _stretch(content: Content, end: int | None) -> Iterator[bytes]:
    """The content from its current position to `end` (to its end when None), in chunks."""
    if end is None:
        yield from content.chunks(CHUNK_BYTES)
        return
    while (left := end - content.position) > 0:
        chunk = content.read(min(left, CHUNK_BYTES))
        if not chunk:
            raise OSError("the file is shorter than when the ingest began (truncated or replaced while read)")
        yield chunk


def _serve(jobs: Connection, lifeline: int, store_root: str, staging: str) -> None:
    """A worker's life: jobs in, staged batches out, until told to stop or the parent is gone."""
    threading.Thread(target=_exit_with_parent, args=(lifeline,), name="flowstage-parent-watch", daemon=True).start()
    writer = StoreWriter(Store(Path(store_root)))
    writer.staging = Path(staging) / f"worker-{os.getpid()}"
    normaliser = Normaliser(ingest_connection())
    while True:
        try:
            job = jobs.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            for message in run_job(job, writer, normaliser):
                jobs.send(message)
        except BaseException:
            jobs.send(_Crashed(job.number, traceback.format_exc()))
            return


def _exit_with_parent(lifeline: int) -> None:
    # Only the parent holds the other end: reading ends when it does, even when it was killed outright. Leaving at
    # once means no part is staged into the store after the parent died, under the feet of the next writer.
    while os.read(lifeline, 1):
        pass
    os._exit(1)


def start_workers(spec: dict[str, Any]) -> None:
    """The process the parent starts: it loads ingest once, then forks one worker per connection and waits for
    them, so each worker starts warm and none inherits anything from the parent but its two descriptors."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    children = []
    for fd in spec["connections"]:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for other in spec["connections"]:
                    if other != fd:
                        os.close(other)
                _serve(Connection(fd), spec["lifeline"], spec["store"], spec["staging"])
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        children.append(pid)
    for fd in [*spec["connections"], spec["lifeline"]]:
        os.close(fd)
    for pid in children:
        os.waitpid(pid, 0)


# --- the parent side ---------------------------------------------------------------------------------------

_HELPER = "import json, sys; from flowstage.ingest.parallel import start_workers; start_workers(json.loads(sys.argv[1]))"


class Pool:
    """`workers` processes, forked from one helper that has loaded ingest once, each staging into `staging`."""

    def __init__(self, workers: int, store_root: Path, staging: Path) -> None:
        self.workers, self.store_root, self.staging = workers, store_root, staging
        self._connections: list[Connection] = []
        self._helper: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None

    def __enter__(self) -> Pool:
        lifeline, self._lifeline = os.pipe()
        pairs = [socket.socketpair() for _ in range(self.workers)]
        theirs = [b.detach() for _, b in pairs]
        self._connections = [Connection(a.detach()) for a, _ in pairs]
        spec = {"connections": theirs, "lifeline": lifeline, "store": str(self.store_root),
                "staging": str(self.staging)}
        # The helper must import this very flowstage, whatever sys.path the caller runs with.
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH"))
                                                           if p)}
        try:
            self._helper = subprocess.Popen([sys.executable, "-c", _HELPER, json.dumps(spec)],
                                            pass_fds=[lifeline, *theirs], stdin=subprocess.DEVNULL, env=env)
        finally:
            for fd in [lifeline, *theirs]:
                os.close(fd)
        return self

    def run(self, jobs: Iterator[Job]) -> Iterator[Staged | Finished]:
        """Hand jobs out one at a time as workers free up, in order; produce what the workers send back."""
        idle = list(self._connections)
        busy: set[Connection] = set()
        upcoming = next(jobs, None)
        while upcoming is not None or busy:
            while idle and upcoming is not None:
                worker = idle.pop()
                try:
                    worker.send(upcoming)
                except OSError:
                    raise self._lost() from None
                busy.add(worker)
                upcoming = next(jobs, None)  # found while the workers work: ready when one frees up
            ready = wait(list(busy))
            for worker in [c for c in list(busy) if c in ready]:
                try:
                    message = worker.recv()
                except (EOFError, OSError):
                    raise self._lost() from None
                if isinstance(message, _Crashed):
                    raise WorkerFailed(f"ingest worker failed:\n{message.trace}")
                yield message
                if isinstance(message, Finished):
                    busy.discard(worker)
                    idle.append(worker)

    @staticmethod
    def _lost() -> WorkerLost:
        return WorkerLost(
            "an ingest worker process ended in the middle of its work (killed, or out of memory?). What was "
            "committed stays in the store: run the same ingest again to add the rest, with fewer --workers or a "
            "smaller --batch-rows if memory is short")

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # a worker that died already
                    connection.send(None)
        for connection in self._connections:
            connection.close()
        if self._lifeline is not None:
            os.close(self._lifeline)  # any worker still busy stops now
            self._lifeline = None
        if self._helper is not None:
            self._helper.wait()
            self._helper = None
        self._connections = []


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

