"""notebooks/quickstart.ipynb runs top to bottom headlessly under nbclient."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

QUICKSTART = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_quickstart_executes_with_nbclient(tmp_path):
    notebook = nbformat.read(QUICKSTART, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    widget_outputs = [output for output in outputs if WIDGET_VIEW in output.get("data", {})]
    assert len(widget_outputs) == 1
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    model_names = {model["model_name"] for model in state.values()}
    assert {"AnyModel", "ButtonModel", "ImageModel", "FloatProgressModel"} <= model_names
    printed = "".join(
        output.get("text", "") for output in outputs if output.output_type == "stream"
    )
    assert "0 labels; per class:" in printed
