"""Ingest with several worker processes stores exactly what one process stores: the same rows, line numbers and
quarantine, wherever the pieces of a file are cut; a crash or a lost worker leaves a committed prefix that the
next run completes."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import reliability
import zstandard

import flowstage
from bench.common import peak_tree_pss_mib
from flowstage.errors import UsageError
from flowstage.ingest import ingest, pipeline, ranges
from flowstage.ingest.ranges import pieces
from flowstage.store import Store

QUARANTINE_COLUMNS = "source_file, source_line, format, reason, detail, raw"
PIECE = 16 * 1024  # bytes of a plain file per job in these tests: dozens of pieces per file


def record(i: int, **fields: object) -> dict[str, object]:
    return {"start_time": 1700000000 + i * 300, "end_time": 1700000300 + i * 300, "source_name_aggr": f"client-{i % 7}-*",
            "dest_name_aggr": "server-*", "proto": "tcp", "action": "allow", "reporter": "src", "bytes_in": i,
            "source_labels": {"labels": [f"app=client-{i % 7}"]},
            "policies": {"enforced_policies": [f"0|default|shop/default.allow-{i % 5}|allow|0"]}, **fields}


def line(i: int, **fields: object) -> bytes:
    return json.dumps(record(i, **fields)).encode() + b"\n"


# Lines that go to the quarantine, each for its own reason, and lines that hold no record at all.
BAD_LINES = [
    b'{"start_time": 1700000000, "source_name_aggr": \n',  # invalid_json
    b'{"start_time": "yesterday", "proto": "tcp", "action": "allow", "reporter": "src"}\n',  # wrong_type
    b'{"hello": "world"}\n',  # not_a_flow_record
    b'{"start_time": 1700000000, "proto": "tcp", "source_name_aggr": "caf\xe9-*"}\n',  # invalid_utf8
    json.dumps(record(0, source_labels=5)).encode() + b"\n",  # wrong_type: labels that cannot be decoded
    b"\n",  # blank: no record
    b"   \r\n",  # blank with CRLF
]


def scattered_log(path: Path, records: int = 600, seed: int = 3, bad: float = 0.15) -> Path:
    """Good records with a bad or blank line now and then (`bad` of the time), a few CRLF endings and some long
    lines."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for i in range(records):
            if rng.random() < bad:
                out.write(rng.choice(BAD_LINES))
            text = line(i, dest_name_aggr=f"server-{'x' * rng.choice([0, 0, 0, 3000])}-*")
            out.write(text[:-1] + b"\r\n" if rng.random() < 0.05 else text)
    return path


def snapshot(store: Store) -> tuple[list[tuple], list[tuple]]:
    """Every flow row and every quarantine row, in file order (what a reader of the store sees)."""
    con = store.connect()
    flows = con.execute("SELECT * FROM flows ORDER BY source_file, source_line").fetchall()
    quarantine = con.execute(f"SELECT {QUARANTINE_COLUMNS} FROM quarantine ORDER BY source_file, source_line").fetchall()
    return flows, quarantine


def ingest_both(tmp_path: Path, paths: list[str], **parallel: object) -> tuple[Store, Store]:
    """The same inputs into two stores: one process, and two workers cutting files into small pieces."""
    serial = Store.open(tmp_path / "serial", create=True)
    across = Store.open(tmp_path / "across", create=True)
    one = ingest(paths, serial, workers=1)
    two = ingest(paths, across, workers=2, **{"piece_bytes": PIECE, **parallel})
    assert two.to_dict() == one.to_dict()
    return serial, across


def test_pieces_are_whole_lines_numbered_from_where_they_start(tmp_path: Path):
    text = b"".join([b"a" * 10 + b"\n", b"b" * 5000 + b"\n", b"\n", b"c" * 30 + b"\n", b"d" * 7])  # no final newline
    path = tmp_path / "flows.log"
    path.write_bytes(text)
    cut = list(pieces(path, 0, len(text), 1, piece_bytes=8))
    assert [(p.start, p.end, p.first_line) for p in cut] == [
        (0, 11, 1),  # the first newline at or after byte 8
        (11, 5012, 2),  # a line longer than a piece stays whole
        (5012, 5044, 3),  # a blank line and the next, up to the first newline at or after 8 bytes in
        (5044, 5051, 5),  # the last line, without its newline
    ]
    assert list(pieces(path, 11, len(text), 2, piece_bytes=10_000)) == [cut[1].__class__(11, 5051, 2)]


