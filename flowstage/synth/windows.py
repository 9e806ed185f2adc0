"""Which flow keys are logged in which 5-minute window, and the counters of each record, vectorised with numpy.

Rows per key follow a Zipf law, as real flow logs do: keys ranked by traffic, the key of rank r gets rows in
proportion to 1 / r^skew (`DEFAULT_SKEW`), at least one and at most one per window. The busiest connections are
logged in every window; a long tail of quiet ones (a cron job, an admin session, a scanner, a pod that lived an
hour) appears only a few times. `skew=0` gives every key the same number of rows. A key's rows fall in one run of
consecutive windows starting at a seeded random window (wrapping around the end of the logged period): a flow is
logged in every window while it lives, and a slice of the period holds the flows alive during it. The period is
as long as it takes for a typical window to hold `ACTIVE_SHARE` of all keys. Both halves of a pod-to-pod
connection (`src` and `dst` reporter) are logged in the same windows.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from flowstage.errors import UsageError
from flowstage.synth.keys import KeyTable

WINDOW_SECONDS = 300  # felix's default flowLogsFlushInterval
ACTIVE_SHARE = 0.1  # share of all keys logged in a typical window: the steady connections plus the flows alive then
DEFAULT_SKEW = 1.2  # Zipf exponent of rows per key (0: every key equally often)
_SYN_BYTES = 60
_MTU_PAYLOAD = 1400
_BLOCK_ROWS = 262_144  # rows per block, at least one window each: bounds the sampler's memory


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


def plan_windows(rows: int, keys: int) -> int:
    """How many windows `rows` records over `keys` keys span: enough for a typical one to hold ACTIVE_SHARE of
    the keys."""
    if rows < keys:
        raise UsageError(f"--rows ({rows:,}) must be at least --keys ({keys:,}): every key is logged at least once")
    return max(1, -(-rows // max(1, round(ACTIVE_SHARE * keys))))


def rows_per_key(
    group: np.ndarray, sizes: np.ndarray, volume: np.ndarray, rows: int, windows: int, skew: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Records per key: Zipf by traffic rank, between 1 and `windows`, summing to `rows` exactly. Keys of one
    connection (its `src` and `dst` halves; `group`, `sizes` and `volume` from `connections`) share a rank."""
    # Busiest first; equal traffic in a seeded random order.
    order = np.lexsort((rng.permutation(len(sizes)), -volume))
    rank = np.empty(len(sizes), dtype=np.float64)
    rank[order] = np.arange(1, len(sizes) + 1)
    weight = rank ** -skew

    def total(scale: float) -> float:
        return float((np.clip(scale * weight, 1.0, windows) * sizes).sum())

    low, high = 0.0, 1.0
    while total(high) < rows:
        high *= 2.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if total(middle) < rows else (low, middle)
    share = np.clip(high * weight, 1.0, windows)[group]
    counts = np.floor(share).astype(np.int64)
    missing = rows - int(counts.sum())
    if missing > 0:
        # The remainder goes to the keys closest to their next row (ties: lower key index), never past `windows`.
        room = np.flatnonzero(counts < windows)
        closest = room[np.lexsort((room, -(share[room] - counts[room])))][:missing]
        counts[closest] += 1
    elif missing < 0:
        spare = np.flatnonzero(counts > 1)
        counts[spare[np.argsort(share[spare] - counts[spare], kind="stable")][:-missing]] -= 1
    return counts


def connections(table: KeyTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key its connection's index; per connection its number of keys and its traffic volume."""
    index: dict[tuple, int] = {}
    group = np.empty(len(table.keys), dtype=np.int64)
    for i, k in enumerate(table.keys):
        group[i] = index.setdefault((k.source, k.dest, k.proto, k.dest_port), len(index))
    sizes = np.bincount(group, minlength=len(index)).astype(np.float64)
    volume = np.zeros(len(index), dtype=np.float64)
    np.maximum.at(volume, group, table.traffic.volume)
    return group, sizes, volume


def row_blocks(
    table: KeyTable, rows: int, seed: int = 1, start: int = 1_772_323_200, window_seconds: int = WINDOW_SECONDS,
    per_node_timers: bool = True, skew: float = DEFAULT_SKEW,
) -> Iterator[RowBlock]:
    """Records for `rows` rows in window order (keys in table order within a window), a few windows per block.

    `start` is the first window's start (Unix seconds; default 2026-03-01T00:00:00Z). With `per_node_timers` each
    node's windows are offset as felix's flush timers are; without, windows sit on exact boundaries (Goldmane).
    `skew` is the Zipf exponent of rows per key (see the module docstring).
    """
    if skew < 0:
        raise UsageError(f"skew must be 0 or more, got {skew}")
    n_keys = len(table.keys)
    windows = plan_windows(rows, n_keys)
    rng = np.random.default_rng([seed, 7])
    group, sizes, volume = connections(table)
    counts = rows_per_key(group, sizes, volume, rows, windows, skew, rng)
    first = rng.integers(0, windows, size=len(sizes))[group]
    # Each felix flushes on its own timer: offset each node's windows by a stable amount.
    node_offset = np.asarray([zlib.crc32(k.host.encode()) % 60 if per_node_timers else 0 for k in table.keys], dtype=np.int64)
    picked: list[np.ndarray] = []
    in_block = 0
    block_first = 0
    for w in range(windows):
        logged = np.flatnonzero((w - first) % windows < counts)
        picked.append(logged)
        in_block += len(logged)
        if in_block >= _BLOCK_ROWS or w == windows - 1:
            key = np.concatenate(picked)
            window = np.repeat(np.arange(block_first, w + 1), [len(p) for p in picked])
            yield _counters(table, rng, key, window, start, window_seconds, node_offset)
            picked, in_block, block_first = [], 0, w + 1


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
