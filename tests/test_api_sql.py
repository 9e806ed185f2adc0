"""`flowstage sql` and `flowstage.sql()`: any file of queries/ runs by name (`would_break`, `would_break.sql`) with
its `$name` parameters bound from `--param NAME=VALUE`, never pasted into the SQL text; plain SQL binds them too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_cli
from replay_helpers import replayed_sample

import flowstage
from flowstage.errors import FlowstageError, UsageError


@pytest.fixture(scope="module")
def lesson(repo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return replayed_sample(repo_dir, tmp_path_factory.mktemp("sql") / "lesson-store")


@pytest.fixture
def sql(capsys, monkeypatch, lesson: Path):
    return lambda *args, store=lesson: run_cli(capsys, monkeypatch, "sql", "--store", str(store), *args)


def test_a_query_file_runs_by_name_with_its_top_bound(sql, lesson: Path) -> None:
    done = sql("would_break", "--param", "top=1", "--format", "json")
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    [reported] = json.loads(flowstage.run_report(lesson, "would_break", top=1).to_json())["reports"]["would_break"]["rows"]
    assert row == reported  # counts are numbers, as the report gives them
    assert (row["top_source"], row["flows"]) == ("prod/frontend", 116945)


def test_the_file_name_works_too_and_a_missing_parameter_is_null(sql, lesson: Path) -> None:
    done = sql("would_break.sql", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    every_row = flowstage.run_report(lesson, "would_break").df("would_break")
    assert len(done.stdout.splitlines()) == len(every_row) == 2


def test_the_api_runs_query_files_by_name(lesson: Path) -> None:
    frame = flowstage.sql(lesson, "would_break_matrix", {"top": 1}).df()
    assert frame[["source_namespace", "dest_namespace"]].values.tolist() == [["prod", "prod"]]


def test_a_parameter_value_is_bound_never_pasted(sql) -> None:
    hostile = "x' OR '1'='1"
    done = sql("SELECT $name AS name, count(*) AS n FROM flows WHERE source_namespace = $name",
               "--param", f"name={hostile}", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"name": hostile, "n": 0}]


def test_a_value_that_breaks_the_query_is_an_error_not_more_rows(sql) -> None:
    done = sql("would_break", "--param", "top=1 OR true", "--format", "json")
    assert done.returncode == 2 and "query failed" in done.stderr and "Traceback" not in done.stderr


def test_numbers_and_booleans_are_bound_as_such(sql) -> None:
    done = sql("SELECT typeof($a) AS a, typeof($b) AS b, typeof($c) AS c, typeof($d) AS d, $e IS NULL AS e",
               "-P", "a=10", "-P", "b=1.5", "-P", "c=prod", "-P", "d=true", "-P", "e=null", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"a": "INTEGER", "b": "DOUBLE", "c": "VARCHAR", "d": "BOOLEAN", "e": True}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["would_break", "--param", "limit=3"], "would_break.sql has no parameter limit; it takes: top"),
        (["would_brake"], "no report named 'would_brake'; known reports: fidelity, lockout_risk"),
        (["would_break", "--param", "top"], "write a parameter as NAME=VALUE"),
        (["DELETE FROM flows"], "read-only"),
    ],
)
def test_mistakes_are_named_with_exit_2(sql, args: list[str], message: str) -> None:
    done = sql(*args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split()) and "Traceback" not in done.stderr


def test_a_query_file_on_a_store_without_replay_says_to_replay_first(sql, repo_dir: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    flowstage.ingest_logs(repo_dir / "sample_logs" / "logs" / "whisker", fresh)
    done = sql("lockout_risk", store=fresh)
    assert done.returncode == 2
    assert "lockout_risk.sql reads the replay, and this store has none yet" in " ".join(done.stderr.split())
    with pytest.raises(FlowstageError, match="flowstage replay --store"):
        flowstage.sql(fresh, "lockout_risk")


def test_parameters_a_plain_query_does_not_use_are_an_error(lesson: Path) -> None:
    with pytest.raises(UsageError, match="query failed"):
        flowstage.sql(lesson, "SELECT 1", {"top": 3})


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_on_spark_a_query_file_by_name_answers_as_on_duckdb(sql) -> None:
    from flowstage.engines.spark_session import unavailable

    missing = unavailable()
    if missing is not None:
        pytest.skip(f"needs pyspark and Java: {missing}")
    args = ("would_break", "--param", "top=1", "--format", "json")
    on_spark = sql(*args, "--engine", "spark", "--spark-master", "local[2]")
    assert on_spark.returncode == 0, on_spark.stderr
    assert json.loads(on_spark.stdout) == json.loads(sql(*args).stdout)
    refused = sql("SELECT $a AS a", "--param", "a=1", "--engine", "spark", "--spark-master", "local[2]")
    assert refused.returncode == 2 and "--param binds values only in a query of queries/" in refused.stderr