def test_two_workers_store_what_one_process_stores_from_the_conformance_files(shared_dir: Path, tmp_path: Path):
    serial, across = ingest_both(tmp_path, [str(shared_dir / "conformance" / "flowlogs")])
    assert snapshot(across) == snapshot(serial)
    assert len(snapshot(across)[0]) == 349


def test_every_line_framing_and_the_sample_logs_read_alike_by_workers(tmp_path: Path, repo_dir: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    whisker = {"start_time": "2025-12-05T21:40:45Z", "end_time": "2025-12-05T21:41:00Z", "action": "Deny",
               "source_name": "PUBLIC NETWORK", "dest_name": "api-*", "dest_namespace": "prod", "protocol": "tcp",
               "dest_port": 443, "reporter": "Dst", "bytes_in": 300}
    stream = [f"data: {json.dumps({**whisker, 'bytes_in': i})}\n\n" for i in range(300)]
    stream[100] = "event: error\nerror: the stream broke\n\n"
    (logs / "watch.txt").write_text(": keep-alive\n" + "".join(stream))
    (logs / "flows2023111422_0").write_text("".join(  # an S3 archive: time, tag, record
        f"2023-11-14T22:00:{i % 60:02d}+00:00\tflows\t{json.dumps(record(i))}\n" for i in range(300)))
    serial, across = ingest_both(tmp_path, [str(logs), str(repo_dir / "sample_logs" / "logs")], piece_bytes=32 * 1024)
    assert snapshot(across) == snapshot(serial)
    formats = dict(across.connect().execute("SELECT format, count(*) FROM flows GROUP BY 1").fetchall())
    assert set(formats) == {"felix", "elastic", "goldmane", "whisker", "s3"}


def test_bad_lines_scattered_across_piece_boundaries_keep_their_line_numbers(tmp_path: Path):
    log = scattered_log(tmp_path / "flows.log", bad=0.4)
    serial, across = ingest_both(tmp_path, [str(log)], batch_rows=20)
    flows, quarantine = snapshot(across)
    assert (flows, quarantine) == snapshot(serial)
    cut = list(pieces(log, 0, log.stat().st_size, 1, PIECE))
    assert len(cut) > 30
    edges = {p.first_line for p in cut} | {p.first_line - 1 for p in cut}  # first and last lines of pieces
    assert len(edges & {number for _, number, *_ in quarantine}) >= 8
    lines = log.read_bytes().split(b"\n")
    # Each quarantined line is the very line of the file its number names.
    for _, number, _, reason, _, raw in quarantine:
        assert lines[number - 1].rstrip(b"\r").decode("utf-8", errors="replace") == raw, reason
    reasons = {q[3] for q in quarantine}
    assert reasons == {"invalid_json", "wrong_type", "not_a_flow_record", "invalid_utf8"}


def test_a_cut_inside_a_long_line_moves_to_the_end_of_that_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ranges, "SCAN_BYTES", 1000)  # the line counter reads the long line in many parts
    log = tmp_path / "flows.log"
    long_label = "pad=" + "x" * 200_000  # a dozen pieces long
    log.write_bytes(line(0) + line(1, source_labels={"labels": [long_label]}) + line(2) + line(3))
    serial, across = ingest_both(tmp_path, [str(log)])
    flows, _ = snapshot(across)
    assert (flows, []) == snapshot(serial)
    con = across.connect()
    assert con.execute("SELECT source_line, bytes_in FROM flows ORDER BY 1").fetchall() == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert con.execute("SELECT strlen(source_labels['pad']) FROM flows WHERE source_line = 2").fetchone() == (200_000,)


