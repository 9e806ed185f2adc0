"""Ingest on several cores, the parent's side: the jobs and messages, and the pool of worker processes that takes
jobs as they free up and sends back what each batch staged, for the pipeline to commit in file order.

Workers (flowstage.ingest.worker) stage parts, renamed into the store but listed nowhere, and never commit: only
the parent, which holds the store's writer lock, makes them visible. This side loads neither DuckDB nor Arrow.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from flowstage.errors import FlowstageError
from flowstage.store import Part


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
    read: int  # records read
    flows: list[Part] = field(default_factory=list)
    quarantine: list[Part] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)  # quarantined records by reason
    unterminated_quarantined: bool = False  # the cut last line went to the quarantine

    @property
    def stored(self) -> int:
        return sum(p.rows for p in self.flows)


@dataclass
class Finished:
    """A job is done: every batch it staged has been sent before this."""

    job: int
    failure: str | None = None  # why reading stopped early (the batches before it stand)
    read_to_end: bool = False  # the content was read as far as it can be read


@dataclass
class Crashed:
    """An unexpected error in a worker, with its traceback; the worker stops."""

    job: int
    trace: str


class WorkerLost(FlowstageError):
    """A worker process ended without finishing its job (killed, out of memory)."""


class WorkerFailed(RuntimeError):
    """An unexpected error inside a worker; the message carries the worker's traceback."""


_HELPER = "import json, sys; from flowstage.ingest.worker import start_workers; start_workers(json.loads(sys.argv[1]))"


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
        # The helper must import this very flowstage, whatever sys.path the caller runs with. Workers do no linear
        # algebra: numpy need not start its BLAS threads (a tenth of a second of the helper's start-up).
        package_root = str(Path(__file__).resolve().parents[2])
        env = {"OPENBLAS_NUM_THREADS": "1", **os.environ,
               "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        try:
            # Standard output carries the parent's results (`--json`): workers have nothing to say there.
            self._helper = subprocess.Popen([sys.executable, "-c", _HELPER, json.dumps(spec)],
                                            pass_fds=[lifeline, *theirs], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, env=env)
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
                if isinstance(message, Crashed):
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

