"""Crash and concurrency runs against the real `flowstage` command: SIGKILL at random points, readers racing writers.

`python -m tests.reliability` runs them with the bad-input corpus and prints the figures (bad inputs tried, kills
survived, concurrent runs, records lost); the tests in tests/test_crash_safety.py and test_concurrency.py run
the same functions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from flowstage.errors import FlowstageError
from flowstage.store import MANIFEST, STAGING, Store

FILES = 6
LINES = 2000  # per file; a multiple of BATCH_ROWS, so every committed state holds whole batches
BATCH_ROWS = 500
ID_STRIDE = 1_000_000  # record ids: file number × ID_STRIDE + line index, logged in bytes_in
RUN_TIMEOUT = 300  # seconds any one command may take: longer is a hang


def record(file_no: int, index: int) -> dict[str, object]:
    """One flow record, unique across the input: its own client IP, so every record is its own replay key."""
    return {
        "start_time": 1700000000 + index, "end_time": 1700000300 + index, "source_ip": f"10.{file_no}.{index // 250}.{index % 250}",
        "source_name": "-", "source_name_aggr": f"client-{file_no}-*", "source_namespace": "shop", "source_type": "wep",
        "source_labels": {"labels": [f"app=client-{file_no}"]}, "dest_ip": "10.200.0.1", "dest_name": "-",
        "dest_name_aggr": "db-*", "dest_namespace": "shop", "dest_port": 5432, "dest_type": "wep",
        "dest_labels": {"labels": ["app=db"]}, "proto": "tcp", "action": "allow", "reporter": "dst",
        "bytes_in": file_no * ID_STRIDE + index, "bytes_out": 1, "packets_in": 1, "packets_out": 1, "num_flows": 1,
        "num_flows_started": 1, "num_flows_completed": 1,
    }


def write_logs(folder: Path, files: int = FILES, lines: int = LINES, first_file: int = 0) -> dict[str, int]:
    """A multi-file input (plain, gzip and zstd in turn): absolute path → records in it."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for file_no in range(first_file, first_file + files):
        text = "".join(json.dumps(record(file_no, i)) + "\n" for i in range(lines)).encode()
        kind = file_no % 3
        path = folder / ("flows-{}.log", "flows-{}.log.gz", "flows-{}.log.zst")[kind].format(file_no)
        path.write_bytes((text, gzip.compress(text, mtime=0), zstandard.ZstdCompressor().compress(text))[kind])
        written[str(path.absolute())] = lines
    return written


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowstage", "--quiet", *args]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          env={**os.environ, "COLUMNS": "100000"})


def file_number(path: str) -> int:
    return int(Path(path).name.split("-")[1].split(".")[0])


def check_flows(store: Path, expected: dict[str, int], complete: bool = False) -> list[str]:
    """What a reader of the store sees: problems found, empty when it is a committed state of `expected`.

    Every file's rows must be lines 1…n holding exactly its first n records (nothing half written, nothing
    twice, nothing from a batch that did not commit); with `complete`, n is every line of every file.
    """
    try:
        con = Store.open(store).connect()
        manifest = Store.open(store).manifest()
        per_file = con.execute(
            "SELECT source_file, count(*), count(DISTINCT source_line), min(source_line), max(source_line), "
            "sum(bytes_in) FROM flows GROUP BY 1").fetchall()
        quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    except (FlowstageError, OSError) as exc:
        return [f"the store cannot be read: {exc}"]
    except Exception as exc:  # a DuckDB error reading a listed part is exactly what must never happen
        return [f"a query failed: {type(exc).__name__}: {exc}"]
    problems = []
    if quarantined:
        problems.append(f"{quarantined} good records quarantined")
    seen = {}
    for source, rows, lines, first, last, ids in per_file:
        seen[source] = rows
        if source not in expected:
            problems.append(f"rows from a file never ingested: {source}")
            continue
        n, base = rows, file_number(source) * ID_STRIDE
        if lines != rows:
            problems.append(f"{source}: {rows - lines} rows stored twice")
        if (first, last) != (1, rows) or rows > expected[source]:
            problems.append(f"{source}: rows are lines {first}…{last}, not the first {rows}")
        if ids != n * base + n * (n - 1) // 2:
            problems.append(f"{source}: rows are not its first {n} records")
    listed = sum(part["rows"] for part in manifest["datasets"]["flows"]["files"])
    if listed != sum(seen.values()):
        problems.append(f"the manifest lists {listed} rows, readers see {sum(seen.values())}")
    if complete:
        for source, lines in expected.items():
            if seen.get(source, 0) != lines:
                problems.append(f"{source}: {seen.get(source, 0)} of {lines} records stored")
    return problems


