"""The real-size browser benchmark's steps, small, in the suite (JupyterLab 4 + Chromium).

``benchmarks/bench_browser_realsize.py`` times them on 60k MNIST and 5 000 PNGs; here a folder of
300 generated PNGs with one truncated file goes through the same notebook and the same in-page
probes: the pool skips and lists the bad file, the widget shows a batch, the map draws every
item, ten labels by key each show the next item, one retrain refreshes the batch, and the
browser console logs no error. Also: the README's map snippet runs as written.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from fixtures.browser import ARTIFACTS_DIR

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_browser_realsize as bench  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_PNGS = 300
N_LABELS = 10
STEP_TIMEOUT_MS = 240_000


def _console_errors(messages: list[tuple[str, str]]) -> list[str]:
    return [text for kind, text in messages if kind in ("error", "pageerror")]


def _wait(page, expression: str, what: str, arg=None, timeout_ms: float = STEP_TIMEOUT_MS):
    """``page.wait_for_function``; on a timeout, fail with what the page showed."""
    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout_ms, polling=100)
    except Exception as error:
        if "Timeout" not in type(error).__name__:
            raise
        state = page.evaluate(
            """() => ({first: window.__bench.first, mapPoints: window.__bench.mapPointsMax,
                       keys: window.__bench.keys.length, retrain: window.__bench.retrain || null,
                       map: (document.querySelector('.alwidget-map') || {}).innerText || null})"""
        )
        raise AssertionError(f"timed out waiting for {what}; page: {state}") from None


def _wait_cells_done(lab_page) -> None:
    _wait(lab_page.page, bench.ALL_CELLS_DONE_JS, "every cell to run")
    errors = lab_page.page.evaluate(bench.CELL_ERRORS_JS)
    assert not errors, f"notebook cell raised: {errors}"


def test_png_pool_with_a_bad_file_labels_by_key_retrains_with_the_map(
    jupyterlab_server, lab_page, tmp_path
):
    folder = tmp_path / "shapes"
    truth = bench.write_shape_pngs(folder, N_PNGS, size=32)
    keys = {item_id: str(bench.SHAPE_CLASSES.index(name) + 1) for item_id, name in truth.items()}
    scenario = bench.Scenario(
        "small-pngs",
        f"pool = al.Pool({str(folder)!r}, classes={list(bench.SHAPE_CLASSES)!r}, "
        "on_error='skip')\nprint('skipped:', [s.path.name for s in pool.skipped])",
        'session = al.Session(pool, encoder="svd", strategy="bald", seed=0)',
        keys,
        N_PNGS,
    )
    (jupyterlab_server.root_dir / "small").mkdir(exist_ok=True)
    notebook = jupyterlab_server.add_code_notebook("small/realsize.ipynb", scenario.cells())
    page = lab_page.page
    console: list[tuple[str, str]] = []
    page.on("console", lambda message: console.append((message.type, message.text)))
    page.on("pageerror", lambda error: console.append(("pageerror", str(error))))
    lab_page.open_notebook(notebook)

    page.evaluate(bench.PROBE_JS)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _wait(page, "() => 'first_card' in window.__bench.first", "the first batch")
    _wait_cells_done(lab_page)
    lab_page.assert_widgets_rendered()

    # The truncated file: left out of the pool, listed by pool.skipped and named in the page.
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    assert any("skipped: ['zz-truncated.png']" in text for text in outputs), outputs
    warning = next((text for text in outputs if "cannot be read" in text), "")
    assert bench.TRUNCATED_FILE in warning, outputs
    strip_ids = page.locator(".alwidget-root .alwidget-card").evaluate_all(
        "cards => cards.map(c => c.dataset.itemId)"
    )
    assert strip_ids and all(item_id in keys for item_id in strip_ids), strip_ids

    # The map draws every readable item.
    _wait(page, f"() => window.__bench.mapPointsMax >= {N_PNGS}", "the map to draw every item")

    # Ten labels by key, the pointer over the widget: each shows the next item.
    root = page.locator(".alwidget-root").first
    root.scroll_into_view_if_needed()
    page.locator(".alwidget-keys-badge").first.click()
    box = root.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 4, box["y"] + min(box["height"] / 3, 250))
    labeled = []
    for index in range(N_LABELS):
        item_id = page.evaluate("() => window.__bench.focusedId()")
        labeled.append(item_id)
        page.keyboard.press(keys[item_id])
        _wait(page, "(n) => window.__bench.keys.length >= n", f"item after key {index + 1}",
              index + 1, 60_000)  # fmt: skip
    records = page.evaluate("() => window.__bench.keys")
    assert [record["from"] for record in records] == labeled
    assert all(record["to"] != record["from"] for record in records)
    from playwright.sync_api import expect

    # The page moves on before the kernel answers (keys.py): the count follows.
    progress = root.locator(".alwidget-progress").first
    expect(progress).to_contain_text(re.compile(rf"\b{N_LABELS} labeled"), timeout=60_000)

    # One retrain: training runs, ends, and the strip shows a refreshed batch.
    page.evaluate(bench.RETRAIN_STATE_JS)
    before = page.evaluate(bench.STRIP_SIGNATURE_JS)
    page.evaluate_handle(bench.RETRAIN_BUTTON_JS).as_element().click()
    page.evaluate(
        "(before) => window.__bench.watchRetrain(before, window.__bench.clicks.at(-1).t)", before
    )
    _wait(page, "() => window.__bench.retrain.refreshed !== null", "the refreshed batch")
    watch = page.evaluate("() => window.__bench.retrain")
    assert watch["seen"] is not None, "the Retrain button never showed training"
    assert all(item_id not in labeled for item_id in page.evaluate(
        "() => [...document.querySelectorAll('.alwidget-root .alwidget-card')]"
        ".map(c => c.dataset.itemId)"
    ))  # fmt: skip

    assert page.locator(".alwidget-root .alwidget-error-text").count() == 0
    assert root.locator(".alwidget-errors").first.inner_text().strip() == ""
    assert _console_errors(console) == [], (console, lab_page.failures())
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / "realsize-small.png"))


def _readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_readme_map_snippet_runs_as_written(jupyterlab_server, lab_page):
    """The README's "Labeling in the notebook" block, then its map block, verbatim (a last
    cell shows the widget if the block does not)."""
    blocks = _readme_python_blocks()
    map_block = next(block for block in blocks if "attach_map(MapView(session))" in block)
    session_block = next(
        block
        for block in blocks
        if "al.Widget(session)" in block and "session = al.Session(" in block
        and "MapView" not in block
    )  # fmt: skip
    # The block shows the widget itself when its last line is ``widget``.
    shows_itself = map_block.strip().splitlines()[-1].split("#")[0].strip() == "widget"
    notebook = jupyterlab_server.add_code_notebook(
        "readme_map.ipynb", [session_block, map_block] + ([] if shows_itself else ["widget"])
    )
    page = lab_page.page
    console: list[tuple[str, str]] = []
    page.on("console", lambda message: console.append((message.type, message.text)))
    lab_page.open_notebook(notebook)
    page.evaluate(bench.PROBE_JS)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _wait_cells_done(lab_page)
    lab_page.assert_widgets_rendered()
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    assert any("k_center_radius" in text for text in outputs), outputs  # session.coverage()
    _wait(page, "() => window.__bench.mapPointsMax > 0", "the map's first paint")
    assert page.locator(".alwidget-map-errors").first.inner_text().strip() == ""
    assert _console_errors(console) == [], (console, lab_page.failures())
