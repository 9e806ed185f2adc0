"""flowstage: replay Calico flow logs against staged policies and see what promotion would break.

The public Python API lives here; the `flowstage` command is a thin skin over it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

__version__ = "0.1.0"


def connect(store: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with the views of the store folder `store` (`flows`, `quarantine`, …).

    In a notebook: `con = flowstage.connect("flows-store"); con.sql("SELECT count(*) FROM flows")`.
    """
    from flowstage.store import connect as store_connect

    return store_connect(store)
