"""The `flowstage` command: a thin Typer skin over the library.

Each module in this package adds its commands through `register(app)`; errors from the library become a
one-line message and an exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys
import threading
from types import FrameType

import typer

from flowstage import console
from flowstage.errors import FlowstageError

app = typer.Typer(
    name="flowstage",
    help=(
        "See what promoting a staged Calico policy would break, from your own flow logs.\n\n"
        "Typical loop: flowstage ingest LOGS --store S; flowstage replay --store S --policies DIR; "
        "flowstage report --store S."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter on stderr."),
) -> None:
    console.settings.quiet = quiet
    console.adopt_terminal_width()


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app)


_register_commands()


_interrupted = threading.Event()


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    _interrupted.set()
    signal.default_int_handler(signum, frame)


def main() -> None:
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        app()
    except FlowstageError as exc:
        console.err.print(f"[bold red]error:[/] {console.escape(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.err.print("interrupted")
        sys.exit(130)
    except Exception:
        # Ctrl-C inside DuckDB surfaces as whatever error the running query raises ("Query interrupted", a
        # failed Arrow scan, …): an interruption all the same.
        if not _interrupted.is_set():
            raise
        console.err.print("interrupted")
        sys.exit(130)
