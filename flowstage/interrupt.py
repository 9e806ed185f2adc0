"""Ctrl-C for long DuckDB statements.

DuckDB does not notice a SIGINT while it executes (a COPY, an aggregate over millions of rows): the Python
handler runs only once the statement returns. `interruptible` runs the statement's work in a thread and waits
for it in this one, where Ctrl-C is raised at once; it then interrupts the connection's query and re-raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import duckdb

T = TypeVar("T")


def interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], T]) -> T:
    """`work()` (DuckDB calls on `con`), stopped with the query when this thread is interrupted.

    Waits on an Event, not Thread.join: a join interrupted by a signal marks the thread finished while it still
    runs, and a process that exits with a thread inside DuckDB aborts.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        return work()  # another engine's connection (Spark): its own way of stopping
    outcome: list[tuple[bool, object]] = []
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the waiting thread
            outcome.append((False, exc))
        finally:
            finished.set()

    threading.Thread(target=run, name="flowstage-query", daemon=True).start()
    try:
        finished.wait()
    except BaseException:
        con.interrupt()
        while not finished.is_set():
            try:
                finished.wait()
            except KeyboardInterrupt:
                con.interrupt()
        raise
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]
