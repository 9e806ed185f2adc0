"""The README's generated sections: supported formats (the ingest detection table), the SQL views and their columns
(schema.py and the views a real replay publishes), replay's known limits (traffic.Reason, the engine's docstring)
and the CLI reference (the live `--help` of every command).

`python -m flowstage.docs` rewrites each section between its markers in README.md; `--check` only says whether
README.md is up to date (exit 1 when it is not).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from flowstage.errors import FlowstageError

README = Path(__file__).resolve().parents[1] / "README.md"
HELP_WIDTH = 120  # columns `--help` is rendered at: wide enough that the help texts' own line breaks stand
COMMAND = "python -m flowstage.docs"

# One line per format of flowstage.ingest.detect.FORMATS (a test keeps the two in step).
FORMAT_DESCRIPTIONS = {
    "felix": "Calico Enterprise / Calico Cloud `flows.log` as felix writes it on each node: one JSON record a line, "
             "live or rotated",
    "elastic": "The same records as Elasticsearch or Linseed store them (`host`, `@timestamp`, `cluster` added): "
               "`_source` lines, exported documents or a search response (`hits.hits`)",
    "linseed": "A Linseed list API response: `{\"total_hits\": …, \"items\": […]}` around Enterprise records",
    "s3": "Archives fluentd writes to S3: `time<TAB>tag<TAB>{record}` lines",
    "goldmane": "Calico Open Source 3.30+ Goldmane flows (`Flow` or `FlowResult` objects, e.g. the emitter's NDJSON)",
    "whisker": "Calico Open Source Whisker's `/flows` items: a REST download or the `data:` lines of its event "
               "stream",
}

# A replay publishes these views; they are documented from a replay of an empty store under this policy.
_DOC_POLICY = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-dns
spec:
  selector: all()
  types: [Egress]
  egress:
    - action: Allow
      protocol: UDP
      destination:
        ports: [53]
"""


# --- formats -----------------------------------------------------------------------------------------------


def formats_section() -> str:
    from flowstage.ingest.detect import FAMILY_OF, FORMATS

    lines = [
        "`flowstage ingest` detects the format of each file from its first bytes (`--format` forces one), and "
        "reads plain, gzip and zstd content alike (told apart by magic bytes, not by name). Records come one JSON "
        "object a line, as `data:` lines of an event stream, as S3 archive lines, or as JSON documents (a record, "
        "an array, a search response or a list envelope, pretty-printed or not).",
        "",
        "| `--format` | family | what it reads |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {FAMILY_OF[name]} | {FORMAT_DESCRIPTIONS[name]}. |" for name in FORMATS]
    return "\n".join(lines)


# --- SQL views ---------------------------------------------------------------------------------------------


