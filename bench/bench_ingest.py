"""Ingest speed: `flowstage ingest` of a generated felix flows.log against DuckDB's own read_json → Parquet copy.

Both run on the same file in the same run, each with every core; the figure that matters is the ratio (target: at
most 1.5×). Also shown: ingest in one process (--workers 1), CPU and memory of all processes, and the machine's
load before and after, since wall time on a shared machine depends on it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Result, peak_tree_pss_mib
from flowstage.ingest.parallel import default_workers

DATA = Path(__file__).resolve().parent / "data"
SIZES = {"quick": 30 * 1024 * 1024, "full": 300 * 1024 * 1024}

_WORKLOADS = [
    # (deployment, template hash, namespace, service port name, port, extra labels)
    ("frontend", "755cdc7957", "default", "http", 8080, ["app=frontend"]),
    ("cartservice", "7d4899b484", "default", "grpc", 7070, ["app=cartservice"]),
    ("checkoutservice", "7dfddf54c7", "default", "grpc", 5050, ["app=checkoutservice"]),
    ("currencyservice", "67d46ff6d5", "default", "grpc", 7000, ["app=currencyservice"]),
    ("paymentservice", "746db6d55", "payments", "grpc", 50051, ["app=paymentservice", "pci=true"]),
    ("productcatalogservice", "764965c957", "default", "grpc", 3550, ["app=productcatalogservice"]),
    ("recommendationservice", "7669d8b8dc", "default", "grpc", 8080, ["app=recommendationservice"]),
    ("shippingservice", "699f4bf479", "default", "grpc", 50051, ["app=shippingservice"]),
    ("adservice", "7986b85799", "ads", "grpc", 9555, ["app=adservice", "team=growth"]),
    ("loadgenerator", "6b55f6c4c8", "default", "-", 0, ["app=loadgenerator"]),
    ("coredns", "5d78c9869d", "kube-system", "dns", 53, ["k8s-app=kube-dns"]),
    ("redis-cart", "", "default", "redis", 6379, ["app=redis-cart", "statefulset.kubernetes.io/pod-name=redis-cart-0"]),
]


def _policy_trace(rng: random.Random, dest_ns: str, dest: str) -> tuple[list[str], list[str]]:
    """An enforced trace and the pending trace Calico would log for it (a staged policy in tier `security`)."""
    enforced = [f"0|security|security.allow-dns|pass|{rng.randint(0, 2)}"]
    if rng.random() < 0.6:
        enforced.append(f"1|default|{dest_ns}/default.allow-{dest}|allow|{rng.randint(0, 3)}")
    else:
        enforced.append(f"1|__PROFILE__|__PROFILE__.kns.{dest_ns}|allow|0")
    pending = list(enforced)
    if rng.random() < 0.3:
        pending = [
            enforced[0],
            f"1|security|{dest_ns}/security.staged:deny-{dest}|deny|-1",
        ]
    elif rng.random() < 0.2:
        pending.append(f"2|default|{dest_ns}/staged:knp.default.{dest}-ingress|allow|0")
    return enforced, pending


def _record(rng: random.Random, start: int) -> dict:
    src = rng.choice(_WORKLOADS)
    dst = rng.choice(_WORKLOADS)
    reporter = rng.choice(["src", "dst"])
    udp = dst[0] == "coredns"
    public = rng.random() < 0.04
    enforced, pending = _policy_trace(rng, dst[2], dst[0])
    flows = rng.randint(1, 80)
    return {
        "start_time": start,
        "end_time": start + rng.randint(300, 330),
        "source_ip": None,
        "source_name": "-",
        "source_name_aggr": f"{src[0]}-{src[1]}-*" if src[1] else f"{src[0]}-0",
        "source_namespace": src[2],
        "nat_outgoing_ports": sorted(rng.sample(range(20000, 30000), rng.randint(1, 3))) if public else None,
        "source_port": None,
        "source_type": "wep",
        "source_labels": {"labels": [*src[5], f"pod-template-hash={src[1]}"]},
        "dest_ip": None,
        "dest_name": "-",
        "dest_name_aggr": ("pub" if rng.random() < 0.5 else "pvt") if public else (f"{dst[0]}-{dst[1]}-*" if dst[1] else f"{dst[0]}-0"),
        "dest_namespace": "-" if public else dst[2],
        "dest_port": 443 if public else (dst[4] or 80),
        "dest_type": "net" if public else "wep",
        "dest_labels": {"labels": [] if public else [*dst[5], f"pod-template-hash={dst[1]}"]},
        "dest_service_namespace": "-" if public else dst[2],
        "dest_service_name": "-" if public else dst[0],
        "dest_service_port": "-" if public else dst[3],
        "dest_service_port_num": None if public else (dst[4] or None),
        "dest_domains": ["api.example.com"] if public else None,
        "proto": "udp" if udp else "tcp",
        "action": "allow" if rng.random() < 0.95 else "deny",
        "reporter": reporter,
        "policies": {"enforced_policies": enforced, "pending_policies": pending},
        "bytes_in": rng.randint(100, 10**6),
        "bytes_out": rng.randint(100, 10**6),
        "num_flows": flows,
        "num_flows_started": rng.randint(0, flows),
        "num_flows_completed": rng.randint(0, flows),
        "packets_in": rng.randint(1, 10**4),
        "packets_out": rng.randint(1, 10**4),
        "http_requests_allowed_in": 0,
        "http_requests_denied_in": 0,
        "process_name": rng.choice(["/src/server", "-", "/usr/local/bin/python", "*"]),
        "num_process_names": 1,
        "process_id": str(rng.randint(100, 40000)),
        "num_process_ids": 1,
        "process_args": ["-"],
        "num_process_args": 0,
        "original_source_ips": None,
        "num_original_source_ips": 0,
        "tcp_mean_send_congestion_window": 0,
        "tcp_min_send_congestion_window": 0,
        "tcp_mean_smooth_rtt": 0,
        "tcp_max_smooth_rtt": 0,
        "tcp_mean_min_rtt": 0,
        "tcp_max_min_rtt": 0,
        "tcp_mean_mss": 0,
        "tcp_min_mss": 0,
        "tcp_total_retransmissions": 0,
        "tcp_lost_packets": 0,
        "tcp_unrecovered_to": 0,
    }


RECORDS_PER_FLUSH = 2000  # what one felix flush (every 300 s) writes on a busy node
FIRST_WINDOW = 1_699_920_000  # 2023-11-14T00:00:00Z


def generate_flows_log(path: Path, target_bytes: int, seed: int = 7) -> int:
    """Write a felix flows.log of about `target_bytes` (same seed, same bytes); returns the record count."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    written = records = 0
    with tmp.open("w", encoding="utf-8") as out:
        while written < target_bytes:
            start = FIRST_WINDOW + 300 * (records // RECORDS_PER_FLUSH)
            line = json.dumps(_record(rng, start), separators=(",", ":")) + "\n"
            out.write(line)
            written += len(line)
            records += 1
    tmp.replace(path)
    return records


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the command and every process under it
    out: str


def _timed(args: list[str]) -> Run:
    """Run a command to its end. Its CPU time includes its worker processes': each process of flowstage's ingest
    waits for the ones it started, so their usage adds up into the command's."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed ({proc.returncode}): {err[-2000:]}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, out)


def _peak_memory(args: list[str]) -> float:
    """Peak memory (MiB) of a command and all its processes together (see peak_tree_pss_mib). A run of its own,
    so that sampling does not slow the timed runs."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = peak_tree_pss_mib(proc)
    if proc.wait() != 0:
        raise RuntimeError(f"{args[:4]} failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
    return peak


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def run(size: str = "quick") -> list[Result]:
    target = SIZES[size]
    log = DATA / f"flows-{size}.log"
    if not log.exists() or abs(log.stat().st_size - target) > target * 0.01:
        generate_flows_log(log, target)
    repeats = 3
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    # One record: what each command costs before it reads anything (interpreter, imports, setup).
    one = work / "one.log"
    with log.open("rb") as fh:
        one.write_bytes(fh.readline())

    def baseline_cmd(path: Path) -> list[str]:
        sql = f"COPY (SELECT * FROM read_json('{path}')) TO '{work / 'raw.parquet'}'"
        return [sys.executable, "-c", f"import duckdb; duckdb.connect().execute({sql!r}).fetchall()"]

    def ours_cmd(path: Path, store: Path, *options: str) -> list[str]:
        return [sys.executable, "-m", "flowstage", "--quiet", "ingest", str(path), "--store", str(store), "--json",
                *options]

    base: list[Run] = []
    ours: list[Run] = []
    serial: list[Run] = []
    base_start: list[Run] = []
    ours_start: list[Run] = []
    loads = [_load()]
    stored = 0
    try:
        for i in range(repeats):
            # Interleaved, so all see the same machine load.
            base.append(_timed(baseline_cmd(log)))
            store = work / f"store-{i}"
            ours.append(_timed(ours_cmd(log, store)))
            stored = json.loads(ours[-1].out)["stored"]
            shutil.rmtree(store)
            serial.append(_timed(ours_cmd(log, store, "--workers", "1")))
            shutil.rmtree(store)
            base_start.append(_timed(baseline_cmd(one)))
            ours_start.append(_timed(ours_cmd(one, store)))
            shutil.rmtree(store)
            loads.append(_load())
        base_mem = _peak_memory(baseline_cmd(log))
        ours_mem = _peak_memory(ours_cmd(log, work / "store-memory"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mib = log.stat().st_size / 2**20
    what = f"ingest {mib:.0f} MiB felix flows.log ({stored:,} records)"
    wall, cpu = (lambda runs: min(r.wall for r in runs)), (lambda runs: min(r.cpu for r in runs))
    machine = f"{loads[0]} before, {loads[-1]} after"
    return [
        Result(what, wall(ours), "s", "duckdb read_json→parquet", wall(base), "<= 1.5x",
               note=f"best of {repeats}, both as subprocesses, {default_workers()} workers; {machine}"),
        Result(f"{what} throughput", stored / wall(ours), "rows/s", "duckdb read_json→parquet", stored / wall(base)),
        # CPU time is steadier than wall time on a shared machine.
        Result(f"{what} CPU time", cpu(ours), "s", "duckdb read_json→parquet", cpu(base),
               note="user + system of every process"),
        Result(f"{what} in one process (--workers 1)", wall(serial), "s", "duckdb read_json→parquet", wall(base),
               note=f"CPU {cpu(serial):.2f} s"),
        Result(f"{what} peak memory", ours_mem, "MiB", "duckdb read_json→parquet", base_mem,
               note="all processes together (proportional set size)"),
        Result("ingest of one record (start-up) CPU time", cpu(ours_start), "s", "duckdb read_json→parquet",
               cpu(base_start)),
        # The CPU the records themselves cost, start-up taken out: how the per-record work compares.
        Result(f"{what} CPU time beyond start-up", cpu(ours) - cpu(ours_start), "s", "duckdb read_json→parquet",
               cpu(base) - cpu(base_start)),
    ]


if __name__ == "__main__":
    chosen = sys.argv[sys.argv.index("--size") + 1] if "--size" in sys.argv else "quick"
    for result in run(chosen):
        print(result.line())
