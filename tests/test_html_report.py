"""The HTML report: one self-contained file with charts that opens without network access, in which every
value from the logs is escaped.

The logs here are hostile: a label value, a pod name and a namespace carry markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_stores import LESSON, build_store, felix, pod, profile
from typer.testing import CliRunner

from flowstage.cli import app

SCRIPT = "<script>alert(1)</script>"
IMAGE = '<img src="https://evil.example/x.png" onerror="alert(2)">'

FRONTEND = pod("prod", "frontend", env="prod")
BACKEND = pod("prod", "backend", "5c8bd9d4f", env="prod", note=SCRIPT)
INTRUDER = {**pod("prod", "frontend", env="prod"), "name_aggr": f"{IMAGE}-*"}
VISITOR = pod(f"ns-{SCRIPT}", "client", "5c8bd9d4f")

RECORDS = [
    felix(FRONTEND, BACKEND, reporter="dst", port=8080, flows=10, enforced=[profile("prod")]),
    felix(INTRUDER, BACKEND, reporter="dst", port=8080, flows=3, minute=70, enforced=[profile("prod")]),
    felix(VISITOR, BACKEND, reporter="dst", port=9090, flows=2, minute=130, enforced=[profile("prod")]),
]

# Tags the report is made of; anything else (script, link, img, iframe, object, …) would be injected.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "b", "span", "section",
    "svg", "text", "rect", "line", "table", "thead", "tbody", "tr", "th", "td", "caption", "details", "summary",
    "dl", "dt", "dd", "code",
}
RESOURCE_ATTRIBUTES = {"src", "href", "xlink:href", "action", "formaction", "data", "poster", "background", "srcset"}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


@pytest.fixture(scope="module")
def html_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("html")
    store = build_store(root, RECORDS, LESSON)
    out = root / "report.html"
    result = CliRunner().invoke(app, ["report", "--store", str(store), "--format", "html", "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def page(html_file: Path) -> Page:
    parsed = Page()
    parsed.feed(html_file.read_text(encoding="utf-8"))
    return parsed


def test_values_from_the_logs_appear_only_escaped(html_file, page):
    text = html_file.read_text(encoding="utf-8")
    assert SCRIPT not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the label value, shown as text
    assert "<img" not in text and "onerror=" not in text.replace("onerror=&quot;", "")
    assert any(SCRIPT in t for t in page.text)  # a reader sees the value as it was logged
    assert set(page.tags) <= ALLOWED_TAGS
    assert not [name for _, name, _ in page.attributes if name.startswith("on")]


def test_the_file_references_nothing_outside_itself(page):
    remote = re.compile(r"^\s*(https?:|//)", re.IGNORECASE)
    fetched = [(tag, name, value) for tag, name, value in page.attributes if name in RESOURCE_ATTRIBUTES]
    assert fetched == []
    for tag, name, value in page.attributes:
        assert not remote.match(value) or name == "content", (tag, name, value)
        assert "url(" not in value, (tag, name, value)
    css = "".join(page.styles)
    assert "url(" not in css and "@import" not in css
    csp = [value for tag, name, value in page.attributes if tag == "meta" and name == "content" and "default-src" in value]
    assert csp and "default-src 'none'" in csp[0]


def test_the_report_has_its_charts(html_file, page):
    text = html_file.read_text(encoding="utf-8")
    assert page.tags.count("svg") == 2  # top-N bars and the timeline; the matrix is a table
    bars = text.split("<svg", 2)[1]
    assert bars.count('class="bar"') == 2  # one bar per would-break destination
    assert 'class="matrix"' in text
    assert "What breaks, namespace to namespace" in text
    assert "When would-break traffic happens" in text


def test_the_verdict_comes_first(page):
    first_paragraphs = [t.strip() for t in page.text if t.strip()][:4]
    assert any(t.startswith("Promoting 1 staged policy would break 15 flows") for t in first_paragraphs)