def test_a_cut_last_line_is_quarantined_and_read_again_once_the_writer_finishes_it(tmp_path: Path):
    whole = scattered_log(tmp_path / "whole.log", records=300).read_bytes() + line(300)
    log = tmp_path / "flows.log"
    log.write_bytes(whole[:-40])
    serial, across = ingest_both(tmp_path, [str(log)])
    assert snapshot(across) == snapshot(serial)
    _, quarantine = snapshot(across)
    assert quarantine[-1][3] == "truncated_last_line"
    assert quarantine[-1][1] == whole.count(b"\n")
    log.write_bytes(whole)
    finished = ingest([str(log)], across, workers=2, piece_bytes=PIECE)
    assert (finished.read, finished.stored) == (1, 1)
    assert ingest([str(log)], serial, workers=1).stored == 1
    assert snapshot(across) == snapshot(serial)


def test_a_grown_file_adds_only_its_new_lines_in_pieces(tmp_path: Path):
    log = tmp_path / "flows.log"
    log.write_bytes(b"".join(line(i) for i in range(100)))
    store = Store.open(tmp_path / "store", create=True)
    ingest([str(log)], store, workers=1)
    with log.open("ab") as out:
        out.write(b"".join(line(i) for i in range(100, 400)))
    grown = ingest([str(log)], store, workers=2, piece_bytes=4096)
    assert (grown.read, grown.stored) == (300, 300)
    rows = store.connect().execute("SELECT source_line, bytes_in FROM flows ORDER BY 1").fetchall()
    assert rows == [(i + 1, i) for i in range(400)]
    assert ingest([str(log)], store, workers=2, piece_bytes=4096).files[0].status == "unchanged"


def test_a_few_new_lines_are_read_in_this_process_without_starting_workers(tmp_path: Path):
    log = tmp_path / "flows.log"
    log.write_bytes(b"".join(line(i) for i in range(100)))
    store = Store.open(tmp_path / "store", create=True)
    ingest([str(log)], store, workers=2, piece_bytes=4096)
    with log.open("ab") as out:
        out.write(b"".join(line(i) for i in range(100, 103)))
    grown = ingest([str(log)], store, workers=2, piece_bytes=1024 * 1024)  # one piece: no worker would help
    assert (grown.read, grown.stored) == (3, 3)
    rows = store.connect().execute("SELECT source_line, bytes_in FROM flows ORDER BY 1").fetchall()
    assert rows == [(i + 1, i) for i in range(103)]


