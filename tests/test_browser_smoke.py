"""The browser recipe on a plain ipywidgets notebook: render, click, round-trip to the kernel."""

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COUNTER_CELL = """\
import ipywidgets as widgets
clicks = {"n": 0}
button = widgets.Button(description="Press me")
shown = widgets.Label("clicks: 0")
def count(_):
    clicks["n"] += 1
    shown.value = f"clicks: {clicks['n']}"
button.on_click(count)
widgets.VBox([button, shown])
"""


def test_plain_ipywidgets_click_round_trips_through_the_kernel(
    jupyterlab_server, lab_page, tmp_path
):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(COUNTER_CELL)])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    source = tmp_path / "smoke.ipynb"
    nbformat.write(notebook, source)
    name = jupyterlab_server.add_notebook(source)

    lab_page.open_notebook(name)
    lab_page.run_all_cells()
    lab_page.assert_widgets_rendered()
    button = lab_page.page.locator(".jupyter-widgets button", has_text="Press me")
    for _ in range(3):
        button.click()
    # The label changes only after the kernel handled each click and sent the new state back.
    lab_page.page.locator(".widget-label", has_text="clicks: 3").wait_for(timeout=15_000)
