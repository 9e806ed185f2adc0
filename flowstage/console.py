"""Terminal output for the CLI: one rich console for results, one for messages, and progress bars.

`--quiet` turns progress off; progress never goes to stdout, so piped output stays clean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


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

    cleaned = "".join(ch if ch in "\n\t" or (ch.isprintable()) else f"\\x{ord(ch):02x}" for ch in text)
    return markup_escape(cleaned)