def test_compressed_files_are_read_whole_beside_the_pieces_of_plain_ones(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    scattered_log(logs / "a.log", records=200, seed=1)
    b = scattered_log(tmp_path / "b.log", records=200, seed=2).read_bytes()
    (logs / "b.log.gz").write_bytes(gzip.compress(b, mtime=0))
    c = scattered_log(tmp_path / "c.log", records=200, seed=4).read_bytes()
    (logs / "c.log.zst").write_bytes(zstandard.ZstdCompressor().compress(c))
    (logs / "d.json").write_text(json.dumps([record(1), record(2)]))  # a document: read by the parent
    serial, across = ingest_both(tmp_path, [str(logs)], batch_rows=50)
    assert snapshot(across) == snapshot(serial)
    manifest = across.manifest()["sources"]
    assert manifest[str(logs / "b.log.gz")]["complete"] and manifest[str(logs / "c.log.zst")]["complete"]
    again = ingest([str(logs)], across, workers=2, piece_bytes=PIECE)
    assert [f.status for f in again.files] == ["unchanged"] * 4


def test_a_damaged_compressed_file_keeps_what_was_read_before_the_damage(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    scattered_log(logs / "a.log", records=200)
    packed = gzip.compress(b"".join(line(i) for i in range(3000)), mtime=0)
    (logs / "cut.log.gz").write_bytes(packed[: len(packed) // 2])
    serial, across = ingest_both(tmp_path, [str(logs)], batch_rows=100)
    assert snapshot(across) == snapshot(serial)
    cut = ingest([str(logs)], across, workers=2, piece_bytes=PIECE).files
    assert [f.status for f in cut] == ["unchanged", "unchanged"]  # read as far as it can be: not read again


def test_workers_must_be_at_least_one(tmp_path: Path):
    with pytest.raises(UsageError, match="--workers"):
        ingest([str(tmp_path)], Store.open(tmp_path / "store", create=True), workers=0)


@pytest.mark.slow
def test_the_cli_reads_a_large_file_with_workers_and_reports_the_same_summary(tmp_path: Path):
    log = scattered_log(tmp_path / "flows.log", records=36_000)
    assert log.stat().st_size > pipeline.MIN_PARALLEL_BYTES  # large enough for workers to pay off
    summaries = []
    for workers in ("1", "2"):
        result = reliability.run("ingest", str(log), "--store", str(tmp_path / f"store-{workers}"), "--json",
                                 "--workers", workers)
        assert result.returncode == 0, result.stderr
        summaries.append(json.loads(result.stdout))
    assert summaries[0] == summaries[1]
    assert snapshot(Store.open(tmp_path / "store-1")) == snapshot(Store.open(tmp_path / "store-2"))


# --- crashes and lost workers --------------------------------------------------------------------------------

# Ingest through the library with small pieces, so that even small inputs are read by workers.
_INGEST = """
import sys
from flowstage.errors import FlowstageError
from flowstage.ingest import ingest
from flowstage.store import Store
try:
    ingest(sys.argv[2:], Store.open(sys.argv[1], create=True), batch_rows=250, workers=2, piece_bytes=64 * 1024)
except FlowstageError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""

# The same, SIGKILLed as it commits its third batch: some batches committed, others staged by the workers.
_STOP_AT_THIRD_COMMIT = """
import os, signal, sys
from flowstage.store import StoreWriter
commit = StoreWriter.commit
commits = []
def commit_some(self, *args, **kwargs):
    commits.append(1)
    if len(commits) == 4:  # the store's creation, three batches, then the kill
        os.kill(os.getpid(), signal.SIGKILL)
    commit(self, *args, **kwargs)
StoreWriter.commit = commit_some
""" + _INGEST


# The same, leaving with 130 on Ctrl-C as the CLI does.
_INTERRUPTIBLE = _INGEST.replace("except FlowstageError", "except KeyboardInterrupt:\n    sys.exit(130)\nexcept FlowstageError")


def ingest_command(store: Path, logs: dict[str, int], script: str = _INGEST) -> list[str]:
    return [sys.executable, "-c", script, str(store), *logs]


def workers_of(store: Path) -> list[psutil.Process]:
    """Worker processes (and their helper) still running for an ingest into `store`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "start_workers" in cmdline and json.dumps(str(store))[1:-1] in cmdline:
            found.append(process)
    return found


def no_workers_left(store: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while workers_of(store):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_parallel_ingest_killed_mid_file_is_finished_by_the_next_run(tmp_path: Path):
    logs = reliability.write_logs(tmp_path / "logs", files=3, lines=2000)
    store = tmp_path / "store"
    proc = subprocess.run(ingest_command(store, logs, _STOP_AT_THIRD_COMMIT), capture_output=True, text=True,
                          timeout=reliability.RUN_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert no_workers_left(store)  # workers leave with their parent
    assert reliability.check_flows(store, logs) == []
    rows = Store.open(store).connect().execute("SELECT count(*) FROM flows").fetchone()[0]
    assert 0 < rows < sum(logs.values())
    again = subprocess.run(ingest_command(store, logs), capture_output=True, text=True, timeout=reliability.RUN_TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert reliability.check_flows(store, logs, complete=True) == []
    assert reliability.leftovers(store) == []


@pytest.mark.slow
def test_a_parallel_ingest_killed_12_times_loses_nothing_and_stores_nothing_twice(tmp_path: Path):
    logs = reliability.write_logs(tmp_path / "logs", files=3, lines=4000)
    started = time.monotonic()
    calibration = subprocess.run(ingest_command(tmp_path / "calibration", logs), capture_output=True, text=True)
    assert calibration.returncode == 0, calibration.stderr
    horizon = time.monotonic() - started  # a whole run: kills land anywhere in it
    rng = random.Random(12)
    kills = rounds = 0
    store = tmp_path / "store-0"
    while kills < 12:
        proc = subprocess.Popen(ingest_command(store, logs), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            proc.wait(timeout=rng.uniform(0.0, horizon))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        finally:
            errors = proc.stderr.read()
            proc.stderr.close()
        assert no_workers_left(store)
        assert reliability.check_flows(store, logs) == []
        if proc.returncode == 0:  # finished before its kill: start again on a new store
            assert reliability.check_flows(store, logs, complete=True) == []
            rounds += 1
            store = tmp_path / f"store-{rounds}"
        else:
            assert proc.returncode == -signal.SIGKILL, errors
    final = subprocess.run(ingest_command(store, logs), capture_output=True, text=True, timeout=reliability.RUN_TIMEOUT)
    assert final.returncode == 0, final.stderr
    assert reliability.check_flows(store, logs, complete=True) == []
    assert reliability.leftovers(store) == []


def test_ctrl_c_stops_a_parallel_ingest_and_its_workers_cleanly(tmp_path: Path):
    logs = reliability.write_logs(tmp_path / "logs", files=3, lines=8000)
    plain = {path: lines for path, lines in logs.items() if path.endswith(".log")}
    store = tmp_path / "store"
    proc = subprocess.Popen(ingest_command(store, plain, _INTERRUPTIBLE), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not workers_of(store) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, errors = proc.communicate(timeout=reliability.RUN_TIMEOUT)
    assert proc.returncode == 130, errors
    assert "Traceback" not in errors
    assert no_workers_left(store)
    assert reliability.check_flows(store, plain) == []
    assert reliability.leftovers(store) == []
    again = subprocess.run(ingest_command(store, plain), capture_output=True, text=True, timeout=reliability.RUN_TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert reliability.check_flows(store, plain, complete=True) == []


def test_a_worker_that_dies_stops_the_ingest_with_a_clear_error_and_the_next_run_finishes(tmp_path: Path):
    logs = reliability.write_logs(tmp_path / "logs", files=3, lines=12_000)
    plain = {path: lines for path, lines in logs.items() if path.endswith(".log")}
    store = tmp_path / "store"
    proc = subprocess.Popen(ingest_command(store, plain), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            # Workers are the helper's children; wait for the first committed batch so the ingest is under way.
            helpers = [p for p in workers_of(store) if p.ppid() == proc.pid]
            children = [c for h in helpers for c in h.children()]
            if children and (store / "manifest.json").exists() and Store.open(store).manifest()["datasets"]["flows"]["files"]:
                victim = children[0]
            time.sleep(0.01)
        assert victim is not None, "the ingest ended before a worker could be stopped"
        victim.kill()
        _, errors = proc.communicate(timeout=reliability.RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, errors
    assert "an ingest worker process ended in the middle of its work" in errors
    assert "Traceback" not in errors
    assert no_workers_left(store)
    assert reliability.check_flows(store, plain) == []
    assert reliability.leftovers(store) == []  # what the workers staged but nobody committed is gone
    again = subprocess.run(ingest_command(store, plain), capture_output=True, text=True, timeout=reliability.RUN_TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert reliability.check_flows(store, plain, complete=True) == []


# --- memory ------------------------------------------------------------------------------------------------------


def peak_pss_mib(args: list[str]) -> float:
    """Run a command; the largest proportional memory (PSS) its whole process tree held at once, in MiB."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = peak_tree_pss_mib(proc, interval=0.02)
    assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
    return peak


@pytest.mark.slow
def test_memory_of_all_workers_follows_the_batch_size_not_the_file_size(tmp_path: Path):
    small, large = tmp_path / "small.log", tmp_path / "large.log"
    for path, records in ((small, 10_000), (large, 40_000)):
        with path.open("wb") as out:
            for i in range(records):
                out.write(line(i, dest_labels={"labels": ["app=server", "pad=" + "y" * 600]}))
    # Both read by two workers in pieces of 2 MiB, batches of 2,000 lines.
    script = _INGEST.replace("batch_rows=250", "batch_rows=2000").replace("64 * 1024", "2 * 1024 * 1024")
    peaks = [peak_pss_mib([sys.executable, "-c", script, str(tmp_path / f"store-{path.stem}"), str(path)])
             for path in (small, large)]
    assert flowstage.connect(tmp_path / "store-large").execute("SELECT count(*) FROM flows").fetchone()[0] == 40_000
    assert peaks[1] < peaks[0] * 1.2 + 40, peaks
