"""SIGKILL at random points: `flowstage ingest` and `flowstage replay` die mid-run, and the store stays readable,
shows only committed work, and a re-run ends with exactly the right rows, none twice.

The kill loops live in tests/reliability.py (`python -m tests.reliability --report` prints their figures).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import reliability

from flowstage.ingest.pipeline import _read_ahead


@pytest.mark.slow
def test_ingest_killed_20_times_loses_nothing_and_stores_nothing_twice(tmp_path: Path):
    report = reliability.kill_ingest(tmp_path, kills=20, seed=8)
    assert report.problems == []
    assert report.kills == 20
    assert report.final_rows == report.expected_rows == reliability.FILES * reliability.LINES


@pytest.mark.slow
def test_replay_killed_20_times_never_shows_a_mix_of_runs(tmp_path: Path):
    report = reliability.kill_replay(tmp_path, kills=20, seed=9)
    assert report.problems == []
    assert report.kills == 20


def test_a_store_killed_before_its_first_manifest_can_be_created_again(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    (store / ".lock").touch()
    (store / ".manifest.json.0123abcd.tmp").write_text('{"format": "flowst')  # the write SIGKILL cut short
    logs = reliability.write_logs(tmp_path / "logs", files=1, lines=10)
    result = reliability.run("ingest", str(tmp_path / "logs"), "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert reliability.check_flows(store, logs, complete=True) == []
    assert reliability.leftovers(store) == []


def test_ctrl_c_stops_an_ingest_cleanly_and_the_next_one_finishes_it(tmp_path: Path):
    logs = reliability.write_logs(tmp_path / "logs", files=2, lines=3000)
    store = tmp_path / "store"
    proc = subprocess.Popen(reliability.command("ingest", str(tmp_path / "logs"), "--store", str(store),
                                                "--batch-rows", "100"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not (store / "manifest.json").exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, errors = proc.communicate(timeout=reliability.RUN_TIMEOUT)  # an interrupted ingest must not hang
    assert "Traceback" not in errors
    assert proc.returncode in (0, 130)
    assert reliability.check_flows(store, logs) == []
    again = reliability.run("ingest", str(tmp_path / "logs"), "--store", str(store))
    assert again.returncode == 0, again.stderr
    assert reliability.check_flows(store, logs, complete=True) == []


def test_reading_ahead_stops_when_its_consumer_stops():
    # The reader thread has handed over both items and waits to say "end" when the consumer gives up early
    # (Ctrl-C or an error in a batch): closing must not wait for ever.
    reader = _read_ahead(iter([1, 2]))
    assert next(reader) == 1
    time.sleep(0.3)
    closing = threading.Thread(target=reader.close)
    closing.start()
    closing.join(10)
    assert not closing.is_alive()


def test_a_replay_killed_before_it_publishes_leaves_the_previous_replay_whole(tmp_path: Path):
    reliability.write_logs(tmp_path / "logs", files=1, lines=500)
    store = tmp_path / "store"
    assert reliability.run("ingest", str(tmp_path / "logs"), "--store", str(store)).returncode == 0
    runs = {}
    for name, action, verdict in (("allow-everything", "Allow", "allow"), ("deny-everything", "Deny", "deny")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(reliability.EVERYTHING_POLICY.format(name=name, action=action))
        runs[str(path)] = (name, verdict)
    first, second = runs
    assert reliability.run("replay", "--store", str(store), "--policies", first).returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", _STOP_AT_PUBLISH, str(store), second], stderr=subprocess.PIPE,
                            text=True)
    _, errors = proc.communicate(timeout=reliability.RUN_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, errors
    assert reliability.check_replay(store, runs) == []
    assert reliability.shown_policies(store) == first
    assert reliability.run("replay", "--store", str(store), "--policies", second).returncode == 0
    assert reliability.check_replay(store, runs) == []
    assert reliability.leftovers(store) == [] and not list(store.glob(".replay-*"))


# A replay that SIGKILLs itself at the moment it would publish: everything judged and written, nothing swapped in.
_STOP_AT_PUBLISH = """
import os, signal, sys
from flowstage.store import Store
Store.publish = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["flowstage", "--quiet", "replay", "--store", sys.argv[1], "--policies", sys.argv[2]]
from flowstage.cli import main
main()
"""


@pytest.mark.parametrize("suffix", [".log", ".log.gz", ".log.zst"])
def test_a_file_killed_after_its_first_batch_is_finished_by_the_next_ingest(tmp_path: Path, suffix: str):
    logs = {path: lines for path, lines in reliability.write_logs(tmp_path / "logs", files=3, lines=2000).items()
            if path.endswith(suffix)}
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", _STOP_AT_SECOND_COMMIT, str(store), *logs],
                            stderr=subprocess.PIPE, text=True)
    _, errors = proc.communicate(timeout=reliability.RUN_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, errors
    assert reliability.check_flows(store, logs) == []
    again = reliability.run("ingest", *logs, "--store", str(store), "--batch-rows", "500")
    assert again.returncode == 0, again.stderr
    assert reliability.check_flows(store, logs, complete=True) == []


# An ingest that SIGKILLs itself as it commits its second batch: the first batch is in, the rest is not.
_STOP_AT_SECOND_COMMIT = """
import os, signal, sys
from flowstage.store import StoreWriter
commit = StoreWriter.commit
commits = []
def commit_once(self, *args, **kwargs):
    commits.append(1)
    if len(commits) == 3:  # the store's creation, the first batch, then the kill
        os.kill(os.getpid(), signal.SIGKILL)
    commit(self, *args, **kwargs)
StoreWriter.commit = commit_once
sys.argv = ["flowstage", "--quiet", "ingest", *sys.argv[2:], "--store", sys.argv[1], "--batch-rows", "500"]
from flowstage.cli import main
main()
"""


_SLOW_COPY = """
import os, signal, sys, threading, time
import duckdb
from flowstage.interrupt import interruptible
con = duckdb.connect()
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
started = time.monotonic()
try:
    interruptible(con, lambda: con.execute(f"COPY (SELECT sum(hash(i)) AS h FROM range(20000000000) t(i)) TO '{sys.argv[1]}' (FORMAT parquet)"))
except KeyboardInterrupt:
    print(f"stopped after {time.monotonic() - started:.1f} s; threads: {threading.active_count()}")
con.close()
"""


def test_ctrl_c_stops_a_long_duckdb_statement_at_once(tmp_path: Path):
    # DuckDB does not notice Ctrl-C while a statement runs: replay's key extraction, the report's queries and
    # `flowstage sql` run theirs through flowstage.interrupt, which interrupts the query itself, so they stop
    # within a moment instead of when the statement ends (minutes on a large store), and the process exits
    # normally (no thread left inside DuckDB to abort it).
    done = subprocess.run([sys.executable, "-c", _SLOW_COPY, str(tmp_path / "keys.parquet")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seconds, threads = done.stdout.split("after ")[1].split(" s; threads: ")
    assert float(seconds) < 10 and int(threads) == 1, done.stdout
