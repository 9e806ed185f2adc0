"""notebooks/explore.ipynb is committed without outputs, and every cell runs on a real Jupyter kernel (nbclient,
ipykernel) started in an empty folder: a cell that raises fails the test, so the notebook cannot rot unseen."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _cell(notebook: nbformat.NotebookNode, marker: str) -> nbformat.NotebookNode:
    [cell] = [cell for cell in _code_cells(notebook) if marker in cell.source]
    return cell


def test_the_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert all(cell.outputs == [] and cell.execution_count is None for cell in _code_cells(notebook))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[nbformat.NotebookNode, Path]:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    folder = tmp_path_factory.mktemp("notebook-cwd")
    # Raises CellExecutionError, with the cell and its traceback, when any cell raises.
    NotebookClient(notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(folder)}}).execute()
    return notebook, folder


@pytest.mark.slow
def test_every_cell_runs_and_leaves_nothing_behind(run: tuple[nbformat.NotebookNode, Path]) -> None:
    notebook, folder = run
    assert all(cell.execution_count for cell in _code_cells(notebook))
    assert not any(o.output_type == "error" for cell in _code_cells(notebook) for o in cell.outputs)
    assert list(folder.iterdir()) == []  # the store lived in a temporary folder the last cell removed


@pytest.mark.slow
def test_it_charts_the_top_destinations_and_the_namespace_matrix(run: tuple[nbformat.NotebookNode, Path]) -> None:
    notebook, _ = run
    charts = [cell for cell in _code_cells(notebook) if any("image/png" in o.get("data", {}) for o in cell.outputs)]
    assert len(charts) == 2
    assert "Top would-break destinations" in charts[0].source and "would_break_matrix" in charts[1].source
    assert "prod/frontend" in _text(_cell(notebook, 'would_break = report.df("would_break")'))
    assert "116945" in _text(_cell(notebook, 'report.df("would_break_matrix")'))


@pytest.mark.slow
def test_it_explains_frontend_to_backend_under_both_sets(run: tuple[nbformat.NotebookNode, Path]) -> None:
    text = _text(_cell(run[0], "flowstage.explain("))
    assert "prod/frontend-" in text and "→ prod/backend-" in text
    assert "current: allow by profile pro:kns.prod" in text
    assert "proposed: deny by end of tier default (default action; trigger sgnp:backend-lockdown-staged" in text


@pytest.mark.slow
def test_it_asks_three_questions_in_sql_one_with_a_selector(run: tuple[nbformat.NotebookNode, Path]) -> None:
    notebook = run[0]
    questions = [cell for cell in _code_cells(notebook) if "flowstage.sql(con," in cell.source]
    assert len(questions) == 3
    selector = _cell(notebook, "selector_match('app == \"backend\"', dest_labels)")
    assert "prod/frontend" in _text(selector) and "monitoring/prometheus" in _text(selector)
    # Every format's rows, Whisker's (no endpoint types logged) included, agree with what was logged.
    fidelity = _text(questions[1])
    for fmt, rows in (("felix", 2423), ("goldmane", 314), ("elastic", 261), ("whisker", 170)):
        assert re.search(rf"\b{fmt}\s+{rows}\s+{rows}\s+{rows}\s+0\s+0\b", fidelity), fidelity
