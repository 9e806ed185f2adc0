"""`flowstage report`: every report or one by name, as terminal tables, Markdown, JSON or CSV.

The store: the lesson's frontend → backend, which the staged lockdown would break, and a pod whose name carries
Markdown and terminal markup.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from report_stores import LESSON, build_store, felix, pod, profile
from typer.testing import CliRunner

from flowstage.cli import app
from flowstage.errors import UsageError
from flowstage.report import ReplayMissingError
from flowstage.store import Store

FRONTEND = pod("prod", "frontend", env="prod")
BACKEND = pod("prod", "backend", "5c8bd9d4f", env="prod")
TRICKY = {**pod("prod", "frontend", env="prod"), "name_aggr": "a|b*[c](x)`y`_z-*"}

RECORDS = [
    felix(FRONTEND, BACKEND, reporter="src", port=8080, flows=10, enforced=[profile("prod")]),
    felix(FRONTEND, BACKEND, reporter="dst", port=8080, flows=10, enforced=[profile("prod")]),
    felix(TRICKY, BACKEND, reporter="dst", port=9090, flows=1, enforced=[profile("prod")]),
]

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_store(tmp_path_factory.mktemp("cli"), RECORDS, LESSON))


def test_the_terminal_report_starts_with_the_verdict_then_ranks_what_breaks(store):
    result = runner.invoke(app, ["report", "--store", store], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("Promoting 1 staged policy would break 11 flows") < out.index("Which services would lose")
    top = out[out.index("Which services would lose"):out.index("Which clients would lose")]
    assert top.index("prod/backend") < top.index("8080/tcp") < top.index("prod/frontend")


def test_one_report_by_name(store):
    result = runner.invoke(app, ["report", "would_break", "--store", store, "--format", "json"])
    payload = json.loads(result.output)
    assert list(payload["reports"]) == ["would_break"]
    assert payload["summary"]["would_break_flows"] == 11  # the verdict still counts everything


def test_json_has_a_stable_documented_shape(store):
    payload = json.loads(runner.invoke(app, ["report", "--store", store, "--format", "json"]).output)
    assert set(payload) == {"flowstage_report", "summary", "replay", "top", "reports"}
    assert payload["flowstage_report"] == 1
    would_break = payload["reports"]["would_break"]
    assert set(would_break) == {"question", "description", "columns", "rows", "total_rows", "truncated"}
    assert [c["name"] for c in would_break["columns"]][:4] == ["rank", "dest_namespace", "dest_workload", "dest_labels"]
    assert all(c["description"] for c in would_break["columns"])
    first = would_break["rows"][0]
    assert (first["dest_workload"], first["dest_port"], first["flows"], first["top_source"]) == (
        "backend", 8080, 10, "prod/frontend",
    )
    assert first["dest_labels"] == {"app": "backend", "env": "prod", "pod-template-hash": "5c8bd9d4f"}
    assert first["first_seen"] == "2026-03-02T10:00:00+00:00"


def test_top_keeps_the_first_rows_and_says_how_many_there_are(store):
    payload = json.loads(runner.invoke(app, ["report", "would_break", "--store", store, "--format", "json",
                                             "--top", "1"]).output)
    section = payload["reports"]["would_break"]
    assert (len(section["rows"]), section["total_rows"], section["truncated"]) == (1, 2, True)


def test_markdown_escapes_values_from_the_logs(store):
    result = runner.invoke(app, ["report", "would_break", "would_break_by_source", "--store", store,
                                 "--format", "markdown"])
    text = result.output
    assert text.startswith("# flowstage report\n")
    assert "## Which services would lose traffic" in text
    assert "a|b*[c]" not in text
    assert r"a\|b\*\[c\](x)\`y\`\_z" in text
    for section in text.split("\n## ")[1:]:
        rows = [line for line in section.splitlines() if line.startswith("| ")]
        assert len({line.count(" | ") for line in rows}) == 1  # no value broke out of its cell


def test_csv_writes_one_file_per_report_into_a_folder(store, tmp_path):
    out = tmp_path / "csv"
    result = runner.invoke(app, ["report", "--store", store, "--format", "csv", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "would_break.csv").is_file() and (out / "fidelity.csv").is_file()
    rows = list(csv.DictReader(io.StringIO((out / "would_break.csv").read_text())))
    assert (rows[0]["dest_workload"], rows[0]["flows"], rows[0]["denied_by_staged"]) == ("backend", "10", "true")


def test_an_unknown_report_name_lists_the_known_ones(store):
    result = runner.invoke(app, ["report", "wont_break", "--store", store])
    assert isinstance(result.exception, UsageError)
    assert "no report named 'wont_break'; known reports: fidelity, lockout_risk" in str(result.exception)


def test_list_names_every_report_and_its_question():
    result = runner.invoke(app, ["report", "--list"])
    names = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert names[:3] == ["would_break", "would_break_by_source", "lockout_risk"]
    assert len(names) == len(list(Path(__file__).parents[1].joinpath("queries").glob("*.sql")))


def test_a_replay_without_the_findings_view_asks_for_a_new_replay(tmp_path):
    # A replay published before the reports read `findings` has every other view.
    store = Store.open(build_store(tmp_path, RECORDS, LESSON))
    staged = tmp_path / "staged"
    staged.mkdir()
    files = []
    for path in store.files("replay"):
        files.append(staged / path.name)
        shutil.copyfile(path, files[-1])
    views = {name: text for name, text in store.manifest()["datasets"]["replay"]["views"].items() if name != "findings"}
    store.publish("replay", files, views)
    result = runner.invoke(app, ["report", "--store", str(store.root)])
    assert isinstance(result.exception, ReplayMissingError)
    assert "lacks the `findings` view the reports read: run `flowstage replay" in str(result.exception)
