"""DuckDB's memory on a store's connections: bounded by default, so a report over millions of rows spills to a
temporary folder instead of growing with the store; $FLOWSTAGE_MEMORY_LIMIT sets the bound."""

from __future__ import annotations

import pytest

from flowstage.errors import StoreError
from flowstage.store import Store


def limit_of(store: Store) -> str:
    con = store.connect()
    try:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        con.close()


def test_a_store_connection_has_a_bounded_memory_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("FLOWSTAGE_MEMORY_LIMIT", raising=False)
    assert limit_of(Store.open(tmp_path / "store", create=True)) == "1.0 GiB"


def test_the_environment_sets_the_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLOWSTAGE_MEMORY_LIMIT", "3GiB")
    assert limit_of(Store.open(tmp_path / "store", create=True)) == "3.0 GiB"


def test_a_limit_duckdb_cannot_read_is_an_error_naming_the_variable(tmp_path, monkeypatch) -> None:
    store = Store.open(tmp_path / "store", create=True)
    monkeypatch.setenv("FLOWSTAGE_MEMORY_LIMIT", "plenty")
    with pytest.raises(StoreError, match=r"FLOWSTAGE_MEMORY_LIMIT='plenty'.*e\.g\. 4GiB"):
        store.connect()
