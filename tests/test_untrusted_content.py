"""Log content is untrusted: labels, names and namespaces chosen by whoever deploys a pod reach every output only
as text. Escaped in HTML and Markdown, shown (never obeyed) on a terminal, bound (never pasted) into SQL, never
part of a file path; YAML loads only plain data; `flowstage sql` cannot write.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flowstage.store import Store

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300

# Values a pod's owner controls, each aimed at a different reader.
HOSTILE = [
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "javascript:alert(1)", "\x1b[31mRED\x1b[0m",
    "\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07", "\x9b31mC1", "\u202eevil", "a|b|c",
    "[link](http://evil.example/)", "![img](http://evil.example/x.png)", "line\nbreak", "over\rwrite",
    "../../../etc/passwd", "'; DROP TABLE flows; --", "=cmd|' /C calc'!A0", "`code`", "{{7*7}}", "&lt;already&gt;",
    "nul\x00byte", "\x1b[2J\x1b[Hcleared",
]
# What a terminal would act on, were any of it passed through.
ATTACKS = ["\x1b[31m", "\x1b]8;;", "\x9b", "\u202e", "\x07", "\x00", "\rwrite", "\x1b[2J"]

POLICIES = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-everything
spec:
  order: 100
  selector: all()
  types: [Ingress, Egress]
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: deny-everything
spec:
  order: 10
  selector: all()
  types: [Ingress, Egress]
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
"""


def record(i: int, value: str) -> dict[str, object]:
    return {
        "start_time": 1700000000 + i, "end_time": 1700000300 + i, "source_ip": f"10.0.0.{i + 1}", "source_name": "-",
        "source_name_aggr": value, "source_namespace": value, "source_type": "wep",
        "source_labels": {"labels": [f"app={value}", f"{value}=v"]}, "dest_ip": "10.0.1.1", "dest_name": "-",
        "dest_name_aggr": value, "dest_namespace": value, "dest_port": 5432, "dest_type": "wep",
        "dest_labels": {"labels": [f"app={value}"]}, "dest_service_name": value, "dest_service_namespace": value,
        "dest_service_port": value, "process_name": value, "proto": "tcp", "action": "allow", "reporter": "dst",
        "bytes_in": 100, "bytes_out": 1, "packets_in": 1, "packets_out": 1, "num_flows": 1, "num_flows_started": 1,
        "num_flows_completed": 1,
    }


