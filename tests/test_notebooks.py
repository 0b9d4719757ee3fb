"""Every teaching notebook runs top to bottom under nbclient at its small size.

``ALWIDGET_NOTEBOOK_SIZE=small`` is what each notebook's parameters cell reads; an error in any
cell fails the test with the cell's traceback. ``quickstart.ipynb`` has its own test
(``test_widget_notebook.py``). The notebooks must be stored without outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TEACHING = ["why_bald", "strategy_race", "batch_awareness", "your_own_data", "cleaning"]
# Notebooks that read MNIST when it is there (Repeated MNIST is the point of batch_awareness).
USES_MNIST = {"batch_awareness"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_every_notebook_is_tested_and_stored_without_outputs():
    stored = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    assert set(stored) - {"quickstart"} == set(TEACHING), stored
    for name in TEACHING:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), name
        tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
        assert len(tagged) == 1 and "ALWIDGET_NOTEBOOK_SIZE" in tagged[0].source, name


@pytest.mark.parametrize("name", TEACHING)
def test_notebook_runs_at_small_size(name, tmp_path, monkeypatch, request):
    monkeypatch.setenv("ALWIDGET_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread, as in conftest
    monkeypatch.delenv("ALWIDGET_MNIST_ROOT", raising=False)
    if name in USES_MNIST:
        monkeypatch.setenv("ALWIDGET_MNIST_ROOT", str(request.getfixturevalue("mnist_root")))
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )  # fmt: skip
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError with the traceback when a cell fails
    seconds = time.perf_counter() - started
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert [out for out in outputs if WIDGET_VIEW in out.get("data", {})], "no widget shown"
    print(f"{name}: {seconds:.1f} s at the small size")
