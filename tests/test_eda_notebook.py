"""EDA.ipynb runs top to bottom on the real data."""

from __future__ import annotations

import nbclient
import nbformat
import pytest

from tests.conftest import REPO


@pytest.mark.timeout(900)
def test_eda_notebook_runs_top_to_bottom(data_csv, monkeypatch):
    monkeypatch.setenv("BANK_DATA_PATH", str(data_csv))
    notebook = nbformat.read(REPO / "EDA.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    ).execute()
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells)
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
