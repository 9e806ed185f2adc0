"""flowstage's SQL functions for DuckDB: `selector_match(selector, labels)` registered on a connection,
and a query rewrite that inlines calls with a literal selector as plain, vectorised SQL.

`install(con)` is the general path (a Python function over Arrow batches); `rewrite(sql)` is the fast path.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping

import duckdb
import pyarrow as pa

from flowstage.selector import Selector, parse_selector

FUNCTION_NAME = "selector_match"
LABELS_TYPE = "MAP(VARCHAR, VARCHAR)"


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Register `selector_match(selector VARCHAR, labels MAP(VARCHAR, VARCHAR)) -> BOOLEAN` on `con`.

    A NULL map matches like an empty label set; a NULL selector gives NULL. An invalid selector makes the
    query fail with the SelectorError text (reason, selector and caret). Installing twice is harmless.
    """
    with contextlib.suppress(duckdb.InvalidInputException):  # not installed yet
        con.remove_function(FUNCTION_NAME)
    con.create_function(
        FUNCTION_NAME,
        _selector_match_batch,
        [duckdb.sqltype("VARCHAR"), duckdb.sqltype(LABELS_TYPE)],
        duckdb.sqltype("BOOLEAN"),
        type="arrow",
        null_handling="special",
    )


def _selector_match_batch(selectors: pa.Array, label_maps: pa.Array) -> pa.Array:
    # Flow tables repeat the same (selector, labels) pairs over and over: answer each distinct pair once.
    answers: dict[tuple[str, tuple[tuple[str, str | None], ...]], bool] = {}
    parsed: dict[str, Selector] = {}
    results: list[bool | None] = []
    for text, pairs in zip(selectors.to_pylist(), label_maps.to_pylist(), strict=True):
        if text is None:
            results.append(None)
            continue
        key = (text, tuple(pairs) if pairs else ())
        answer = answers.get(key)
        if answer is None:
            selector = parsed.get(text)
            if selector is None:
                selector = parsed[text] = parse_selector(text)
            answer = answers[key] = selector.matches(_labels(key[1]))
        results.append(answer)
    return pa.array(results, type=pa.bool_())


def _labels(pairs: tuple[tuple[str, str | None], ...]) -> Mapping[str, str]:
    # A NULL value counts as an absent label, as in Selector.to_sql.
    return {k: v for k, v in pairs if v is not None}


def rewrite(sql: str) -> str:
    """`sql` with every `selector_match('<literal>', expr)` replaced by the selector's SQL expression.

    Raises SelectorError for an invalid literal selector. SQL without such calls, or that sqlglot cannot
    parse, is returned unchanged (DuckDB then runs the registered function, or reports its own error).
    """
    if FUNCTION_NAME not in sql.lower():
        return sql
    # Imported here: every store connection installs this module's function, few queries call it.
    import sqlglot
    from sqlglot import exp

    try:
        statements = sqlglot.parse(sql, dialect="duckdb")
    except sqlglot.errors.SqlglotError:
        return sql
    # The inlined SQL is spliced in as text: re-parsing deep selector SQL would strain sqlglot's recursion.
    nonce = uuid.uuid4().hex
    predicates: dict[str, str] = {}
    for statement in statements:
        if statement is None:
            continue
        for call in list(statement.find_all(exp.Anonymous)):
            if call.name.lower() != FUNCTION_NAME or len(call.expressions) != 2:
                continue
            selector_arg, labels_arg = call.expressions
            if not (isinstance(selector_arg, exp.Literal) and selector_arg.is_string):
                continue
            selector = parse_selector(selector_arg.this)
            placeholder = f"flowstage_selector_{len(predicates)}_{nonce}"
            predicates[placeholder] = "(" + selector.to_sql(labels_arg.sql(dialect="duckdb")) + ")"
            inlined: exp.Expression = exp.column(placeholder)
            if isinstance(call.parent, exp.Select) and call.arg_key == "expressions":
                # Keep the column name DuckDB would have given the call itself.
                name = f"{FUNCTION_NAME}({selector_arg.sql(dialect='duckdb')}, {labels_arg.sql(dialect='duckdb')})"
                inlined = exp.alias_(inlined, name, quoted=True)
            call.replace(inlined)
    if not predicates:
        return sql
    text = ";\n".join(s.sql(dialect="duckdb") for s in statements if s is not None)
    for placeholder, predicate in predicates.items():
        text = text.replace(placeholder, predicate)
    return text
