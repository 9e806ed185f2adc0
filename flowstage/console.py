"""Terminal output for the CLI: one rich console for results, one for messages, and progress bars.

`--quiet` turns progress off; progress never goes to stdout, so piped output stays clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

out = Console(highlight=False, soft_wrap=False)
# Messages are not wrapped: an error naming a long path stays one line a user (or grep) can read whole.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def adopt_terminal_width() -> None:
    """Take the width of the output from $COLUMNS as it is now, or from the terminal when it is not set.

    Consoles are built once per process; a command run again in the same process (a test runner, a notebook) may
    run with another $COLUMNS.
    """
    columns = os.environ.get("COLUMNS", "")
    for console in (out, err):
        console.width = int(columns) if columns.isdigit() else None  # type: ignore[assignment]


class _Settings:
    quiet: bool = False


settings = _Settings()


@contextlib.contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Progress | None]:
    """A progress bar on stderr for work that can take more than a couple of seconds; None when quiet."""
    if settings.quiet or not err.is_terminal:
        yield None
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with bar:
        bar.add_task(description, total=total)
        yield bar


def escape(text: str) -> str:
    """Make text from logs or users safe for the terminal: no rich markup, no control sequences."""
    from rich.markup import escape as markup_escape

    return markup_escape(printable(text))


def printable(text: str) -> str:
    """Text with every control or format character (ESC, BEL, NUL, C1 controls, bidi overrides) written as a
    `\\uXXXX` escape, shown and never obeyed; line breaks and tabs stay. Inside a JSON string the escape is JSON."""
    if text.isprintable():
        return text
    return "".join(ch if ch in "\n\t" or ch.isprintable() else _escaped(ord(ch)) for ch in text)


def _escaped(code: int) -> str:
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def write_stdout(text: str) -> None:
    """Write a rendered result to standard output; on a terminal, control characters from logs are shown as
    escapes instead of reaching it (a file or pipe gets the text unchanged)."""
    sys.stdout.write(printable(text) if sys.stdout.isatty() else text)
    sys.stdout.flush()
