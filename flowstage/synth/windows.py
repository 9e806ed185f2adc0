"""Which flow keys are logged in which 5-minute window, and the counters of each record, vectorised with numpy.

Every key appears at least once; beyond that, busy keys appear in most windows and quiet ones now and then (a
weighted draw without replacement per window, so a key is logged at most once per window, as felix does per node).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from flowstage.errors import UsageError
from flowstage.synth.keys import KeyTable

WINDOW_SECONDS = 300  # felix's default flowLogsFlushInterval
ACTIVE_SHARE = 0.6  # share of all keys logged in a typical window
_SYN_BYTES = 60
_MTU_PAYLOAD = 1400
_CELLS_PER_CHUNK = 400_000  # windows × keys scored per block: bounds the sampler's memory


@dataclass
class RowBlock:
    """Consecutive records: arrays of equal length, in the order they are written."""

    key: np.ndarray  # index into KeyTable.keys
    start: np.ndarray  # Unix seconds
    end: np.ndarray
    bytes_in: np.ndarray
    bytes_out: np.ndarray
    packets_in: np.ndarray
    packets_out: np.ndarray
    num_flows: np.ndarray
    num_flows_started: np.ndarray
    num_flows_completed: np.ndarray

    def __len__(self) -> int:
        return len(self.key)


def plan_windows(rows: int, keys: int) -> tuple[int, int]:
    """(windows, rows per full window) for `rows` records over `keys` keys."""
    if rows < keys:
        raise UsageError(f"--rows ({rows:,}) must be at least --keys ({keys:,}): every key is logged at least once")
    per_window = max(1, min(keys, round(ACTIVE_SHARE * keys)))
    windows = -(-rows // per_window)
    return windows, -(-rows // windows)


def row_blocks(
    table: KeyTable, rows: int, seed: int = 1, start: int = 1_772_323_200, window_seconds: int = WINDOW_SECONDS, per_node_timers: bool = True
) -> Iterator[RowBlock]:
    """Records for `rows` rows in window order, a chunk of windows per block.

    `start` is the first window's start (Unix seconds; default 2026-03-01T00:00:00Z). With `per_node_timers` each
    node's windows are offset as felix's flush timers are; without, windows sit on exact boundaries (Goldmane).
    """
    n_keys = len(table.keys)
    windows, per_window = plan_windows(rows, n_keys)
    capacity = np.full(windows, per_window, dtype=np.int64)
    capacity[-1] = rows - per_window * (windows - 1)
    rng = np.random.default_rng([seed, 7])
    home = _home_windows(rng, n_keys, capacity)
    weight = np.maximum(table.traffic.volume, 0.05)
    # Each felix flushes on its own timer: offset each node's windows by a stable amount.
    node_offset = np.asarray([zlib.crc32(k.host.encode()) % 60 if per_node_timers else 0 for k in table.keys], dtype=np.int64)
    chunk = max(1, _CELLS_PER_CHUNK // n_keys)
    order = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[order], np.arange(windows + 1))
    for first in range(0, windows, chunk):
        last = min(windows, first + chunk)
        scores = rng.exponential(size=(last - first, n_keys)) / weight
        for w in range(first, last):
            scores[w - first, order[bounds[w] : bounds[w + 1]]] = -1.0  # a key's home window always logs it
        picked = []
        for w in range(first, last):
            take = int(capacity[w])
            row = scores[w - first]
            chosen = np.argpartition(row, take - 1)[:take] if take < n_keys else np.arange(n_keys)
            picked.append(np.sort(chosen))
        key = np.concatenate(picked)
        window = np.repeat(np.arange(first, last), capacity[first:last])
        yield _counters(table, rng, key, window, start, window_seconds, node_offset)


def _home_windows(rng: np.random.Generator, n_keys: int, capacity: np.ndarray) -> np.ndarray:
    # Spread keys over windows in proportion to each window's rows, so no window has more keys than rows.
    rows = int(capacity.sum())
    cumulative = np.cumsum(capacity)
    slot = (np.arange(n_keys, dtype=np.int64) * rows) // n_keys
    home = np.empty(n_keys, dtype=np.int64)
    home[rng.permutation(n_keys)] = np.searchsorted(cumulative, slot, side="right")
    return home


def _counters(table: KeyTable, rng: np.random.Generator, key: np.ndarray, window: np.ndarray, t0: int, seconds: int, node_offset: np.ndarray) -> RowBlock:
    t = table.traffic
    n = len(key)
    start = t0 + window * seconds + node_offset[key]
    hour = ((start % 86_400) / 3_600.0).astype(np.float64)
    diurnal = 1.0 + 0.35 * np.sin((hour - 9.0) / 24.0 * 2 * np.pi)
    volume = t.volume[key] * (seconds / WINDOW_SECONDS) * diurnal * rng.lognormal(0.0, 0.35, n)
    long_lived = t.long_lived[key]
    attempts = t.attempt_only[key]
    udp = t.udp[key]

    conns = np.maximum(1, np.rint(volume)).astype(np.int64)
    live = np.clip(np.rint(np.log2(1.0 + t.volume[key])), 1, 8).astype(np.int64)
    num_flows = np.where(long_lived, live, conns)
    started = np.where(long_lived, (rng.random(n) < 0.1).astype(np.int64), np.rint(conns * rng.uniform(0.9, 1.0, n)).astype(np.int64))
    completed = np.where(long_lived, (rng.random(n) < 0.1).astype(np.int64), np.rint(conns * rng.uniform(0.88, 1.0, n)).astype(np.int64))

    up = np.rint(np.maximum(volume, 0.2) * t.request_bytes[key] * rng.lognormal(0.0, 0.2, n)).astype(np.int64)
    down = np.rint(np.maximum(volume, 0.2) * t.response_bytes[key] * rng.lognormal(0.0, 0.2, n)).astype(np.int64)
    handshake = np.where(udp, 1, 3)
    p_up = num_flows * handshake + up // _MTU_PAYLOAD + 1
    p_down = num_flows * np.where(udp, 1, 2) + down // _MTU_PAYLOAD

    # Dropped attempts: the client retries its SYN, nothing comes back, no connection completes.
    p_up = np.where(attempts, conns * 3, p_up)
    up = np.where(attempts, p_up * _SYN_BYTES, up)
    down = np.where(attempts, 0, down)
    p_down = np.where(attempts, 0, p_down)
    completed = np.where(attempts, 0, completed)
    started = np.where(attempts, conns, started)

    src = t.src_reported[key]
    return RowBlock(
        key=key,
        start=start,
        end=start + seconds,
        bytes_in=np.where(src, down, up),
        bytes_out=np.where(src, up, down),
        packets_in=np.where(src, p_down, p_up),
        packets_out=np.where(src, p_up, p_down),
        num_flows=num_flows,
        num_flows_started=started,
        num_flows_completed=completed,
    )