def flowstage(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowstage", "--quiet", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def in_terminal(*args: str) -> tuple[int, str]:
    """Run `flowstage ARGS` with a pseudo-terminal as stdout and stderr, as a person at a terminal would."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "flowstage", *args], stdin=follower, stdout=follower,
                            stderr=follower, env={**os.environ, "TERM": "xterm-256color"})
    os.close(follower)
    out = b""
    while select.select([leader], [], [], TIMEOUT)[0]:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(TIMEOUT), out.decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of hostile flows, ingested and replayed: every row would break, so every report lists them."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "logs").mkdir()
    (root / "logs" / "flows.log").write_text("".join(json.dumps(record(i, v)) + "\n" for i, v in enumerate(HOSTILE)))
    (root / "policies.yaml").write_text(POLICIES)
    for args in (["ingest", "logs", "--store", "store"], ["replay", "--store", "store", "--policies", "policies.yaml"]):
        result = flowstage(*args, cwd=root)
        assert result.returncode == 0, result.stderr
    return root


def test_hostile_values_are_stored_and_replayed_exactly_as_logged(hostile: Path):
    con = Store.open(hostile / "store").connect()
    assert sorted(v for (v,) in con.execute("SELECT source_namespace FROM replay WHERE would_break").fetchall()) \
        == sorted(HOSTILE)
    labels = con.execute("SELECT source_labels FROM flows WHERE source_namespace = ?", [HOSTILE[13]]).fetchone()[0]
    assert labels == {"app": HOSTILE[13], HOSTILE[13]: "v"}


TERMINAL_COMMANDS = [
    ["sql", "--store", "store", "SELECT source_namespace, source_labels, dest_name_aggr FROM flows"],
    *[["sql", "--store", "store", "--format", fmt, "SELECT source_namespace, source_labels, dest_name_aggr FROM replay"]
      for fmt in ("csv", "json", "jsonl", "markdown")],
    ["report", "--store", "store"],
    *[["report", "--store", "store", "--format", fmt] for fmt in ("markdown", "csv", "json")],
    ["check", "--store", "store"],
    ["check", "--store", "store", "--json"],
    ["explain", "--store", "store", "--line", "flows.log:4"],
]


@pytest.mark.parametrize("args", TERMINAL_COMMANDS, ids=lambda args: "-".join(a for a in args if a != "store")[:40])
def test_a_terminal_never_receives_control_sequences_from_logs(hostile: Path, args: list[str],
                                                                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(hostile)
    code, shown = in_terminal(*args)
    assert code in (0, 1), shown[-2000:]
    assert "Traceback" not in shown
    assert [attack for attack in ATTACKS if attack in shown] == []
    assert "RED" in shown or "evil" in shown  # the values are there, as text


def test_files_and_pipes_get_the_values_unchanged(hostile: Path):
    out = hostile / "namespaces.csv"
    result = flowstage("sql", "--store", "store", "--format", "csv", "--output", str(out),
                       "SELECT source_namespace FROM flows ORDER BY source_line", cwd=hostile)
    assert result.returncode == 0, result.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        assert [row[0] for row in csv.reader(fh)][1:] == HOSTILE
    piped = flowstage("sql", "--store", "store", "--format", "jsonl", "SELECT source_namespace FROM flows "
                      "ORDER BY source_line", cwd=hostile)
    assert [json.loads(line)["source_namespace"] for line in piped.stdout.splitlines()] == HOSTILE


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_report_holds_log_values_only_as_text(hostile: Path):
    result = flowstage("report", "--store", "store", "--format", "html", "--output", "report.html", cwd=hostile)
    assert result.returncode == 0, result.stderr
    page_text = (hostile / "report.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(page_text)
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "a", "link", "form", "base"}
    attributes = [(tag, name, value) for tag, attrs in page.tags for name, value in attrs]
    assert not [a for a in attributes if a[1].startswith("on")]
    assert not [a for a in attributes if a[1] in ("href", "src", "action") or "http" in (a[2] or "")]
    assert "Content-Security-Policy" in page_text
    assert [attack for attack in ATTACKS if attack in page_text] == []
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text and '"><img src=x onerror=alert(1)>' in text  # shown, as text


def test_markdown_holds_log_values_only_as_text(hostile: Path):
    report = flowstage("report", "--store", "store", "--format", "markdown", "would_break", cwd=hostile).stdout
    sql = flowstage("sql", "--store", "store", "--format", "markdown",
                    "SELECT source_namespace, dest_name_aggr FROM flows", cwd=hostile).stdout
    for text in (report, sql):
        assert "<script>" not in text and "<img" not in text and "![" not in text
        assert not re.search(r"(?<!\\)\]\(http", text)  # an unescaped `](` would make a link
        assert [attack for attack in ATTACKS if attack in text] == []
        rows = [line for line in text.splitlines() if line.startswith("|")]
        cells = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
        assert len(rows) > len(HOSTILE) / 2 and len(cells) == 1  # no value broke a row or split a column
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in sql and "\\[link\\](http://evil.example/)" in sql


def test_log_values_and_cli_filters_are_bound_never_pasted_into_sql(hostile: Path):
    con = Store.open(hostile / "store").connect()
    assert con.execute("SELECT count(*) FROM flows").fetchone()[0] == len(HOSTILE)  # the DROP TABLE is a name
    # --row and --line go into the query as values: a quote or a LIKE wildcard in them is just a character.
    for args in (["--row", "x' OR '1'='1:1"], ["--line", "%:1"], ["--line", "'; DROP VIEW flows; --:1"]):
        result = flowstage("explain", "--store", "store", *args, cwd=hostile)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "no row with id" in result.stderr or "no stored row comes from line 1" in result.stderr
    assert flowstage("report", "--store", "store", "../../../etc/passwd", cwd=hostile).returncode == 2


def test_paths_chosen_on_the_command_line_never_break_a_query(tmp_path: Path):
    folder = tmp_path / "it's \"quoted\"; DROP TABLE flows; --"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "o'brien.log").write_text(json.dumps(record(0, "shop")) + "\n")
    (folder / "policies.yaml").write_text(POLICIES)
    for args in (["ingest", "logs", "--store", "st'ore"], ["replay", "--store", "st'ore", "--policies", "policies.yaml"],
                 ["report", "--store", "st'ore", "would_break"]):
        result = flowstage(*args, cwd=folder)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    con = Store.open(folder / "st'ore").connect()
    assert con.execute("SELECT source_file, would_break FROM replay").fetchall() == [
        (str(folder / "logs" / "o'brien.log"), True)]


_SAFE_NAME = re.compile(r"^[A-Za-z0-9._=-]+$")


def test_log_values_never_become_file_paths(hostile: Path):
    result = flowstage("report", "--store", "store", "--format", "csv", "--output", "csv", cwd=hostile)
    assert result.returncode == 0, result.stderr
    written = [p.relative_to(hostile) for folder in ("store", "csv") for p in (hostile / folder).rglob("*")]
    unsafe = [str(p) for p in written if not all(_SAFE_NAME.match(part) for part in p.parts)]
    assert unsafe == []
    assert {p.name for p in hostile.iterdir()} <= {"logs", "store", "csv", "policies.yaml", "report.html",
                                                   "namespaces.csv"}
    days = [p.parts[2] for p in written if p.parts[:2] == ("store", "flows") and len(p.parts) == 3]
    assert days and all(re.fullmatch(r"date=(\d{4}-\d{2}-\d{2}|unknown)", day) for day in days)


def test_yaml_is_only_ever_read_with_a_safe_loader():
    unsafe = re.compile(r"yaml\.(load|load_all|full_load|unsafe_load)\(|Loader=yaml\.(Loader|FullLoader|UnsafeLoader)"
                        r"|yaml\.(Unsafe|Full)?Loader\b|YAML\(\s*typ\s*=\s*['\"](unsafe|base)")
    found = [f"{path.relative_to(REPO)}:{n}" for path in (REPO / "flowstage").rglob("*.py")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if unsafe.search(line)]
    assert found == []


@pytest.mark.parametrize("statement", [
    "COPY flows TO 'copied.csv'", "EXPORT DATABASE 'dump'", "ATTACH 'other.db' AS other", "INSTALL httpfs",
    "CREATE TABLE t AS SELECT 1", "SET enable_external_access = true", "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')", "SELECT 1; DROP VIEW flows",
])
def test_flowstage_sql_cannot_write_or_read_beyond_the_store(hostile: Path, statement: str):
    result = flowstage("sql", "--store", "store", statement, cwd=hostile)
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr and "error:" in result.stderr
    assert not any((hostile / name).exists() for name in ("copied.csv", "dump", "other.db"))
    assert Store.open(hostile / "store").connect().execute("SELECT count(*) FROM flows").fetchone()[0] == len(HOSTILE)
