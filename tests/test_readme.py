"""README.md stays true: its generated sections (formats, SQL views and columns, limits of replay, the CLI
reference) equal what `python -m flowstage.docs` makes from the code, the CLI reference equals what each command's
`--help` prints, and the walkthrough's commands and the Python API example run on the committed sample."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cli_runner import run_cli

import flowstage
from flowstage import docs, schema
from flowstage.ingest.detect import FORMATS
from flowstage.policy.traffic import Reason
from flowstage.replay.views import all_views, published_file

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under a `## heading`, up to the next `## ` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def _reference(readme: str) -> dict[str, str]:
    """`flowstage …` → the help text the CLI reference shows for it."""
    blocks = re.findall(r"^### `(flowstage[^`]*)`\n\n```text\n(.*?)\n```$", _section(readme, "CLI reference"),
                        re.MULTILINE | re.DOTALL)
    return dict(blocks)


def test_the_generated_sections_are_up_to_date(readme: str) -> None:
    assert docs.render(readme) == readme, "README.md is out of date: run `python -m flowstage.docs`"


def test_the_cli_reference_has_every_command_once(readme: str) -> None:
    documented = list(_reference(readme))
    assert documented == [" ".join(["flowstage", *path]) for path in docs.command_paths()]
    assert {"flowstage ingest", "flowstage sql", "flowstage policies show", "flowstage synth store"} <= set(documented)


@pytest.mark.slow
def test_the_cli_reference_is_what_help_prints(readme: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "FORCE_COLOR", "PY_COLORS")}
    env.update(TERMINAL_WIDTH=str(docs.HELP_WIDTH), _TYPER_FORCE_DISABLE_TERMINAL="1")
    script = Path(sys.executable).with_name("flowstage")  # the installed command, as a user runs it
    if not script.is_file():
        pytest.skip(f"the flowstage command is not installed next to {sys.executable}")

    def help_of(command: str) -> str:
        return subprocess.run([str(script), *command.split()[1:], "--help"], env=env, capture_output=True,
                              text=True, check=True).stdout

    reference = _reference(readme)
    with ThreadPoolExecutor(max_workers=2) as pool:
        printed = dict(zip(reference, pool.map(help_of, reference), strict=True))
    for command, shown in reference.items():
        assert docs.normalise_help(printed[command]) == shown, f"`{command} --help` differs from README.md"


def test_the_views_section_documents_every_column_of_the_schema(readme: str) -> None:
    views = _section(readme, "SQL views and columns")
    flows = views[views.index("### `flows`"): views.index("### `quarantine`")]
    assert re.findall(r"^\| `(\w+)` \|", flows, re.MULTILINE) == list(schema.COLUMN_NAMES)
    for name, column in zip(schema.COLUMN_NAMES, schema.COLUMNS, strict=True):
        assert f"| `{name}` | `{schema.duckdb_type(column.type)}` | {column.doc} |" in flows
    assert all(f"`{field.name}`" in views for field in schema.QUARANTINE_SCHEMA)
    documented = re.findall(r"^### `(\w+)`$", views, re.MULTILINE)
    assert documented == ["flows", "quarantine", *all_views(published_file("replay"), [])]


def test_every_format_ingest_detects_is_described(readme: str) -> None:
    assert tuple(docs.FORMAT_DESCRIPTIONS) == FORMATS
    formats = _section(readme, "Supported formats")
    assert re.findall(r"^\| `(\w+)` \|", formats, re.MULTILINE) == list(FORMATS)


def test_every_reason_for_unknown_is_listed_with_its_remedy(readme: str) -> None:
    limits = _section(readme, "Known limits of replay")
    for reason in Reason:
        assert f"| `{reason.value}` | {reason.remedy} |" in limits
    assert "Not modelled:" in limits and "Forwarded rows" in limits


@pytest.fixture
def sample_cwd(repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder where `sample_logs/` resolves as at the repository root."""
    (tmp_path / "sample_logs").symlink_to(repo_dir / "sample_logs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_the_python_api_example_runs(readme: str, sample_cwd: Path, capsys) -> None:
    [example] = re.findall(r"```python\n(.*?)```", _section(readme, "Python API and notebook"), re.DOTALL)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "replayed 3,168 rows" in printed
    assert "Promoting 1 staged policy would break" in printed
    assert "proposed: deny by end of tier default" in printed


def _commands(section: str) -> list[list[str]]:
    """The `flowstage …` command lines of a section's sh blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["flowstage"]:
                commands.append(words[1:])
    return commands


@pytest.mark.slow
def test_the_walkthrough_runs_command_by_command(readme: str, sample_cwd: Path, capsys, monkeypatch) -> None:
    commands = _commands(_section(readme, "Walkthrough"))
    assert [c[0] for c in commands] == ["ingest", "replay", "report", "sql", "explain", "replay", "report", "report",
                                        "check", "promote"]
    for args in commands:
        if "ROW_ID" in args:
            [(row,)] = flowstage.sql("demo-store", "SELECT min(row_id) FROM replay WHERE would_break").fetchall()
            args = [row if a == "ROW_ID" else a for a in args]
        done = run_cli(capsys, monkeypatch, *args)
        assert done.returncode == 0, f"flowstage {shlex.join(args)}\n{done.stderr}"
    assert (sample_cwd / "report.html").is_file() and (sample_cwd / "promoted" / "lesson.yaml").is_file()