def leftovers(store: Path) -> list[str]:
    """Files a finished writer should have removed: uncommitted parts, staging folders, temporary manifests."""
    manifest = json.loads((store / MANIFEST).read_text())
    listed = {part["path"] for entry in manifest["datasets"].values() for part in entry["files"]}
    listed |= {path for entry in manifest["datasets"].values() for old in entry.get("retired", []) for path in old}
    found = [p.relative_to(store).as_posix() for p in store.rglob("*.parquet")]
    stray = [p for p in found if p not in listed]
    stray += [p.name for p in store.iterdir() if p.name.endswith(".tmp")]
    stray += [p.relative_to(store).as_posix() for p in (store / STAGING).glob("*")]
    return stray


@dataclass
class KillReport:
    kills: int = 0  # SIGKILLs that hit a running command
    finished: int = 0  # runs that ended before their kill came
    checks: int = 0  # times the store was read back and checked
    problems: list[str] = field(default_factory=list)
    expected_rows: int = 0
    final_rows: int = 0


def _kill_after(args: Sequence[str], delay: float) -> bool:
    """Start a command, SIGKILL it after `delay` seconds; True if it was still running (a real kill)."""
    proc = subprocess.Popen(command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed on its own: {proc.stderr.read()[-2000:]}")
    return False


def kill_ingest(work: Path, kills: int = 20, seed: int = 8) -> KillReport:
    """SIGKILL `flowstage ingest` of a multi-file input at random points; check the store after every kill, then
    finish the ingest and check the count is exact. Stores start fresh whenever an ingest completes."""
    rng = random.Random(seed)
    expected = write_logs(work / "logs")
    report = KillReport(expected_rows=sum(expected.values()))
    ingest = ["ingest", str(work / "logs"), "--batch-rows", str(BATCH_ROWS)]
    started = time.monotonic()
    calibration = run(*ingest, "--store", str(work / "calibration"))
    if calibration.returncode != 0:
        raise RuntimeError(calibration.stderr[-2000:])
    horizon = time.monotonic() - started  # a whole ingest, start-up included: kills land anywhere in it
    round_no = 0
    while report.kills < kills:
        store = work / f"store-{round_no}"
        Store.open(store, create=True)
        while report.kills < kills:
            killed = _kill_after([*ingest, "--store", str(store)], rng.uniform(0.0, horizon))
            report.kills += killed
            report.finished += not killed
            report.problems += check_flows(store, expected)
            report.checks += 1
            if not killed:
                break
        final = run(*ingest, "--store", str(store))
        if final.returncode != 0 or "Traceback" in final.stderr:
            report.problems.append(f"the ingest after the kills failed: {final.stderr[-2000:]}")
        report.problems += check_flows(store, expected, complete=True)
        report.problems += [f"left behind: {p}" for p in leftovers(store)]
        report.checks += 1
        report.final_rows = Store.open(store).connect().execute("SELECT count(*) FROM flows").fetchone()[0]
        round_no += 1
    return report


EVERYTHING_POLICY = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: {name}
spec:
  selector: all()
  types: [Ingress, Egress]
  ingress:
  - action: {action}
  egress:
  - action: {action}
"""


def check_replay(store: Path, runs: dict[str, tuple[str, str]]) -> list[str]:
    """The replay views show one whole run: its info, its verdicts and its policies agree.

    `runs` maps a policy file to the policy it holds and the verdict it gives every row.
    """
    try:
        con = Store.open(store).connect()
        info = con.execute("SELECT run_id, inputs, keys, rows FROM replay_info").fetchall()
        keys, rows = con.execute("SELECT count(*), sum(rows) FROM verdicts").fetchone()
        verdicts = {v for (v,) in con.execute("SELECT DISTINCT current_verdict FROM verdicts").fetchall()}
        deciders = {p for (p,) in con.execute("SELECT DISTINCT current_policy FROM verdicts").fetchall()}
        policies = {p for (p,) in con.execute("SELECT DISTINCT name FROM replay_policies").fetchall()}
        flows = con.execute("SELECT count(*) FROM flows").fetchone()[0]
    except Exception as exc:  # any failure to read the replay views is what must never happen
        return [f"the replay views cannot be read: {type(exc).__name__}: {exc}"]
    if len(info) != 1:
        return [f"replay_info has {len(info)} rows"]
    run_id, inputs, info_keys, info_rows = info[0]
    files = [i["path"] for i in inputs if i["role"] == "policies"]
    if len(files) != 1 or files[0] not in runs:
        return [f"run {run_id} names unknown policy files {files}"]
    policy, verdict = runs[files[0]]
    problems = []
    if (keys, rows) != (info_keys, info_rows) or rows != flows:
        problems.append(f"run {run_id}: info says {info_keys} keys / {info_rows} rows, verdicts hold {keys} / {rows}, "
                        f"flows {flows}")
    others = {name for name, _ in runs.values()} - {policy}
    if verdicts != {verdict}:
        problems.append(f"run {run_id} of {policy}: verdicts {verdicts}, expected only {verdict}")
    if deciders != {policy} or policy not in policies or policies & others:
        problems.append(f"run {run_id} of {policy}: decided by {deciders}, replay_policies lists {policies}")
    return problems


def shown_policies(store: Path) -> str | None:
    """The policy file of the replay the store's views show (None when they cannot be read)."""
    try:
        [(inputs,)] = Store.open(store).connect().execute("SELECT inputs FROM replay_info").fetchall()
    except Exception:  # check_replay says what is wrong
        return None
    return next((i["path"] for i in inputs if i["role"] == "policies"), None)


def kill_replay(work: Path, kills: int = 20, seed: int = 9) -> KillReport:
    """SIGKILL `flowstage replay` at random points, switching between two policy sets with opposite verdicts;
    after every kill the replay views must show one whole run, the last one that finished."""
    rng = random.Random(seed)
    expected = write_logs(work / "logs", files=2)
    store = work / "store"
    ingested = run("ingest", str(work / "logs"), "--store", str(store))
    if ingested.returncode != 0:
        raise RuntimeError(ingested.stderr[-2000:])
    runs = {}
    for name, action, verdict in (("allow-everything", "Allow", "allow"), ("deny-everything", "Deny", "deny")):
        path = work / f"{name}.yaml"
        path.write_text(EVERYTHING_POLICY.format(name=name, action=action))
        runs[str(path.absolute())] = (name, verdict)
    files = list(runs)
    report = KillReport(expected_rows=sum(expected.values()))
    started = time.monotonic()
    baseline = run("replay", "--store", str(store), "--policies", files[0])
    if baseline.returncode != 0:
        raise RuntimeError(baseline.stderr[-2000:])
    horizon = time.monotonic() - started
    shown = files[0]
    attempt = 0
    while report.kills < kills:
        policies = files[(attempt + 1) % 2]
        attempt += 1
        killed = _kill_after(["replay", "--store", str(store), "--policies", policies], rng.uniform(0.0, horizon))
        report.kills += killed
        report.finished += not killed
        problems = check_replay(store, runs)
        now = shown_policies(store)
        # A killed replay has published (the kill came after its swap) or has not: nothing in between.
        if now != policies and (not killed or now != shown):
            problems.append(f"{'a killed' if killed else 'a finished'} replay of {policies} left the views showing "
                            f"{now} (before it: {shown})")
        shown = now
        report.problems += problems
        report.checks += 1
    final = run("replay", "--store", str(store), "--policies", files[1])
    if final.returncode != 0 or "Traceback" in final.stderr:
        report.problems.append(f"the replay after the kills failed: {final.stderr[-2000:]}")
    report.problems += check_replay(store, runs) + check_flows(store, expected, complete=True)
    report.problems += [f"left behind: {p}" for p in leftovers(store)]
    report.problems += [f"left behind: {p.name}" for p in store.glob(".replay-*")]
    report.final_rows = Store.open(store).connect().execute("SELECT count(*) FROM flows").fetchone()[0]
    return report


@dataclass
class ConcurrencyReport:
    reader_runs: int = 0  # `sql` and `report` runs that overlapped a writer
    writer_runs: int = 0  # ingests that wrote while the readers read
    refused: int = 0  # second writers that gave up with the lock message
    waited: int = 0  # second writers that waited for the lock, then wrote
    problems: list[str] = field(default_factory=list)
    expected_rows: int = 0
    final_rows: int = 0


_READER_SQL = """WITH per_file AS (
    SELECT source_file, count(*) AS n, count(DISTINCT source_line) AS lines, min(source_line) AS lo,
           max(source_line) AS hi FROM flows GROUP BY 1)
SELECT CAST(sum(n) AS BIGINT) AS rows, count(*) FILTER (WHERE lines <> n OR lo <> 1 OR hi <> n OR n % {batch} <> 0) AS torn_files
FROM per_file"""


def _reader(kind: str, store: Path, stop: threading.Event, report: ConcurrencyReport, lock: threading.Lock,
            replayed: int) -> None:
    """Run `sql` or `report` over and over while the writers write; each run must succeed on a committed state."""
    while not stop.is_set():
        if kind == "sql":
            result = run("sql", "--store", str(store), "--format", "json", _READER_SQL.format(batch=BATCH_ROWS))
        else:
            result = run("report", "--store", str(store), "--format", "json", "would_break")
        problem = None
        try:
            if result.returncode != 0 or "Traceback" in result.stderr:
                problem = f"{kind} failed while a writer wrote: {result.stderr[-1500:]}"
            elif kind == "sql":
                [seen] = json.loads(result.stdout)
                if seen["torn_files"] or (seen["rows"] or 0) % BATCH_ROWS:
                    problem = f"sql saw a partial state: {seen}"
            else:
                summary = json.loads(result.stdout)["summary"]
                if summary["replayed_rows"] != replayed or summary["stale_rows"] % BATCH_ROWS:
                    problem = (f"report saw a partial state: {summary['replayed_rows']} replayed, "
                               f"{summary['stale_rows']} new")
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"{kind} printed what it should not: {exc}: {result.stdout[-500:]}"
        with lock:
            report.reader_runs += 1
            if problem:
                report.problems.append(problem)


def concurrent_runs(work: Path, writer_rounds: int = 3, readers: Sequence[str] = ("sql", "report")) -> ConcurrencyReport:
    """A writer ingests new files round after round while `sql` and `report` run in a loop beside it, and a
    second writer tries to ingest at the same time: once refusing after a short lock timeout, once waiting."""
    store = work / "store"
    expected = write_logs(work / "round-0", files=2)
    first = run("ingest", str(work / "round-0"), "--store", str(store), "--batch-rows", str(BATCH_ROWS))
    policy = work / "policy.yaml"
    policy.write_text(EVERYTHING_POLICY.format(name="allow-everything", action="Allow"))
    replay = run("replay", "--store", str(store), "--policies", str(policy))
    if first.returncode != 0 or replay.returncode != 0:
        raise RuntimeError(first.stderr[-1500:] + replay.stderr[-1500:])
    replayed = sum(expected.values())
    report = ConcurrencyReport()
    lock = threading.Lock()
    stop = threading.Event()
    threads = [threading.Thread(target=_reader, args=(kind, store, stop, report, lock, replayed)) for kind in readers]
    for thread in threads:
        thread.start()
    try:
        for round_no in range(1, writer_rounds + 1):
            logs = work / f"round-{round_no}"
            expected |= write_logs(logs, files=4, first_file=round_no * FILES)
            writer = subprocess.Popen(command("ingest", str(logs), "--store", str(store), "--batch-rows",
                                              str(BATCH_ROWS)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)
            time.sleep(1.0)  # the writer has the lock by now
            if round_no == 1:
                # A second writer with a short timeout must refuse with the lock message, writing nothing.
                second = run("ingest", str(work / "round-0"), "--store", str(store), "--lock-timeout", "0.2")
                if second.returncode == 2 and "another flowstage process is writing" in second.stderr:
                    report.refused += 1
                elif writer.poll() is None or second.returncode != 0:
                    report.problems.append(f"a second writer neither waited nor refused: {second.stderr[-1500:]}")
            if round_no == 2:
                # A second writer with the default timeout waits its turn, then finds nothing new to add.
                second = run("ingest", str(work / "round-0"), "--store", str(store), "--json")
                if second.returncode == 0 and json.loads(second.stdout)["stored"] == 0:
                    report.waited += 1
                else:
                    report.problems.append(f"a waiting second writer failed: {second.stderr[-1500:]}")
            _, errors = writer.communicate(timeout=RUN_TIMEOUT)
            report.writer_runs += 1
            if writer.returncode != 0 or "Traceback" in errors:
                report.problems.append(f"the writer failed: {errors[-1500:]}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(RUN_TIMEOUT)
    report.problems += check_flows(store, expected, complete=True)
    report.expected_rows = sum(expected.values())
    report.final_rows = Store.open(store).connect().execute("SELECT count(*) FROM flows").fetchone()[0]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="run everything and print the figures")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per command (ingest, replay)")
    args = parser.parse_args(argv)
    if not args.report:
        parser.print_help()
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    import badinput  # noqa: PLC0415 - the corpus module sits next to this one, imported as the tests import it

    with tempfile.TemporaryDirectory(prefix="flowstage-reliability-") as tmp:
        work = Path(tmp)
        bad = badinput.run_corpus(work / "bad-input")
        ingest_kills = kill_ingest(work / "kill-ingest", kills=args.kills)
        replay_kills = kill_replay(work / "kill-replay", kills=args.kills)
        concurrency = concurrent_runs(work / "concurrency")
    lost = (ingest_kills.expected_rows - ingest_kills.final_rows) + (concurrency.expected_rows - concurrency.final_rows)
    problems = bad.problems + ingest_kills.problems + replay_kills.problems + concurrency.problems
    print(f"bad inputs tried: {bad.inputs} ({bad.families} kinds); outcome as specified: {bad.inputs - bad.failed}; "
          f"tracebacks: {bad.tracebacks}; records read {bad.read} = stored {bad.stored} + quarantined {bad.quarantined}")
    print(f"kills survived: ingest {ingest_kills.kills} (store checked {ingest_kills.checks} times), "
          f"replay {replay_kills.kills} (views checked {replay_kills.checks} times)")
    print(f"concurrent runs: {concurrency.reader_runs} sql/report runs beside {concurrency.writer_runs} ingests; "
          f"second writers: {concurrency.refused} refused, {concurrency.waited} waited")
    print(f"records lost: {lost} (ingest after kills {ingest_kills.final_rows}/{ingest_kills.expected_rows}, "
          f"after concurrent writes {concurrency.final_rows}/{concurrency.expected_rows})")
    print(f"problems: {len(problems)}")
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
