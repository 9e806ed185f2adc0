"""Synthetic flow-log files of any size: `rows` records over exactly `keys` distinct flows, in any supported format.

felix output can be rotated the way felix does it: `flows.log` holds the newest records, older ones sit in
zstd-compressed backups named `flows-<UTC time>-size.log.zst`.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from flowstage.errors import UsageError
from flowstage.synth.formats import FORMATS, FlowLogWriter, layout, open_compressed, rotated_name
from flowstage.synth.keys import DEFAULT_ALLOWED_LEVEL, DEFAULT_DENIED_LEVEL, KeyTable, key_table
from flowstage.synth.records import FlowRecord
from flowstage.synth.windows import DEFAULT_SKEW, WINDOW_SECONDS, row_blocks

GOLDMANE_BUCKET_SECONDS = 15


@dataclass
class LogsSummary:
    files: list[Path] = field(default_factory=list)
    records: int = 0
    keys: int = 0
    bytes_uncompressed: int = 0


def write_logs(
    output: Path,
    rows: int,
    keys: int,
    fmt: str = "felix",
    seed: int = 1,
    namespaces: int | None = None,
    allowed_level: int = DEFAULT_ALLOWED_LEVEL,
    denied_level: int = DEFAULT_DENIED_LEVEL,
    legacy_all_policies: bool = False,
    rotate_mb: float | None = None,
    cluster_name: str = "cluster",
    start: int = 1_772_323_200,
    table: KeyTable | None = None,
    skew: float = DEFAULT_SKEW,
) -> LogsSummary:
    """Write `rows` records over `keys` distinct flows to `output` (`.gz` / `.zst` suffix: compressed); rows per
    key follow a Zipf law of exponent `skew` (flowstage.synth.windows)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if rotate_mb is not None and (fmt != "felix" or rotate_mb <= 0):
        raise UsageError("--rotate-mb applies to the felix format only and must be positive (felix rotates flows.log by size)")
    if rotate_mb is not None and output.suffix in (".gz", ".zst"):
        raise UsageError(f"with --rotate-mb the output is the live log, which felix never compresses: name it like flows.log, not {output.name}")
    table = table or key_table(keys, seed, namespaces, allowed_level, denied_level, legacy_all_policies)
    summary = LogsSummary(keys=len(table.keys))
    record_layout = layout(fmt, cluster_name)
    limit = int(rotate_mb * 1024 * 1024) if rotate_mb else None
    segment = output.with_name(f".writing-{output.name}")  # keeps the suffix that picks the compression
    writer = FlowLogWriter(segment, fmt, cluster_name, record_layout)
    last_end = start
    # Goldmane re-buckets flows on fixed boundaries: 5-minute emitter windows, 15-second windows behind Whisker.
    seconds = GOLDMANE_BUCKET_SECONDS if fmt == "whisker" else WINDOW_SECONDS
    for block in row_blocks(table, rows, seed, start, seconds, per_node_timers=fmt in ("felix", "elastic"), skew=skew):
        keys_list = table.keys
        nat = table.nat_ports
        columns = (
            block.key.tolist(), block.start.tolist(), block.end.tolist(), block.bytes_in.tolist(), block.bytes_out.tolist(),
            block.packets_in.tolist(), block.packets_out.tolist(), block.num_flows.tolist(),
            block.num_flows_started.tolist(), block.num_flows_completed.tolist(),
        )  # fmt: skip
        for k, s, e, bi, bo, pi, po, nf, ns, nc in zip(*columns, strict=True):
            if limit is not None and writer.size >= limit:
                summary.bytes_uncompressed += writer.size
                writer.close()
                summary.files.append(_rotate(segment, output, last_end))
                writer = FlowLogWriter(segment, fmt, cluster_name, record_layout)
            writer.write(FlowRecord(keys_list[k], s, e, bi, bo, pi, po, nf, ns, nc, nat[k]))
            last_end = e
        summary.records += len(block)
    summary.bytes_uncompressed += writer.size
    writer.close()
    os.replace(segment, output)
    summary.files.append(output)
    return summary


def _rotate(segment: Path, live: Path, rotated_at: int) -> Path:
    # Rotation happens while felix writes the next window; timberjack then compresses the backup with zstd.
    millis = zlib.crc32(str(rotated_at).encode()) % 1000
    backup = live.with_name(rotated_name(live.name, rotated_at + 7 + millis / 1000))
    with open(segment, "rb") as src, open_compressed(backup) as dst:
        while chunk := src.read(1 << 22):
            dst.write(chunk)
    segment.unlink()
    return backup
