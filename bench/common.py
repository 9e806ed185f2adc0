"""What every benchmark reports: a named figure, its unit, and (when there is one) the baseline it is compared with.

Benchmarks print these; the suite runner also writes them to bench/RESULTS.md.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    name: str  # what was measured, e.g. "ingest 300 MB flows.log"
    value: float
    unit: str  # "s", "rows/s", "MiB", "evals/s", "x"
    baseline_name: str | None = None
    baseline_value: float | None = None
    target: str | None = None  # the target, e.g. "<= 1.5x"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value

    def line(self) -> str:
        text = f"{self.name}: {_fmt(self.value)} {self.unit}"
        if self.baseline_name is not None and self.baseline_value is not None:
            text += f" | baseline {self.baseline_name}: {_fmt(self.baseline_value)} {self.unit}"
            if self.ratio is not None:
                text += f" | ratio {self.ratio:.2f}x"
        if self.target:
            text += f" | target {self.target}"
        if self.note:
            text += f" | {self.note}"
        return text


def _fmt(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """`with timer() as elapsed: ...; elapsed()` gives seconds (wall clock, perf_counter)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children) in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def cpu_count() -> int:
    return os.cpu_count() or 1


def _pss(process: Any) -> int:
    """A process's proportional set size in bytes: the kernel's own sum (smaps_rollup) where Linux has it, a
    third of what psutil's full smaps parse costs the sampling process, which shares the cores it measures."""
    try:
        with open(f"/proc/{process.pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        if not process.is_running():
            raise
    return process.memory_full_info().pss


def peak_tree_pss_mib(child: subprocess.Popen, interval: float = 0.05) -> float:
    """Peak memory (MiB) of a running `child` and every process under it together, sampled every `interval`
    seconds until it exits: the sum of their proportional set sizes, so pages a worker shares with the process
    it was forked from count once.

    Measuring PSS makes the kernel walk every page (4 ms for a 600 MB process), on the cores the measured
    processes run on; resident sizes cost next to nothing, and a process's PSS never exceeds its RSS, so a tick
    whose RSS total is at most the peak so far cannot raise it and skips the walk."""
    import psutil

    errors = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ProcessLookupError, FileNotFoundError)
    try:
        root = psutil.Process(child.pid)
    except psutil.NoSuchProcess:
        return 0.0
    peak = 0
    while child.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            tree = []
        resident = 0
        for process in tree:
            try:
                resident += process.memory_info().rss
            except errors:
                continue
        if resident > peak:
            total = 0
            for process in tree:
                try:
                    total += _pss(process)
                except errors:
                    continue
            peak = max(peak, total)
        time.sleep(interval)
    return peak / 2**20
