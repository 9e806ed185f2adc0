"""Shared test fixtures: where the public conformance data lives, and the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

# flowstage's consoles read $COLUMNS when they are built, at first import. Build them now, from the test process's
# own environment: first imported inside a CliRunner call that sets COLUMNS, they would keep that call's width
# for every later test of the process (which test runs first differs between runs with -n).
import flowstage.console  # noqa: E402, F401

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` next to the repository (conformance data); tests using it skip when it is absent."""
    if not (SHARED / "conformance").is_dir():
        pytest.skip(f"conformance data not found at {SHARED}/conformance (clone it next to the repository to run this test)")
    return SHARED
