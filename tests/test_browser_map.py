"""The embedding map in a real JupyterLab 4 + Chromium, attached to the labeling panel: it
draws the pool, and clicking a point focuses that item in the panel (a queued one at once,
any other after the panel fetches it)."""

from __future__ import annotations

import pytest
from fixtures.browser import ARTIFACTS_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_ITEMS = 300

MAP_CELL = f"""
import numpy as np
from sklearn.datasets import make_blobs
import alwidget as al
from alwidget.widget.map_view import MapView

features, clusters = make_blobs({N_ITEMS}, n_features=6, centers=3, random_state=0)
pool = al.Pool(features.astype(np.float32), targets=clusters, classes=["a", "b", "c"],
               ids=[f"p{{i}}" for i in range({N_ITEMS})])
session = al.Session(pool, model="mlp", strategy="entropy", seed=0, cv_folds=0)
panel = al.Widget(session, batch_size=6)
map_view = MapView(session, start=False, height=420)
panel.attach_map(map_view)
map_view.update()
map_view.wait(300)
assert map_view.last_error == "", map_view.last_error
panel
"""

# Pixel position (in the page) of point `point` of the trace named `name`, and its pool row.
POINT_JS = """([name, point]) => {
    const gd = document.querySelector('.alwidget-map .js-plotly-plot');
    const index = gd._fullData.findIndex(t => t.name === name);
    const trace = gd._fullData[index];
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.getBoundingClientRect();
    return {x: box.left + xa._offset + xa.l2p(trace.x[point]),
            y: box.top + ya._offset + ya.l2p(trace.y[point]),
            row: Number(trace.customdata[point])};
}"""

# Pool row (+1, so 0 means "not yet") of the point plotly hovers within 6 px of (x, y).
HOVERED_ROW_JS = """([x, y]) => {
    const gd = document.querySelector('.alwidget-map .js-plotly-plot');
    const hovered = gd._hoverdata && gd._hoverdata[0];
    if (!hovered) return 0;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.getBoundingClientRect();
    const px = box.left + xa._offset + xa.l2p(hovered.x);
    const py = box.top + ya._offset + ya.l2p(hovered.y);
    return Math.hypot(px - x, py - y) <= 6 ? Number(hovered.customdata) + 1 : 0;
}"""

DRAWN_ROWS_JS = """() => {
    const gd = document.querySelector('.alwidget-map .js-plotly-plot');
    const rows = new Set();
    for (const trace of gd._fullData) for (const row of trace.customdata) rows.add(Number(row));
    return rows.size;
}"""


