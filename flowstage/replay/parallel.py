"""Judging batches of replay keys, in this process or in forked worker processes (one per core) when the store
holds enough keys to pay for them.

Each worker owns the endpoints whose side is judged (by endpoint id), so every endpoint's compiled policy
program and match caches live in one worker only; results come back in key order.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from multiprocessing.connection import Connection
from typing import Protocol

import numpy as np
import pyarrow as pa

from flowstage.policy.sets import PolicySets
from flowstage.replay.judge import Judge, VerdictRow
from flowstage.replay.keys import TrafficBuilder

Verdicts = list[tuple[VerdictRow, ...]]  # per key: current, proposed, pending, current/proposed without nets
MIN_KEYS_PER_WORKER = 10_000  # below this, starting workers costs more than it saves


class Judging(Protocol):
    count: int  # processes judging

    def verdicts(self, batch: pa.RecordBatch) -> Verdicts: ...

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
        return [judge(traffic, reporters[i], pending[i] > 0) for i, traffic in enumerate(traffics)]

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
        n = len(self.conns)
        dst = np.asarray(batch.column("reporter").to_pylist(), dtype=object) == "dst"
        judged_side = np.where(dst, batch.column("dest_endpoint").to_numpy(), batch.column("source_endpoint").to_numpy())
        owner = (judged_side % np.uint64(n)).astype(np.int64)
        parts = [np.flatnonzero(owner == k) for k in range(n)]
        for conn, rows in zip(self.conns, parts, strict=True):
            if len(rows):
                conn.send(batch.take(pa.array(rows)))
        result: Verdicts = [()] * batch.num_rows  # type: ignore[list-item]
        for conn, rows in zip(self.conns, parts, strict=True):
            if len(rows):
                for position, verdicts in zip(rows.tolist(), self._receive(conn), strict=True):
                    result[position] = verdicts
        return result

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
