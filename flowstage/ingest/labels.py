"""Decoding endpoint labels from the three encodings flow logs use into one key → value mapping.

Enterprise `{"labels": ["k=v", …]}`, Goldmane bare list `["k=v", …]`, Whisker one string joined by `" | "`.
"""

from __future__ import annotations

from typing import Any

WHISKER_SEPARATOR = " | "


class LabelsError(ValueError):
    """A labels value in none of the three encodings."""


def _pairs(items: list[Any]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            raise LabelsError(f"expected label strings `key=value`, found {item!r}")
        # Values may be empty or contain `=`: only the first `=` separates.
        key, _, value = item.partition("=")
        # A key logged twice keeps its first value: a map has one value per key.
        seen.setdefault(key, value)
    return list(seen.items())


def decode_labels(value: Any) -> list[tuple[str, str]] | None:
    """Labels in any encoding → (key, value) pairs; None means labels were not logged."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "labels" not in value:
            raise LabelsError("expected an object with a `labels` list")
        inner = value["labels"]
        if inner is None:
            return []  # Goldmane-origin documents in Elasticsearch write `{"labels": null}` for "none"
        if not isinstance(inner, list):
            raise LabelsError(f"expected `labels` to be a list, found {type(inner).__name__}")
        return _pairs(inner)
    if isinstance(value, list):
        return _pairs(value)
    if isinstance(value, str):
        return _pairs([p for p in value.split(WHISKER_SEPARATOR) if p]) if value.strip() else []
    raise LabelsError(f"expected labels as an object, list or string, found {type(value).__name__}")
