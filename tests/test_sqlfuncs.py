"""`selector_match(selector, labels)` in DuckDB: the registered function (`install`) and the inlining rewrite
(`rewrite`), both against a real in-memory DuckDB with a MAP(VARCHAR, VARCHAR) labels column.
"""

from __future__ import annotations

import duckdb
import pytest

from flowstage import sqlfuncs
from flowstage.selector import SelectorError, parse_selector

LABEL_SETS = [
    {"app": "db", "env": "prod"},
    {"app": "db", "env": "dev"},
    {"app": "web"},
    {},
    None,  # a NULL map: no labels at all
    {"app": "it's", "note": 'say "hi"'},
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    sqlfuncs.install(connection)
    connection.execute("CREATE TABLE flows (id INTEGER, dest_labels MAP(VARCHAR, VARCHAR))")
    connection.executemany("INSERT INTO flows VALUES (?, ?)", list(enumerate(LABEL_SETS)))
    return connection


def answers(con: duckdb.DuckDBPyConnection, sql: str) -> list[bool]:
    return [row[0] for row in con.execute(sql).fetchall()]


def test_registered_function_matches_like_the_python_selector(con: duckdb.DuckDBPyConnection) -> None:
    selector = 'app == "db" && env != "dev"'
    got = answers(con, f"SELECT selector_match('{selector}', dest_labels) FROM flows ORDER BY id")
    want = [parse_selector(selector).matches(labels or {}) for labels in LABEL_SETS]
    assert got == want == [True, False, False, False, False, False]


def test_null_map_counts_as_no_labels(con: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT selector_match('!has(app)', dest_labels), selector_match('env != \"x\"', dest_labels) FROM flows WHERE id = 4"
    assert con.execute(sql).fetchall() == [(True, True)]
    assert con.execute(sqlfuncs.rewrite(sql)).fetchall() == [(True, True)]


def test_selector_can_come_from_a_column(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE rules AS SELECT * FROM (VALUES ('has(env)'), ('app in {\"web\"}'), (NULL)) t(sel)"
    )
    sql = "SELECT sel, count(*) FILTER (WHERE selector_match(sel, dest_labels)) FROM rules, flows GROUP BY sel ORDER BY sel"
    assert con.execute(sql).fetchall() == [('app in {"web"}', 1), ("has(env)", 2), (None, 0)]


def test_invalid_selector_fails_the_query_with_the_caret_message(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(SelectorError) as expected:
        parse_selector("app = 'db'")
    with pytest.raises(duckdb.Error) as failed:
        con.execute("SELECT selector_match('app = ''db''', dest_labels) FROM flows").fetchall()
    assert str(expected.value) in str(failed.value)


def test_install_twice_is_harmless(con: duckdb.DuckDBPyConnection) -> None:
    sqlfuncs.install(con)
    assert answers(con, "SELECT selector_match('all()', dest_labels) FROM flows WHERE id = 0") == [True]


def test_rewrite_inlines_literal_selectors_as_plain_sql(con: duckdb.DuckDBPyConnection) -> None:
    sql = 'SELECT id, selector_match(\'app == "db" && env != "dev"\', dest_labels) FROM flows ORDER BY id'
    inlined = sqlfuncs.rewrite(sql)
    assert "map_extract_value(dest_labels, 'app')" in inlined
    assert con.execute(inlined).fetchall() == con.execute(sql).fetchall()
    # The result column keeps the name DuckDB gives the call itself.
    assert con.execute(inlined).description[1][0] == con.execute(sql).description[1][0]


def test_rewritten_query_runs_without_the_python_function() -> None:
    bare = duckdb.connect()  # nothing installed: only the inlined SQL can run here
    bare.execute("CREATE TABLE flows AS SELECT MAP {'app': 'db'} AS dest_labels UNION ALL SELECT NULL")
    sql = "SELECT count(*) FROM flows WHERE selector_match('app == \"db\" || !has(app)', dest_labels)"
    assert bare.execute(sqlfuncs.rewrite(sql)).fetchall() == [(2,)]


def test_rewrite_handles_quotes_in_selector_values(con: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT id FROM flows WHERE selector_match('app == \"it''s\" && note contains ''\"hi\"''', dest_labels)"
    inlined = sqlfuncs.rewrite(sql)
    assert con.execute(inlined).fetchall() == con.execute(sql).fetchall() == [(5,)]


def test_rewrite_inlines_every_call_in_every_clause(con: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "SELECT count(*) FILTER (WHERE selector_match('has(env)', dest_labels)) AS with_env FROM flows "
        "WHERE selector_match('app != \"web\"', dest_labels); "
        "SELECT 1 WHERE selector_match('', NULL)"
    )
    inlined = sqlfuncs.rewrite(sql)
    assert inlined.lower().count("selector_match(") == 0
    first, second = inlined.split(";\n")
    assert con.execute(first).fetchall() == [(2,)]
    assert con.execute(second).fetchall() == [(1,)]


def test_rewrite_reports_an_invalid_literal_selector_before_running() -> None:
    with pytest.raises(SelectorError, match="expected =="):
        sqlfuncs.rewrite("SELECT selector_match('app = \"db\"', dest_labels) FROM flows")


def test_rewrite_leaves_other_sql_alone() -> None:
    plain = "select  *   from flows -- no selectors here"
    assert sqlfuncs.rewrite(plain) == plain
    from_column = "SELECT selector_match(sel, dest_labels) FROM rules, flows"
    assert sqlfuncs.rewrite(from_column) == from_column
