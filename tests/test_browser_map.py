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
map_view = MapView(session, start=False)
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

# Screen position and pool row of every drawn point, by trace name.
ALL_POINTS_JS = """() => {
    const gd = document.querySelector('.alwidget-map .js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.getBoundingClientRect();
    const points = [];
    for (const trace of gd._fullData) (trace.customdata || []).forEach((row, i) => points.push({
        name: trace.name, index: i, row: Number(row),
        x: box.left + xa._offset + xa.l2p(trace.x[i]), y: box.top + ya._offset + ya.l2p(trace.y[i]),
    }));
    return points;
}"""


def isolated_batch_point(page, not_row: str | None) -> int:
    """Index (in the "current batch" trace) of the batch point farthest from any other item's
    point on screen, so a hover there can only pick that item (two rows of a layout can land
    on one pixel)."""
    points = page.evaluate(ALL_POINTS_JS)
    best, best_gap = None, -1.0
    for point in points:
        if point["name"] != "current batch" or f"p{point['row']}" == not_row:
            continue
        gap = min(
            (
                ((other["x"] - point["x"]) ** 2 + (other["y"] - point["y"]) ** 2) ** 0.5
                for other in points
                if other["row"] != point["row"]
            ),
            default=float("inf"),
        )
        if gap > best_gap:
            best, best_gap = point["index"], gap
    assert best is not None and best_gap > 2, f"no batch point stands apart ({best_gap:.1f} px)"
    return best


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
    // An empty trace (the batch before the first one arrives) has no customdata.
    for (const trace of gd._fullData) for (const row of trace.customdata || []) rows.add(Number(row));
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
    target = page.evaluate(POINT_JS, ["current batch", isolated_batch_point(page, first_focused)])
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


# The digits pool (1 257 items, a held-out split for the learning curve) with the map beside
# the panel; the MLP trains in a second or two.
LABELING_CELL = """
import alwidget as al
from alwidget.widget import MapView

pool = al.datasets.load_digits()
session = al.Session(pool, model="mlp", strategy="entropy", seed=0, store=False,
                     train_config=al.TrainConfig(min_steps=20, max_steps=40, max_epochs=5))
panel = al.Widget(session, batch_size=10)
map_view = MapView(session)
panel.attach_map(map_view)
panel
"""

# x values of the learning curve as the browser draws it (the panel's SVG chart).
CURVE_X_JS = """() => {
    const charts = [...document.querySelectorAll('.alwidget-root svg.alwidget-curve')];
    if (charts.length !== 1) return null;
    return [...charts[0].querySelectorAll('circle.alwidget-curve-point')]
        .map(point => Number(point.dataset.labels));
}"""

# Key press -> the focused card shows another item, timed in the page up to the next frame
# (what the user sees): the key's event time, a MutationObserver on the focused card's id.
# The page moves on by itself (keys.py); "confirmed" is key press -> the kernel's answer
# (the press acknowledged, the strip redrawn from the kernel's queue).
LATENCY_JS = """() => {
    const root = document.querySelector('.alwidget-root');
    const focusedId = () => {
        const card = root.querySelector('.alwidget-card-focused');
        return card ? card.dataset.itemId : null;
    };
    window.__keyLatencies = [];
    window.__confirmLatencies = [];
    let shownId = focusedId(), pressedAt = null;
    // On window, like the widget's own key listener (which runs first, being older).
    window.addEventListener('keydown', (event) => { pressedAt = event.timeStamp; }, true);
    new MutationObserver(() => {
        const now = focusedId();
        if (now === null || now === shownId) return;
        shownId = now;
        requestAnimationFrame(() => {
            if (pressedAt === null) return;
            window.__keyLatencies.push(performance.now() - pressedAt);
            pressedAt = null;
        });
    }).observe(root, {subtree: true, childList: true, attributes: true});
    const sent = new Map();
    root.addEventListener('alwidget-advance', (event) => {
        sent.set(event.detail.seq, performance.now());
    });
    root.addEventListener('alwidget-ack', (event) => requestAnimationFrame(() => {
        for (const [seq, time] of sent) {
            if (seq > event.detail.seq) continue;
            window.__confirmLatencies.push(performance.now() - time);
            sent.delete(seq);
        }
    }));
}"""

# What a lasso leaves on the map: outlines drawn, points dimmed (traces with selectedpoints).
SELECTION_STATE_JS = """() => {
    const gd = document.querySelector('.alwidget-map .js-plotly-plot');
    return {
        outlines: gd.querySelectorAll('.selectionlayer path, .outline-controllers').length,
        selections: (gd.layout.selections || []).length,
        dimmed: gd._fullData.filter(t => Array.isArray(t.selectedpoints)
                                        || ArrayBuffer.isView(t.selectedpoints)).length,
    };
}"""

PLOT_AREA_JS = """() => {
    const gd = document.querySelector('.alwidget-map .js-plotly-plot');
    const box = gd.getBoundingClientRect(), size = gd._fullLayout._size;
    return {x: box.left + size.l, y: box.top + size.t, w: size.w, h: size.h,
            width: gd._fullLayout.width, height: gd._fullLayout.height};
}"""

