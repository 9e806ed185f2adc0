"""Memory is bounded by the batch size, not by the size of the file being ingested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flowstage


def _write_log(path: Path, records: int) -> None:
    with path.open("w") as out:
        for i in range(records):
            out.write(json.dumps({
                "start_time": 1700000000 + i // 1000 * 300, "end_time": 1700000300 + i // 1000 * 300,
                "source_name_aggr": f"client-{i % 50}-*", "dest_name_aggr": f"server-{i % 7}-*", "proto": "tcp",
                "action": "allow", "reporter": "src", "bytes_in": i,
                "source_labels": {"labels": [f"app=client-{i % 50}", "pad=" + "x" * 600]},
                "policies": {"enforced_policies": [f"0|default|ns/default.allow-{i % 13}|allow|0"]},
            }) + "\n")


def _peak_rss_mib(log: Path, store: Path) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "flowstage", "--quiet", "ingest", str(log), "--store", str(store),
                             "--batch-rows", "2000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read() if proc.stderr else ""
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_a_file_four_times_larger_does_not_need_more_memory(tmp_path: Path):
    small, large = tmp_path / "small.log", tmp_path / "large.log"
    _write_log(small, 10_000)
    _write_log(large, 40_000)
    small_peak = _peak_rss_mib(small, tmp_path / "s1")
    large_peak = _peak_rss_mib(large, tmp_path / "s2")
    assert flowstage.connect(tmp_path / "s2").execute("SELECT count(*) FROM flows").fetchone()[0] == 40_000
    assert large_peak < small_peak * 1.2 + 40, (small_peak, large_peak)
