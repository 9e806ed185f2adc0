"""The shared output helper: every format from one Arrow table, and terminal tables that cannot be hijacked."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from flowstage.errors import UsageError
from flowstage.output import write_result


def test_relation_and_table_render_the_same_json(tmp_path):
    con = duckdb.connect()
    relation = con.sql("SELECT 1 AS n, MAP {'app': 'web'} AS labels, [1, 2] AS ports")
    write_result(relation, "json", tmp_path / "a.json")
    write_result(relation.to_arrow_table(), "json", tmp_path / "b.json")
    assert json.loads((tmp_path / "a.json").read_text()) == [{"n": 1, "labels": {"app": "web"}, "ports": [1, 2]}]
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_empty_json_is_an_empty_array(tmp_path):
    write_result(pa.table({"n": pa.array([], pa.int64())}), "json", tmp_path / "e.json")
    assert json.loads((tmp_path / "e.json").read_text()) == []


def test_terminal_table_escapes_markup_and_control_sequences(tmp_path):
    hostile = "[bold red]pwned[/] \x1b[31mred\x1b[0m"
    write_result(pa.table({"name": [hostile]}), "table", tmp_path / "t.txt")
    text = (tmp_path / "t.txt").read_text()
    assert "\x1b" not in text
    assert "[bold red]pwned" in text  # shown literally, not interpreted


def test_unknown_format_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        write_result(pa.table({"n": [1]}), "xml", tmp_path / "x")