def views_section() -> str:
    from flowstage import schema

    lines = [
        "`flowstage sql`, `flowstage.sql()` and `flowstage.connect()` see these views. `flows` and `quarantine` "
        "exist from the first ingest; the others appear with the first replay and show the latest one.",
        "",
        "### `flows`",
        "",
        "One row per flow-log record, in the canonical schema (`flowstage/schema.py`).",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{c.name}` | `{schema.duckdb_type(c.type)}` | {c.doc} |" for c in schema.COLUMNS]
    quarantine = ", ".join(f"`{f.name}` `{schema.duckdb_type(f.type)}`" for f in schema.QUARANTINE_SCHEMA)
    lines += [
        "",
        "### `quarantine`",
        "",
        "One row per record that could not be read, with its file and line, a short `reason` code, a `detail` "
        "sentence saying what is wrong and where, and the record as found (`raw`). Columns: " + quarantine + ".",
    ]
    for name, comment, columns in replay_views():
        lines += ["", f"### `{name}`", "", "```text", comment, "```", "",
                  f"<details><summary>{len(columns)} columns</summary>", "", _columns_table(columns), "",
                  "</details>"]
    return "\n".join(lines)


def replay_views() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(view, its leading SQL comment, [(column, DuckDB type)]) for each view a replay publishes, from a real
    replay of an empty store."""
    from flowstage.replay import load_inputs, replay
    from flowstage.replay.views import all_views, published_file
    from flowstage.store import Store

    with tempfile.TemporaryDirectory(prefix="flowstage-docs-") as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(_DOC_POLICY, encoding="utf-8")
        store = Store.open(Path(tmp) / "store", create=True)
        replay(store, load_inputs([policy]), workers=1)
        con = store.connect()
        try:
            key_columns = con.sql("SELECT key_columns FROM replay_info").fetchall()[0][0]
            views = []
            for name, text in all_views(published_file("replay"), key_columns).items():
                columns = [(row[0], row[1]) for row in con.sql(f'DESCRIBE "{name}"').fetchall()]
                views.append((name, _leading_comment(text), columns))
        finally:
            con.close()
    return views


def _leading_comment(sql: str) -> str:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[3:] if line.startswith("-- ") else line[2:])
    return "\n".join(lines)


def _columns_table(columns: list[tuple[str, str]]) -> str:
    from flowstage.replay.views import SET_NAMES, VERDICT_FIELDS
    from flowstage.schema import COLUMN_NAMES

    names = [name for name, _ in columns]
    types = dict(columns)
    rows: list[str] = []
    if names[: len(COLUMN_NAMES)] == list(COLUMN_NAMES):
        rows.append("| every column of `flows` | |")
        names = names[len(COLUMN_NAMES):]
    sets = [s for s in SET_NAMES if all(f"{s}_{f}" in types for f in VERDICT_FIELDS)]
    per_set = {f"{s}_{f}" for s in sets for f in VERDICT_FIELDS} if len(sets) > 1 else set()
    for name in names:
        if name not in per_set:
            rows.append(f"| `{name}` | `{types[name]}` |")
        elif name == f"{sets[0]}_{VERDICT_FIELDS[0]}":
            rows += [f"| `<set>_{f}` | `{types[f'{sets[0]}_{f}']}` |" for f in VERDICT_FIELDS]
    text = "| column | type |\n|---|---|\n" + "\n".join(rows)
    if per_set:
        text += "\n\n`<set>` is each of " + ", ".join(f"`{s}`" for s in sets) + "."
    return text


# --- known limits ------------------------------------------------------------------------------------------


def limits_section() -> str:
    from flowstage.policy import engine
    from flowstage.policy.traffic import Reason

    lines = [
        "A verdict is `unknown` only when the outcome depends on a fact the log does not carry; where every "
        "possible value leads to the same decision the verdict is definite. Each unknown verdict names its "
        "reason (`<set>_reason` in the `replay` view, the `unknown_verdicts` report counts them), and each reason "
        "has a remedy:",
        "",
        "| reason | what settles it |",
        "|---|---|",
    ]
    lines += [f"| `{reason.value}` | {reason.remedy} |" for reason in Reason]
    doc = engine.__doc__ or ""
    lines += ["", "What the engine models around forwarding, and what it does not model at all (from "
              "`flowstage/policy/engine/__init__.py`):", ""]
    lines += [f"- {_paragraph(doc, '- Forwarded rows').removeprefix('- ')}", f"- {_paragraph(doc, 'Not modelled:')}"]
    return "\n".join(lines)


def _paragraph(doc: str, start: str) -> str:
    """The paragraph or list item of `doc` that begins with `start`, on one line."""
    begin = doc.index(start)
    end = len(doc)
    for stop in ("\n\n", "\n- "):
        found = doc.find(stop, begin + len(start))
        if found != -1:
            end = min(end, found)
    return " ".join(doc[begin:end].split())


# --- CLI reference -----------------------------------------------------------------------------------------


def command_paths() -> list[list[str]]:
    """Every command as its words after `flowstage` (`[]` for flowstage itself), in the order `--help` lists them."""
    from typer.main import get_command

    from flowstage.cli import app

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(get_command(app), []))


@contextlib.contextmanager
def _help_rendering() -> Iterator[None]:
    """Help at HELP_WIDTH columns without colour, whatever the terminal or CI (typer reads these when it prints)."""
    import typer.rich_utils as rich_utils

    saved = rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL
    rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL = HELP_WIDTH, False
    try:
        yield
    finally:
        rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL = saved


def normalise_help(text: str) -> str:
    """Help text as the README holds it: no trailing spaces, no blank lines around it."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def help_text(path: list[str]) -> str:
    """What `flowstage PATH… --help` prints at HELP_WIDTH columns."""
    from typer.main import get_command

    from flowstage.cli import app

    printed = io.StringIO()
    with _help_rendering(), contextlib.redirect_stdout(printed):
        get_command(app).main(args=[*path, "--help"], prog_name="flowstage", standalone_mode=False)
    return normalise_help(printed.getvalue())


def cli_section() -> str:
    lines = [
        f"Every command's `--help`, as printed at {HELP_WIDTH} columns (`TERMINAL_WIDTH={HELP_WIDTH} flowstage "
        "COMMAND --help`). An error prints one line saying what to fix, never a traceback, and exits 2 unless the "
        "command's help says otherwise; Ctrl-C exits 130.",
    ]
    for path in command_paths():
        lines += ["", f"### `{' '.join(['flowstage', *path])}`", "", "```text", help_text(path), "```"]
    return "\n".join(lines)


# --- README ------------------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[], str]] = {
    "formats": formats_section,
    "views": views_section,
    "limits": limits_section,
    "cli": cli_section,
}


def _markers(name: str) -> tuple[str, str]:
    return (f"<!-- BEGIN GENERATED {name}: edit flowstage/docs.py, then run `{COMMAND}` -->",
            f"<!-- END GENERATED {name} -->")


def render(readme: str, sections: dict[str, Callable[[], str]] = SECTIONS) -> str:
    """`readme` with the text between each section's markers generated afresh; a missing marker is an error."""
    for name, generate in sections.items():
        begin, end = _markers(name)
        found = re.search(re.escape(begin) + r"\n.*?" + re.escape(end), readme, re.DOTALL)
        if found is None:
            raise FlowstageError(f"README.md lacks the markers of the generated section {name!r}; put them where "
                                 f"the section belongs:\n{begin}\n{end}")
        readme = readme[: found.start()] + f"{begin}\n{generate()}\n{end}" + readme[found.end():]
    return readme


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    current = README.read_text(encoding="utf-8")
    try:
        fresh = render(current)
    except FlowstageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "--check" in args:
        if fresh != current:
            print(f"README.md is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        README.write_text(fresh, encoding="utf-8")
        print("README.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
