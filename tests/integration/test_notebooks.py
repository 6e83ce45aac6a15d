"""The notebooks run on a small synthetic population, and are committed without outputs.

Each notebook in ``notebooks/`` is executed top to bottom (nbclient, the engine nbmake uses) on
a copy of the shared prepared test home (``tests/_trained_model.py``: 3,000 synthetic children,
one trained model), so a change in a package a notebook imports cannot leave it broken. The
notebooks read ``SHOUHU_NOTEBOOK_HOME`` and ``SHOUHU_NOTEBOOK_SYNTH``; run by hand without them,
they build their own small home with ``shouhu demo``.

Outputs are stripped before commit (nbstripout's rule): results of a synthetic run are not
documentation, and stripped notebooks give reviewable diffs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests._trained_model import Prepared, prepared

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
#: ``NN-initials-topic.ipynb`` (style rule 23).
NAME = re.compile(r"^\d{2}-[a-z0-9]+-[a-z0-9-]+\.ipynb$")
#: What each notebook must have shown by its end (its point, not its figures).
SHOWN = {
    "01-m2-synthetic-population.ipynb": "recorded / expected",
    "02-m2-model-evaluation-and-fairness.ipynb": "recommendation:",
    "03-m2-explanations-for-supervisors.ipynb": "Risk explanation for child",
}
#: Notebook-level metadata a stripped notebook may keep.
KEPT_METADATA = {"kernelspec", "language_info"}


@pytest.fixture(scope="module")
def notebook_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the shared prepared home (notebooks never write to the shared one)."""
    shared: Prepared = prepared(tmp_path_factory)
    home = tmp_path_factory.mktemp("notebooks") / "home"
    shutil.copytree(shared.home, home)
    return home, shared.synth


def test_there_are_at_least_three_well_named_notebooks() -> None:
    assert len(FILES) >= 3
    for path in FILES:
        assert NAME.match(path.name), path.name


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_committed_notebooks_carry_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert set(notebook.metadata) <= KEPT_METADATA, sorted(notebook.metadata)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a code cell was executed"
        assert not cell.metadata, f"{path.name}: cell metadata {dict(cell.metadata)}"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_notebook_runs_top_to_bottom(
    path: Path,
    notebook_home: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, synth = notebook_home
    # The kernel inherits this process's environment.
    monkeypatch.setenv("SHOUHU_NOTEBOOK_HOME", str(home))
    monkeypatch.setenv("SHOUHU_NOTEBOOK_SYNTH", str(synth))
    monkeypatch.setenv("SHOUHU_HOME", str(home))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    shown = "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert f"data home: {home}" in shown
    assert SHOWN.get(path.name, "") in shown