def test_map_renders_the_pool_and_a_click_focuses_the_item_in_the_panel(
    jupyterlab_server, lab_page
):
    from playwright.sync_api import expect

    lab_page.open_notebook(jupyterlab_server.add_code_notebook("map.ipynb", [MAP_CELL]))
    lab_page.run_all_cells(timeout_s=400)
    lab_page.assert_widgets_rendered()
    page = lab_page.page

    plot = page.locator(".alwidget-map .js-plotly-plot")
    plot.wait_for(timeout=60_000)
    plot.scroll_into_view_if_needed()
    try:
        page.wait_for_function(
            DRAWN_ROWS_JS.replace("return rows.size;", f"return rows.size === {N_ITEMS};"),
            timeout=60_000,
        )
    except Exception as error:  # a Playwright timeout: say what the page saw
        drawn = page.evaluate(DRAWN_ROWS_JS)
        raise AssertionError(
            f"map shows {drawn} of {N_ITEMS} items; console: {lab_page.console_errors}"
        ) from error
    assert page.locator(".alwidget-map canvas").count() > 0  # WebGL scatter
    expect(page.locator(".alwidget-map .legendtext", has_text="current batch")).to_be_visible()

    focused = page.locator(".alwidget-root .alwidget-card-focused")
    first_focused = focused.get_attribute("data-item-id")
    target = page.evaluate(POINT_JS, ["current batch", 2])
    expected_id = f"p{target['row']}"
    assert expected_id != first_focused  # the panel starts on the first queued item
    page.mouse.move(target["x"], target["y"])
    expect(page.locator(".alwidget-map-item")).to_contain_text(
        f"item {expected_id}", timeout=15_000
    )
    page.mouse.click(target["x"], target["y"])
    expect(focused).to_have_attribute("data-item-id", expected_id, timeout=15_000)

    # An item that is not queued: the panel fetches it (in the background) and focuses it.
    # The hover pane says which item is under the pointer; that is the one to expect.
    queued = set(
        page.locator(".alwidget-root .alwidget-card").evaluate_all(
            "cards => cards.map(c => c.dataset.itemId)"
        )
    )
    pane = page.locator(".alwidget-map-item")
    for point in range(N_ITEMS):
        target = page.evaluate(POINT_JS, ["unlabeled", point])
        page.mouse.move(target["x"], target["y"])
        # The point plotly picked under the pointer (a neighbour may sit on the same pixel).
        row = page.wait_for_function(
            HOVERED_ROW_JS, arg=[target["x"], target["y"]], timeout=15_000
        ).json_value()
        hovered = f"p{row - 1}"
        expect(pane).to_contain_text(f"item {hovered}", timeout=15_000)
        if hovered not in queued:
            break
    page.mouse.click(target["x"], target["y"])
    expect(focused).to_have_attribute("data-item-id", hovered, timeout=60_000)

    assert page.locator(".alwidget-map-errors").inner_text().strip() == ""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    page.locator(".alwidget-map").screenshot(path=str(ARTIFACTS_DIR / "embedding-map.png"))


CURVE_CELLS = [
    f"""
import numpy as np
from sklearn.datasets import make_blobs
import alwidget as al
from alwidget.widget.map_view import MapView

features, clusters = make_blobs({N_ITEMS} + 150, n_features=6, centers=3, random_state=1)
features = features.astype(np.float32)
pool = al.Pool(features[:{N_ITEMS}], targets=clusters[:{N_ITEMS}], classes=["a", "b", "c"],
               test_items=features[{N_ITEMS}:], test_targets=clusters[{N_ITEMS}:])
session = al.Session(pool, model="mlp", strategy="entropy", seed=0, store=False)
panel = al.Widget(session, batch_size=6)
panel
""",
    """
map_view = MapView(session, height=360)
panel.attach_map(map_view)
map_view.wait(300)
for round_index in range(2):
    for step in range(6):
        panel.label(pool.classes[(step + round_index) % 3])
    panel.retrain()
    panel.wait()
    map_view.wait(300)
""",
]

# x values of the learning curve as the browser draws it (the panel's plot outside the map).
CURVE_X_JS = """() => {
    const plots = [...document.querySelectorAll('.alwidget-root .js-plotly-plot')]
        .filter(plot => !plot.closest('.alwidget-map'));
    return plots.length === 1 ? Array.from(plots[0].data[0].x || []) : null;
}"""


def test_learning_curve_keeps_updating_after_the_map_is_attached(jupyterlab_server, lab_page):
    """Attaching the map once re-parented the panel's widgets; the re-created view of the
    learning curve then dropped every update ("Error setting state ... 'length'")."""
    lab_page.open_notebook(jupyterlab_server.add_code_notebook("curve.ipynb", CURVE_CELLS))
    lab_page.run_all_cells(timeout_s=400)
    lab_page.assert_widgets_rendered()
    page = lab_page.page
    page.locator(".alwidget-map .js-plotly-plot").wait_for(timeout=60_000)
    drawn = None
    for _ in range(60):  # up to 30 s for the last retrain's point to arrive
        drawn = page.evaluate(CURVE_X_JS)
        if drawn == [6, 12]:
            break
        page.wait_for_timeout(500)
    setting_errors = [e for e in lab_page.console_errors if "Error setting state" in e]
    assert drawn == [6, 12] and not setting_errors, (
        f"learning curve in the browser: {drawn}; console: {lab_page.console_errors}"
    )
