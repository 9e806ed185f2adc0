"""What an invalid selector reports: Calico's reason, the 0-based character position, and a caret under it.

Every stage (tokenizer, parser, builders) raises `SelectorError`; nothing else escapes for bad selector text.
"""

from __future__ import annotations

from flowstage.errors import FlowstageError

# Wider selectors are shown as a window around the error so the caret line stays readable.
_EXCERPT_WIDTH = 72


class SelectorError(FlowstageError, ValueError):
    """A selector that Calico would reject, with where and why.

    `reason` uses Calico's wording (`expected ==`, `unterminated string`, ...); `position` is the 0-based
    character index the reason refers to (len(selector) for "at the end"); `str(err)` adds the selector
    and a caret line under that position.
    """

    def __init__(self, reason: str, selector: str, position: int) -> None:
        self.reason = reason
        self.selector = selector
        self.position = max(0, min(position, len(selector)))
        super().__init__(reason)

    def __str__(self) -> str:
        line, caret_at = _excerpt(self.selector, self.position)
        return (
            f"invalid selector: {self.reason} (at character {self.position + 1})\n"
            f"  {line}\n"
            f"  {' ' * caret_at}^"
        )

    def __reduce__(self) -> tuple[type[SelectorError], tuple[str, str, int]]:
        return (SelectorError, (self.reason, self.selector, self.position))


def _excerpt(text: str, position: int) -> tuple[str, int]:
    """One display line of `text` around `position`, and the caret's column in it.

    Each character maps to exactly one display column (control characters become visible symbols), so
    the caret lines up in a terminal.
    """
    start = 0
    end = len(text)
    if end > _EXCERPT_WIDTH:
        start = max(0, min(position - _EXCERPT_WIDTH // 2, end - _EXCERPT_WIDTH))
        end = min(end, start + _EXCERPT_WIDTH)
    shown = "".join(_visible(ch) for ch in text[start:end])
    caret_at = position - start
    if start > 0:
        shown = "…" + shown
        caret_at += 1
    if end < len(text):
        shown += "…"
    return shown, caret_at


def _visible(ch: str) -> str:
    if ch == "\t":
        return " "
    if ch in "\r\n":
        return "↵"
    if not ch.isprintable():
        return "�"
    return ch
