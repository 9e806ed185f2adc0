"""Ingest on several cores, the workers' side: each worker reads the jobs it is given, normalises them batch by
batch and stages the parts, and says what it staged; the parent commits.

One helper process loads DuckDB, Arrow and the normaliser once and forks the workers from there, so they start
warm and inherit nothing from the parent but their connection to it. A worker stops the moment its parent does.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow.parquet  # noqa: F401  (loaded once here before the fork: every worker writes Parquet parts)

from flowstage.ingest.lines import CHUNK_BYTES, line_batches
from flowstage.ingest.normalise import Normaliser, ingest_connection
from flowstage.ingest.parallel import Crashed, Finished, Job, Staged
from flowstage.ingest.sources import Content, DamagedInput, Source
from flowstage.store import Store, StoreWriter


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
                             outcome.read, outcome.flows, outcome.quarantine, outcome.reasons,
                             outcome.unterminated_quarantined)
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
    con = ingest_connection()
    # One thread: the workers already keep every core busy, and DuckDB's threads waiting for work beside another
    # worker's only cost CPU.
    con.execute("SET threads = 1").fetchall()
    normaliser = Normaliser(con)
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
            jobs.send(Crashed(job.number, traceback.format_exc()))
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
    # Nothing is left to flush or close, and the parent waits for this process: skip the interpreter's shutdown.
    os._exit(0)