LEGEND_FITS_JS = """() => {
    const gd = document.querySelector('.alwidget-map .js-plotly-plot');
    const legend = gd.querySelector('.legend').getBoundingClientRect();
    const figure = gd.querySelector('.main-svg').getBoundingClientRect();
    return {legendBottom: legend.bottom, figureBottom: figure.bottom,
            legendRight: legend.right, figureRight: figure.right,
            entries: gd.querySelectorAll('.legend .traces').length};
}"""


def lasso_centre(page) -> None:
    """Drag a lasso around the middle of the map's plot area (scrolled into view first: the
    mouse cannot reach what is below the window)."""
    page.locator(".alwidget-map .js-plotly-plot").scroll_into_view_if_needed()
    area = page.evaluate(PLOT_AREA_JS)
    cx, cy = area["x"] + area["w"] / 2, area["y"] + area["h"] / 2
    rx, ry = area["w"] * 0.3, area["h"] * 0.3
    page.mouse.move(cx - rx, cy - ry)
    page.mouse.down()
    for x, y in ((cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry), (cx - rx, cy - ry)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_map_attached_labels_by_key_and_two_retrains(jupyterlab_server, lab_page):
    """30 labels by key and two retrains with the map attached: the learning curve gains a
    point per retrain, a lasso is registered by the map's panel at once and is gone after
    the redraw, the legend fits, and the console stays free of errors and WebGL warnings.
    Prints key press -> next item shown (p50/p95) with the map attached."""
    from playwright.sync_api import expect

    warnings = []
    lab_page.page.on("console", lambda msg: msg.type == "warning" and warnings.append(msg.text))
    lab_page.open_notebook(jupyterlab_server.add_code_notebook("labeling.ipynb", [LABELING_CELL]))
    lab_page.run_all_cells(timeout_s=300)
    lab_page.assert_widgets_rendered()
    page = lab_page.page
    root = page.locator(".alwidget-root")
    status = page.locator(".alwidget-map-status")
    expect(status).to_contain_text("layout fitted for model v0", timeout=300_000)
    root.scroll_into_view_if_needed()

    page.evaluate(LATENCY_JS)
    progress = root.locator(".alwidget-progress")
    root.locator(".alwidget-card-focused").click()  # keys go to the widget from here on
    selection = page.locator(".alwidget-map-selection")
    n_labels = 0
    for retrain in (1, 2):
        for step in range(15):
            page.keyboard.press(str((n_labels + step) % 10))
            expect(progress).to_contain_text(f"{n_labels + step + 1} labeled", timeout=15_000)
        n_labels += 15
        if retrain == 2:
            # The first lasso on the map is registered by its panel at once; the redraw
            # after the retrain then clears its outline and dimming (checked below).
            lasso_centre(page)
            expect(selection).to_contain_text("selected", timeout=10_000)
            assert page.evaluate(SELECTION_STATE_JS)["dimmed"] > 0
        root.locator(".widget-button", has_text="Retrain").click()
        expect(status).to_contain_text(f"layout refreshed for model v{retrain}", timeout=300_000)
        expect(progress).to_contain_text(f"model v{retrain}", timeout=60_000)
        if retrain == 1:
            # Every digit has labels now (plotly leaves traces without points out of the
            # legend, so before the first labels it holds fewer entries).
            legend = page.evaluate(LEGEND_FITS_JS)
            assert legend["entries"] == 13, legend  # unlabeled, batch, least covered, 10 digits
            assert legend["legendBottom"] <= legend["figureBottom"] + 1, legend
            assert legend["legendRight"] <= legend["figureRight"] + 1, legend

    drawn = None
    for _ in range(40):  # the last point arrives with the job that applies the retrain
        drawn = page.evaluate(CURVE_X_JS)
        if drawn == [15, 30]:
            break
        page.wait_for_timeout(250)
    assert drawn == [15, 30], f"learning curve in the browser: {drawn}"

    # The refresh after the retrain moved the points: no outline, no dimming, no selection.
    expect(selection).not_to_contain_text("selected", timeout=10_000)
    state = page.evaluate(SELECTION_STATE_JS)
    assert state == {"outlines": 0, "selections": 0, "dimmed": 0}, state

    latencies = sorted(page.evaluate("window.__keyLatencies"))
    confirmed = sorted(page.evaluate("window.__confirmLatencies"))
    assert len(latencies) == 30 and len(confirmed) == 30, (latencies, confirmed)
    p50, p95 = latencies[14], latencies[int(0.95 * 29)]
    print(
        f"\nkey press -> next item shown with the map attached (digits, 30 labels): "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms; confirmed by the "
        f"kernel p50 {confirmed[14]:.0f} ms, p95 {confirmed[int(0.95 * 29)]:.0f} ms"
    )

    # One WebGL context per figure: the warning that used to come 28 times per session.
    # (Chromium's software GL also notes "GPU stall due to ReadPixels" when plotly picks the
    # point under the mouse; a performance note of the driver, not a lost context.)
    webgl = [text for text in warnings if "WebGL contexts" in text or "CONTEXT_LOST" in text]
    assert not lab_page.console_errors and not webgl, (
        lab_page.console_errors,
        webgl,
        lab_page.failures(),
    )
    assert page.locator(".alwidget-map-errors").inner_text().strip() == ""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    root.screenshot(path=str(ARTIFACTS_DIR / "map-after-two-retrains.png"))
    # The map below the panel is outside the notebook's window in the shot above.
    page.locator(".alwidget-map").screenshot(path=str(ARTIFACTS_DIR / "map-itself.png"))
