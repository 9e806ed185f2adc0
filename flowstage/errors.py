"""Errors flowstage raises for its users: each says what went wrong, where, and what to do next.

The CLI prints them without a traceback and exits with their `exit_code`.
"""

from __future__ import annotations


class FlowstageError(Exception):
    """A problem the user can fix: bad input, a missing file, a store that is busy."""

    exit_code = 2


class UsageError(FlowstageError):
    """The command was called wrongly (bad option value, missing path)."""

    exit_code = 2


class StoreError(FlowstageError):
    """The store folder is missing, not a store, damaged, or locked by another writer."""

    exit_code = 2
