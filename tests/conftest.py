"""Shared test fixtures: where the public conformance data lives, and the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

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
