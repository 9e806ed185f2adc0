"""Synthetic data speed: the felix JSON writer and the Arrow path of flowstage.synth, each against a plain baseline.

JSON: `flowstage synth logs` (per-key templates) vs json.dumps of a full dict per record, same records.
Arrow: `flow_batches` (per-key columns gathered with take) vs RecordBatch.from_pylist of row dicts, same rows.
Each side runs in its own process, so wall time and peak memory are that side's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result
from flowstage.synth.records import FlowKey, LoggedEndpoint
from flowstage.synth.windows import RowBlock

# (rows, keys) per size: the JSON figures are about 30 MB / 300 MB of felix lines.
JSON_SIZES = {"quick": (16_000, 2_000), "full": (160_000, 20_000)}
ARROW_SIZES = {"quick": (1_000_000, 20_000), "full": (10_000_000, 100_000)}
ARROW_BASELINE_ROWS = 100_000


def naive_json(path: str, rows: int, keys: int) -> None:
    """Baseline: the same records, each rendered as a dict through json.dumps."""
    from flowstage.synth.keys import key_table
    from flowstage.synth.windows import row_blocks

    table = key_table(keys)
    with open(path, "w") as out:
        for block in row_blocks(table, rows):
            for i in range(len(block)):
                out.write(json.dumps(_row_dict(table.keys[int(block.key[i])], block, i), separators=(",", ":")) + "\n")


def _row_dict(k: FlowKey, block: RowBlock, i: int) -> dict:
    def labels(e: LoggedEndpoint) -> dict | None:
        return {"labels": list(e.labels)} if e.labels is not None else None

    svc = k.service
    return {
        "start_time": int(block.start[i]), "end_time": int(block.end[i]),
        "source_ip": k.source.ip, "source_name": k.source.name or "-", "source_name_aggr": k.source.name_aggr,
        "source_namespace": k.source.namespace or "-", "nat_outgoing_ports": None, "source_port": None,
        "source_type": k.source.type, "source_labels": labels(k.source),
        "dest_ip": k.dest.ip, "dest_name": k.dest.name or "-", "dest_name_aggr": k.dest.name_aggr,
        "dest_namespace": k.dest.namespace or "-", "dest_port": k.dest_port, "dest_type": k.dest.type,
        "dest_labels": labels(k.dest), "dest_service_namespace": svc.namespace if svc else "-",
        "dest_service_name": svc.name if svc else "-", "dest_service_port": (svc.port_name or "-") if svc else "-",
        "dest_service_port_num": svc.port if svc else None, "dest_domains": list(k.dest_domains) if k.dest_domains else None,
        "proto": k.proto, "action": k.action, "reporter": k.reporter,
        "policies": {"enforced_policies": [h.flow_log(j) for j, h in enumerate(k.enforced)],
                     "pending_policies": [h.flow_log(j) for j, h in enumerate(k.pending)], "transit_policies": None},
        "bytes_in": int(block.bytes_in[i]), "bytes_out": int(block.bytes_out[i]), "num_flows": int(block.num_flows[i]),
        "num_flows_started": int(block.num_flows_started[i]), "num_flows_completed": int(block.num_flows_completed[i]),
        "packets_in": int(block.packets_in[i]), "packets_out": int(block.packets_out[i]),
        "transit_bytes_in": 0, "transit_bytes_out": 0, "transit_packets_in": 0, "transit_packets_out": 0,
        "http_requests_allowed_in": 0, "http_requests_denied_in": 0, "process_name": "-", "num_process_names": 0,
        "process_id": "-", "num_process_ids": 0, "process_args": ["-"], "num_process_args": 0,
        "original_source_ips": None, "num_original_source_ips": 0,
        **dict.fromkeys(("tcp_mean_send_congestion_window", "tcp_min_send_congestion_window", "tcp_mean_smooth_rtt",
                         "tcp_max_smooth_rtt", "tcp_mean_min_rtt", "tcp_max_min_rtt", "tcp_mean_mss", "tcp_min_mss",
                         "tcp_total_retransmissions", "tcp_lost_packets", "tcp_unrecovered_to"), 0),
    }  # fmt: skip


def arrow_batches(rows: int, keys: int) -> None:
    from flowstage.synth.batches import flow_batches

    total = sum(b.num_rows for b in flow_batches(rows, keys))
    assert total == rows


def naive_arrow(rows: int, keys: int) -> None:
    """Baseline: the same rows as Python dicts, converted with RecordBatch.from_pylist."""
    import pyarrow as pa

    from flowstage.schema import FLOW_SCHEMA
    from flowstage.synth.batches import flow_batches

    # The dicts come from the generator's own first batch, so both sides hold the same values.
    first = next(flow_batches(rows, keys, batch_rows=rows))
    pylist = first.to_pylist()
    start = time.perf_counter()
    pa.RecordBatch.from_pylist(pylist, schema=FLOW_SCHEMA)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def _timed(code: str) -> tuple[float, float, str]:
    """Run Python code in a fresh process: (wall seconds, peak resident MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark child failed: {err[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024.0, out


def run(size: str = "quick") -> list[Result]:
    rows, keys = JSON_SIZES[size]
    work = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    ours = work / "flows.log"
    ours_s, ours_mem, _ = _timed(
        f"from pathlib import Path; from flowstage.synth.logs import write_logs; write_logs(Path({str(ours)!r}), {rows}, {keys})"
    )
    base = work / "naive.log"
    base_s, base_mem, _ = _timed(f"from bench.bench_synth import naive_json; naive_json({str(base)!r}, {rows}, {keys})")
    mb = ours.stat().st_size / 1e6
    results = [
        Result(f"synth felix JSON {mb:.0f} MB ({rows:,} records, {keys:,} keys)", ours_s, "s", "json.dumps per record", base_s,
               "well under 60 s for 300 MB", note="wall, incl. building the cluster"),  # fmt: skip
        Result("synth felix JSON throughput", mb / ours_s, "MB/s", "json.dumps per record", base.stat().st_size / 1e6 / base_s),
        Result("synth felix JSON peak memory", ours_mem, "MiB", "json.dumps per record", base_mem),
    ]
    ours.unlink()
    base.unlink()
    work.rmdir()

    rows, keys = ARROW_SIZES[size]
    arrow_s, arrow_mem, _ = _timed(f"from bench.bench_synth import arrow_batches; arrow_batches({rows}, {keys})")
    sample = min(rows, ARROW_BASELINE_ROWS)
    _, _, out = _timed(f"from bench.bench_synth import naive_arrow; naive_arrow({sample}, {min(keys, sample)})")
    naive_rate = sample / json.loads(out)["seconds"]
    results += [
        Result(f"synth Arrow {rows:,} rows, {keys:,} keys", arrow_s, "s", target="well under 60 s for 10M rows",
               note="wall, incl. building the cluster and key columns"),  # fmt: skip
        Result("synth Arrow throughput", rows / arrow_s, "rows/s", f"from_pylist ({sample:,} rows)", naive_rate),
        Result("synth Arrow peak memory", arrow_mem, "MiB", note="bounded by batch size and key count, not rows"),
    ]
    return results


if __name__ == "__main__":
    for result in run(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(result.line())
