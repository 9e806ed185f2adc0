"""Translating flowstage's DuckDB SQL into Spark SQL: what sqlglot does not bridge on its own, and what is refused.

No Spark here: these are text-to-text checks. tests/test_spark.py runs the translations on Spark.
"""

from __future__ import annotations

import pytest

from flowstage.engines import check_engine
from flowstage.engines.spark_session import unavailable
from flowstage.engines.translate import TranslationError, to_spark
from flowstage.errors import UsageError
from flowstage.replay.keys import key_columns, key_extraction_sql
from flowstage.replay.views import all_views, published_file
from flowstage.report import discover
from flowstage.store import Store


def scans(files: list[str]) -> str:
    return "scan_of_" + "_".join(f.rsplit("/", 1)[-1].removesuffix(".parquet") for f in files)


def test_read_parquet_becomes_the_table_the_store_registers_for_those_files() -> None:
    sql = "SELECT count(*) FROM read_parquet(['/s/flows/a.parquet', '/s/flows/b.parquet'], union_by_name = true) AS f"
    assert to_spark(sql, scans) == "SELECT COUNT(*) FROM scan_of_a_b AS f"


def test_a_filtered_file_list_is_evaluated_before_it_reaches_spark() -> None:
    sql = (
        "SELECT * FROM read_parquet(list_filter(['/s/replay/v1/verdicts.parquet', '/s/replay/v1/run.parquet'], "
        "lambda f: f LIKE '%/run.parquet'))"
    )
    assert to_spark(sql, scans) == "SELECT * FROM scan_of_run"


def test_read_parquet_options_spark_does_not_reproduce_are_refused() -> None:
    with pytest.raises(TranslationError, match="filename"):
        to_spark("SELECT * FROM read_parquet(['/a.parquet'], filename = true)", scans)


def test_duckdbs_hash_becomes_xxhash64_with_a_null_flag_per_argument() -> None:
    # Spark's hash skips NULL arguments: without the flags, (NULL, 'x') and ('x', NULL) would be one key.
    assert to_spark("SELECT hash(a, map_entries(b)) FROM t") == (
        "SELECT XXHASH64(a, a IS NULL, MAP_ENTRIES(b), MAP_ENTRIES(b) IS NULL) FROM t"
    )


def test_a_list_aggregate_ordered_by_its_own_values_is_sorted_after_collecting() -> None:
    assert to_spark("SELECT array_agg(reporter ORDER BY reporter) FROM t") == (
        "SELECT ARRAY_SORT(COLLECT_LIST(reporter)) FROM t"
    )


def test_a_list_aggregate_ordered_by_another_column_is_refused_with_the_fix() -> None:
    with pytest.raises(TranslationError, match="order by the aggregated value"):
        to_spark("SELECT array_agg(reporter ORDER BY start_time) FROM t")


def test_duckdb_specifics_sqlglot_bridges() -> None:
    spark = to_spark(
        "SELECT list_filter(trace, lambda h: h.kind <> 'pro')[array_length(trace)] AS last_hit, "
        "any_value(labels) AS labels, row_id IS NOT DISTINCT FROM $row AS same FROM t ORDER BY last_hit"
    )
    assert "FILTER(trace, h -> h.kind <> 'pro')[SIZE(trace) + -1]" in spark  # 0-based
    assert ":row" in spark  # a named parameter, bound by spark.sql(text, args=...)
    assert "NULLS LAST" in spark  # DuckDB sorts NULLs last, Spark first


def test_a_map_lookup_from_an_inlined_selector_becomes_element_at() -> None:
    assert to_spark("SELECT map_extract_value(dest_labels, 'app') = 'web' FROM flows") == (
        "SELECT ELEMENT_AT(dest_labels, 'app') = 'web' FROM flows"
    )


def test_duckdbs_catalog_function_becomes_the_view_the_spark_store_registers() -> None:
    assert to_spark("SELECT view_name FROM duckdb_views() WHERE NOT internal") == (
        "SELECT view_name FROM duckdb_views WHERE NOT internal"
    )


@pytest.mark.parametrize("name", list(discover()))
def test_every_report_query_translates(name: str) -> None:
    spark = to_spark(discover()[name].sql, scans)
    assert "read_parquet" not in spark.lower()


def test_every_view_of_a_replayed_store_and_the_key_extraction_translate(tmp_path) -> None:
    views = {
        **Store(tmp_path).view_sql({"datasets": {"flows": {"files": []}, "quarantine": {"files": []}}}),
        **all_views(lambda tag: f"['/s/replay/v1/{tag}.parquet']", key_columns(True)),
    }
    for name, sql in views.items():
        assert to_spark(sql, scans), name
    assert "XXHASH64(" in to_spark(key_extraction_sql(key_columns(False)))
    assert published_file("replay")("verdicts").startswith("list_filter(")


def test_sql_that_is_not_duckdb_sql_is_refused_with_the_parser_message() -> None:
    with pytest.raises(TranslationError, match="does not parse"):
        to_spark("SELECT (")


def test_the_engine_option_names_the_choices() -> None:
    assert check_engine(" Spark ") == "spark"
    with pytest.raises(UsageError, match="duckdb, spark"):
        check_engine("presto")


def test_without_java_spark_is_unavailable_with_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    reason = unavailable()
    assert reason is not None and "JAVA_HOME" in reason and "Java" in reason
