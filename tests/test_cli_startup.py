"""The CLI starts without loading the heavy libraries: every command imports its library code when it runs,
so `flowstage --help` and a small `flowstage ingest` do not pay for SQL translation, reports or policies."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("duckdb", "pyarrow", "numpy", "pandas", "sqlglot", "yaml", "ruamel.yaml", "flowstage.report",
         "flowstage.policy.loader", "flowstage.replay", "flowstage.store", "flowstage.synth.batches")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_registering_every_command_loads_no_heavy_library():
    loaded = loaded_after("import flowstage.cli")
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_the_ingest_command_loads_what_ingest_needs_and_nothing_of_reports_or_policies(tmp_path):
    log = tmp_path / "flows.log"
    log.write_text('{"start_time": 1700000000, "end_time": 1700000300, "proto": "tcp", "action": "allow"}\n')
    loaded = loaded_after(
        "import sys\nfrom flowstage.cli import app\n"
        f"sys.argv = ['flowstage', '--quiet', 'ingest', {str(log)!r}, '--store', {str(tmp_path / 'store')!r}]\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert {"duckdb", "pyarrow", "flowstage.store"} <= loaded
    assert sorted(m for m in ("sqlglot", "pandas", "yaml", "ruamel.yaml", "flowstage.report", "flowstage.policy.loader")
                  if m in loaded) == []


def test_a_replay_never_loads_pandas(tmp_path, repo_dir):
    # pyarrow imports pandas on its first conversion of a Python value: a third of a second on the replay's
    # critical path (in the replay process; a worker would pay it again). In process, then with two workers.
    sample = repo_dir / "sample_logs"
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-m", "flowstage", "--quiet", "ingest", str(sample / "logs" / "felix"),
                    "--store", str(store)], check=True, capture_output=True)
    for workers in ("1", "2"):
        loaded = loaded_after(
            "import sys\nfrom flowstage.cli import app\n"
            f"sys.argv = ['flowstage', '--quiet', 'replay', '--store', {str(store)!r}, '--policies', "
            f"{str(sample / 'policies')!r}, '--namespaces', {str(sample / 'inventory' / 'namespaces.yaml')!r}, "
            f"'--workers', {workers!r}]\n"
            "try:\n    app()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code"
        )
        assert {"flowstage.replay", "duckdb", "pyarrow"} <= loaded
        assert sorted(m for m in ("pandas", "sqlglot") if m in loaded) == []
