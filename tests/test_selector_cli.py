"""`flowstage selector check | match | sql`, run through the real command entry point."""

from __future__ import annotations

import sys

import pytest

from flowstage.cli import main


def flowstage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["flowstage", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


def test_check_prints_the_canonical_form(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = flowstage(monkeypatch, capsys, "selector", "check", "app=='db'&&env!='dev'", "--uid")
    assert code == 0
    canonical, uid = out.splitlines()
    assert canonical == '(app == "db" && env != "dev")'
    assert uid.startswith("s:")


def test_check_shows_what_is_wrong_with_a_caret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = flowstage(monkeypatch, capsys, "selector", "check", 'app == "db" && env = "dev"')
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: invalid selector: expected == (at character 20)",
        '  app == "db" && env = "dev"',
        "                     ^",
    ]


def test_match_answers_with_output_and_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    selector = 'app == "db" && env != "dev"'
    assert flowstage(monkeypatch, capsys, "selector", "match", selector, "-l", "app=db")[:2] == (0, "true\n")
    assert flowstage(monkeypatch, capsys, "selector", "match", selector, "-l", "app=db", "-l", "env=dev")[
        :2
    ] == (
        1,
        "false\n",
    )


def test_match_rejects_a_label_without_a_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = flowstage(monkeypatch, capsys, "selector", "match", "has(app)", "-l", "app")
    assert code == 2 and "KEY=VALUE" in err


def test_sql_prints_one_line_of_duckdb_sql(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = flowstage(
        monkeypatch,
        capsys,
        "selector",
        "sql",
        "has(tier) && app in {'db', 'cache'}",
        "--labels",
        "src_labels",
    )
    assert code == 0
    assert out == (
        "((map_extract_value(src_labels, 'tier') IS NOT NULL) AND "
        "coalesce(map_extract_value(src_labels, 'app') IN ('cache', 'db'), FALSE))\n"
    )
