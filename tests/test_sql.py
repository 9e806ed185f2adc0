"""`flowstage sql`: read-only queries over the store's views, in every output format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cli_runner import run_cli

from flowstage.ingest import ingest
from flowstage.store import Store

RECORD = {"start_time": 1700000000, "end_time": 1700000300, "source_name_aggr": "a-*", "dest_name_aggr": "b-*",
          "proto": "tcp", "action": "allow", "reporter": "src", "source_labels": {"labels": ["app=a|b"]}}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sql")
    log = tmp / "flows.log"
    log.write_text(json.dumps(RECORD) + "\n" + json.dumps({**RECORD, "reporter": "dst"}) + "\n")
    ingest([str(log)], Store.open(tmp / "store", create=True))
    return tmp / "store"


QUERY = "SELECT reporter, source_labels, start_time FROM flows ORDER BY reporter"


@pytest.fixture
def sql(capsys, monkeypatch):
    return lambda store_dir, *args, stdin=None: run_cli(capsys, monkeypatch, "sql", "--store", str(store_dir), *args,
                                                        stdin=stdin)


def test_json_is_one_array_of_row_objects(sql, store_dir: Path):
    result = sql(store_dir, QUERY, "--format", "json")
    assert json.loads(result.stdout) == [
        {"reporter": "dst", "source_labels": {"app": "a|b"}, "start_time": "2023-11-14T22:13:20+00:00"},
        {"reporter": "src", "source_labels": {"app": "a|b"}, "start_time": "2023-11-14T22:13:20+00:00"},
    ]


def test_jsonl_csv_and_markdown(sql, store_dir: Path):
    lines = sql(store_dir, QUERY, "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["reporter"] for line in lines] == ["dst", "src"]
    rows = list(csv.reader(io.StringIO(sql(store_dir, QUERY, "--format", "csv").stdout)))
    assert rows[0] == ["reporter", "source_labels", "start_time"]
    assert rows[1][:2] == ["dst", '{"app":"a|b"}']
    markdown = sql(store_dir, QUERY, "--format", "markdown").stdout.splitlines()
    assert markdown[0] == "| reporter | source_labels | start_time |"
    assert markdown[2].startswith('| dst | {"app":"a\\|b"} |')


def test_parquet_to_a_file(sql, store_dir: Path, tmp_path: Path):
    out = tmp_path / "out.parquet"
    result = sql(store_dir, QUERY, "--format", "parquet", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out).column("reporter").to_pylist() == ["dst", "src"]


def test_query_from_stdin_and_table_output(sql, store_dir: Path):
    result = sql(store_dir, "-", stdin="SELECT count(*) AS n FROM flows")
    assert result.returncode == 0 and "│ 2 " in result.stdout


@pytest.mark.parametrize("statement", ["COPY flows TO '/tmp/flowstage-copy.csv'", "CREATE TABLE t AS SELECT 1",
                                       "ATTACH 'x.db'", "SET threads = 1", "SELECT 1; SELECT 2"])
def test_anything_but_a_query_is_refused(sql, store_dir: Path, statement: str):
    result = sql(store_dir, statement)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert not Path("/tmp/flowstage-copy.csv").exists()


def test_a_query_error_is_a_message(sql, store_dir: Path):
    result = sql(store_dir, "SELECT nope FROM flows")
    assert result.returncode == 2 and "nope" in result.stderr and "Traceback" not in result.stderr


def test_files_outside_the_store_cannot_be_read(sql, store_dir: Path):
    result = sql(store_dir, "SELECT * FROM read_csv('/etc/hostname')")
    assert result.returncode == 2 and "Traceback" not in result.stderr
