"""Judging batches of replay keys, in this process or in forked worker processes (one per core) when the store
holds enough keys to pay for them.

Each worker owns the endpoints whose side is judged (by endpoint id), so every endpoint's compiled policy
program and match caches live in one worker only; results come back in key order.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowstage.policy.sets import PolicySets
from flowstage.replay.judge import Judge, verdict_columns
from flowstage.replay.keys import TrafficBuilder

# The verdict columns of a batch of keys (flowstage.replay.judge.verdict_columns), one row per key in batch order:
# Arrow crosses the pipe from a worker far cheaper than the same verdicts as Python tuples.
Verdicts = pa.Table
MIN_KEYS_PER_WORKER = 10_000  # below this, starting workers costs more than it saves


class Judging(Protocol):
    count: int  # processes judging

    def verdicts(self, batch: pa.RecordBatch) -> Verdicts: ...

    def judged(self, batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, Verdicts]]:
        """Each batch with its verdicts, in order."""
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

    def judged(self, batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, Verdicts]]:
        for batch in batches:
            yield batch, self.verdicts(batch)

    def close(self) -> int:
        return self.judge.decisions

    def terminate(self) -> None:
        pass


_INHERITED: InProcess | None = None  # the judge a forked worker starts from


def _serve(conn: Connection) -> None:
    state = _INHERITED
    assert state is not None
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
        _load_lazy_imports()
        context = multiprocessing.get_context("fork")
        self.conns: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        try:
            for _ in range(count):
                ours, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs,), daemon=True, name="flowstage-judge")
                process.start()
                theirs.close()
                self.conns.append(ours)
                self.processes.append(process)
        finally:
            _INHERITED = None

    def verdicts(self, batch: pa.RecordBatch) -> Verdicts:
        return self._collect(batch, self._send(batch))

    def judged(self, batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, Verdicts]]:
        # The workers judge the next batch while this process writes the one before. The next batch goes out
        # only once this one's verdicts are in: a worker blocked sending verdicts reads nothing, and a pipe holds
        # only so much.
        remaining = iter(batches)
        batch = next(remaining, None)
        parts = self._send(batch) if batch is not None else []
        while batch is not None:
            verdicts = self._collect(batch, parts)
            following = next(remaining, None)
            if following is not None:
                parts = self._send(following)
            yield batch, verdicts
            batch = following

    def _send(self, batch: pa.RecordBatch) -> list[np.ndarray]:
        """Each worker's share of the batch (by the id of the endpoint whose side is judged), sent to it."""
        n = len(self.conns)
        dst = pc.fill_null(pc.equal(batch.column("reporter"), "dst"), False).to_numpy(zero_copy_only=False)
        judged_side = np.where(dst, batch.column("dest_endpoint").to_numpy(), batch.column("source_endpoint").to_numpy())
        owner = (judged_side % np.uint64(n)).astype(np.int64)
        parts = [np.flatnonzero(owner == k) for k in range(n)]
        for conn, rows in zip(self.conns, parts, strict=True):
            if len(rows):
                conn.send(batch.take(pa.array(rows)))
        return parts

    def _collect(self, batch: pa.RecordBatch, parts: list[np.ndarray]) -> Verdicts:
        tables = [self._receive(conn) for conn, rows in zip(self.conns, parts, strict=True) if len(rows)]
        if not tables:
            return verdict_columns([])
        # The workers' rows in batch order again: row i of the concatenation came from batch row positions[i].
        positions = np.concatenate([rows for rows in parts if len(rows)])
        order = np.empty_like(positions)
        order[positions] = np.arange(len(positions))
        return pa.concat_tables(tables).take(pa.array(order))

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


def _load_lazy_imports() -> None:
    """Imports pyarrow makes on first use, made once before forking so the workers inherit them.

    pyarrow imports pandas the first time it converts Python values (pa.array), a third of a second; each worker
    would otherwise pay it again on its first batch, on every core at once.
    """
    pa.array([0])


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
