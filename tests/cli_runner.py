"""Running the `flowstage` command in-process, as a user would from a shell, for the CLI tests."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass

import pytest

from flowstage.cli import main


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str,
            stdin: str | None = None) -> Run:
    """`flowstage --quiet ARGS…` through the real entry point (exit codes, error printing and all)."""
    monkeypatch.setattr(sys, "argv", ["flowstage", "--quiet", *args])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Run(code, out, err)
