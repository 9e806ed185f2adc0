"""The benchmark suite's report: which targets a figure meets, and the Markdown it writes (machine, figures,
baselines, ratios, failures). The benchmarks themselves run with `make bench-quick` / `make bench`, never here."""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="module")
def suite(repo_dir) -> ModuleType:
    """bench/__main__.py, imported from the repository root (bench/ is not an installed package)."""
    sys.path.insert(0, str(repo_dir))
    try:
        return importlib.import_module("bench.__main__")
    finally:
        sys.path.remove(str(repo_dir))


def figure(suite: ModuleType, *args: Any, **kwargs: Any) -> Any:
    return suite.Result(*args, **kwargs)


def test_a_ratio_target_is_judged_on_the_ratio_to_the_baseline(suite) -> None:
    assert suite.meets(figure(suite, "ingest", 1.4, "s", "duckdb copy", 1.0, target="<= 1.5x")) is True
    assert suite.meets(figure(suite, "ingest", 1.6, "s", "duckdb copy", 1.0, target="<= 1.5x")) is False


def test_a_value_target_is_judged_on_the_figure_itself(suite) -> None:
    assert suite.meets(figure(suite, "peak memory", 1900.0, "MiB", target="< 2048 MiB")) is True
    assert suite.meets(figure(suite, "peak memory", 2100.0, "MiB", target="< 2048 MiB")) is False
    assert suite.meets(figure(suite, "engine", 60_000.0, "decisions/s", target=">= 50,000 decisions/s")) is True


def test_a_result_without_a_comparable_target_is_not_judged(suite) -> None:
    assert suite.meets(figure(suite, "throughput", 5.0, "rows/s")) is None
    assert suite.meets(figure(suite, "synth", 1.0, "s", target="well under 60 s for 300 MB")) is None
    assert suite.meets(figure(suite, "ratio without baseline", 1.0, "s", target="<= 2x")) is None


def test_the_results_file_names_the_machine_the_figures_and_what_failed(suite) -> None:
    outcomes = [
        suite.Outcome("replay", "Replay speed.", [
            figure(suite, "replay 1M rows", 6.0, "s", "key join", 2.0, target="<= 2.5x", note="extract 1.5 s"),
        ], seconds=30.0),
        suite.Outcome("spark", "Spark against DuckDB.", [], seconds=1.0, error="RuntimeError: no Java"),
    ]
    started = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    text = suite.markdown("quick", outcomes, {"CPU": "test CPU, 2 cores"}, started, 90)

    assert "| CPU | test CPU, 2 cores |" in text
    assert "2026-01-02 03:04 UTC" in text
    assert "| replay 1M rows | 6.000 s | key join | 2.000 s | 3.00x | <= 2.5x | extract 1.5 s |" in text
    assert "| replay 1M rows | 3.00x | <= 2.5x | **no** |" in text  # the targets summary
    assert "**Failed:** `RuntimeError: no Java`" in text


def test_the_suite_runs_the_pipeline_in_order_then_scale_then_spark(suite) -> None:
    names = suite.modules()
    assert names.index("ingest") < names.index("replay") < names.index("report") < names.index("scale")
    assert names.index("scale") < names.index("spark")
