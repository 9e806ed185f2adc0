"""Judging batches of replay keys, in this process or in forked worker processes (one per core) when the store
holds enough keys to pay for them.

The keys come sorted by namespace pair (flowstage.replay.keys.key_extraction_sql), so a run of consecutive keys
meets few endpoints, and an endpoint's facts, compiled programs and match caches are built in the process judging
that run. Each worker judges its own contiguous share of the batches from the front; one that runs out takes
batches from the back of the largest share left, so the processes finish together without scattering endpoints
over all of them. Verdicts come back per batch, in the order batches finish.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import traceback
from collections import OrderedDict, deque
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from flowstage.collector import fewer_collections
from flowstage.policy.sets import PolicySets
from flowstage.replay.judge import Judge, verdict_columns
from flowstage.replay.keys import TrafficBuilder

# The verdict columns of a batch of keys (flowstage.replay.judge.verdict_columns), one row per key in batch order:
# Arrow crosses the pipe from a worker far cheaper than the same verdicts as Python tuples.
Verdicts = pa.Table
MIN_KEYS_PER_WORKER = 10_000  # below this, starting workers costs more than it saves


class KeyBatches:
    """The extracted keys (a Parquet file, in key order) as numbered batches of at most `size` keys, read in any
    order: row groups are read whole and sliced, the last few kept for the slices that follow."""

    _KEPT_GROUPS = 4

    def __init__(self, path: Path, size: int) -> None:
        self.file = pq.ParquetFile(path)
        self.schema = self.file.schema_arrow
        self.total = self.file.metadata.num_rows
        self.units: list[tuple[int, int, int]] = []  # (row group, first row, rows)
        for group in range(self.file.num_row_groups):
            rows = self.file.metadata.row_group(group).num_rows
            self.units.extend((group, first, min(size, rows - first)) for first in range(0, rows, size))
        self._groups: OrderedDict[int, pa.Table] = OrderedDict()

    def __len__(self) -> int:
        return len(self.units)

    def batch(self, index: int) -> pa.RecordBatch:
        group, first, rows = self.units[index]
        table = self._groups.get(group)
        if table is None:
            table = self._groups[group] = self.file.read_row_group(group).combine_chunks()
            if len(self._groups) > self._KEPT_GROUPS:
                self._groups.popitem(last=False)
        (batch,) = table.slice(first, rows).to_batches()  # one chunk (combined on reading); a unit is never empty
        return batch

    def empty(self) -> pa.RecordBatch:
        return pa.record_batch([pa.nulls(0, f.type) for f in self.schema], schema=self.schema)


class Judging(Protocol):
    count: int  # processes judging

    def judged(self, keys: KeyBatches) -> Iterator[tuple[pa.RecordBatch, Verdicts]]:
        """Each batch of `keys` with its verdicts, every batch once, in the order they are judged."""
        ...

    def close(self) -> int:
        """Finish; the number of engine decisions made."""
        ...

    def terminate(self) -> None:
        """Stop at once (idempotent; after an error or an interrupt)."""
        ...


class InProcess:
    """Judges in this process."""

    count = 1

    def __init__(self, sets: PolicySets, include_source_port: bool) -> None:
        self.judge = Judge(sets)
        self.builder = TrafficBuilder(include_source_port)

    def verdicts(self, batch: pa.RecordBatch) -> Verdicts:
        traffics = self.builder.traffics(batch)
        reporters = batch.column("reporter").to_pylist()
        pending = batch.column("rows_pending").to_pylist()
        judge = self.judge.judge
        return verdict_columns([judge(traffic, reporters[i], pending[i] > 0) for i, traffic in enumerate(traffics)])

    def judged(self, keys: KeyBatches) -> Iterator[tuple[pa.RecordBatch, Verdicts]]:
        for index in range(len(keys)):
            batch = keys.batch(index)
            yield batch, self.verdicts(batch)

    def close(self) -> int:
        return self.judge.decisions

    def terminate(self) -> None:
        pass


_INHERITED: InProcess | None = None  # the judge a forked worker starts from


def _serve(conn: Connection) -> None:
    state = _INHERITED
    assert state is not None
    # The worker starts inside the fewer_collections block it was forked in and ends with its last batch: what
    # it inherited stays frozen (its pages stay shared with the replay process) and its thresholds stay raised.
    while True:
        try:
            batch = conn.recv()
        except EOFError:  # the replay process is gone
            return
        if batch is None:
            conn.send(("done", state.judge.decisions))
            return
        try:
            conn.send(("ok", state.verdicts(batch)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))
            return


class Workers:
    """Judges in `count` forked processes; each starts from this process's (empty-cached) judge."""

    def __init__(self, sets: PolicySets, include_source_port: bool, count: int) -> None:
        global _INHERITED
        self.count = count
        _INHERITED = InProcess(sets, include_source_port)
        context = multiprocessing.get_context("fork")
        self.conns: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        try:
            with fewer_collections():  # the workers start from a frozen heap
                for _ in range(count):
                    ours, theirs = context.Pipe()
                    process = context.Process(target=_serve, args=(theirs,), daemon=True, name="flowstage-judge")
                    process.start()
                    theirs.close()
                    self.conns.append(ours)
                    self.processes.append(process)
        finally:
            _INHERITED = None

    def judged(self, keys: KeyBatches) -> Iterator[tuple[pa.RecordBatch, Verdicts]]:
        # A worker has one batch at a time: the next goes out once its verdicts are in, so a worker blocked
        # sending verdicts is never also being sent to (a pipe holds only so much).
        shares = _shares(len(keys), len(self.conns))
        busy: dict[int, pa.RecordBatch] = {}  # worker -> the batch it is judging
        for worker in range(len(self.conns)):
            self._give(worker, shares, keys, busy)
        while busy:
            for conn in multiprocessing.connection.wait([self.conns[w] for w in busy]):
                worker = self.conns.index(conn)  # type: ignore[arg-type]
                batch = busy.pop(worker)
                verdicts = self._receive(conn)  # type: ignore[arg-type]
                self._give(worker, shares, keys, busy)
                yield batch, verdicts

    def _give(self, worker: int, shares: list[deque[int]], keys: KeyBatches,
              busy: dict[int, pa.RecordBatch]) -> None:
        """Sends `worker` the next batch of its share, or else the last one of the largest share left."""
        if shares[worker]:
            index = shares[worker].popleft()
        else:
            largest = max(shares, key=len)
            if not largest:
                return
            index = largest.pop()
        batch = keys.batch(index)
        self.conns[worker].send(batch)
        busy[worker] = batch

    def _receive(self, conn: Connection) -> Verdicts:
        try:
            status, payload = conn.recv()
        except EOFError:
            raise RuntimeError("a replay worker process died; run the replay again with --workers 1") from None
        if status == "error":
            raise RuntimeError(f"a replay worker failed:\n{payload}")
        return payload

    def close(self) -> int:
        decisions = 0
        try:
            for conn in self.conns:
                conn.send(None)
            for conn in self.conns:
                status, payload = conn.recv()
                decisions += payload if status == "done" else 0
        except (EOFError, OSError, BrokenPipeError):
            pass
        finally:
            self.terminate()
        return decisions

    def terminate(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
        for conn in self.conns:
            conn.close()


def _shares(batches: int, workers: int) -> list[deque[int]]:
    """Contiguous runs of batch indexes, one per worker, as even as they divide."""
    return [deque(range(w * batches // workers, (w + 1) * batches // workers)) for w in range(workers)]


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def start(sets: PolicySets, include_source_port: bool, keys: int, workers: int | None) -> InProcess | Workers:
    """Worker processes when asked for (or, by default, one per core when the keys fill them), else in-process."""
    count = default_workers() if workers is None else workers
    if workers is None:
        count = min(count, keys // MIN_KEYS_PER_WORKER)
    if count <= 1:
        return InProcess(sets, include_source_port)
    return Workers(sets, include_source_port, count)
