"""Cleaning in a real JupyterLab + Chromium: a suspect found in the background joins the strip,
a key changes its label and the store's log has the change; an unusual item is marked "not a
class" in its filter and leaves the strip."""

from __future__ import annotations

import re

import pytest

from alwidget.store import open_store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELL = """
import numpy as np
import alwidget as al
rng = np.random.default_rng(3)
centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
rows = (np.repeat(centres, 20, axis=0) + rng.normal(scale=0.6, size=(60, 2))).astype(np.float32)
rows = np.vstack([rows, [[40.0, -40.0]]]).astype(np.float32)  # item 60: far from every blob
pool = al.Pool(rows, targets=np.append(np.repeat(np.arange(3), 20), 0), classes=["a", "b", "c"])
session = al.Session(pool, model="mlp", store="sqlite:///cleaning.db", cv_folds=0, seed=0,
                     track_coverage=False,
                     train_config=al.TrainConfig(max_steps=60, min_steps=40, lr=1e-2))
flips = {4: "b", 23: "c", 41: "a", 57: "b"}
session.label(list(range(56)), [flips.get(i, "abc"[i // 20]) for i in range(56)])
session.retrain()
session.relabel_fraction = 0.5
widget = al.Widget(session, batch_size=6)
widget
"""


def test_a_suspect_joins_the_strip_a_key_changes_it_and_an_unusual_item_is_marked(
    jupyterlab_server, lab_page
):
    from playwright.sync_api import expect

    lab_page.open_notebook(jupyterlab_server.add_code_notebook("cleaning.ipynb", [CELL]))
    lab_page.run_all_cells(timeout_s=240)
    lab_page.assert_widgets_rendered()
    root = lab_page.page.locator(".alwidget-root")
    strip = root.locator(".alwidget-strip").first
    expect(root.locator(".alwidget-label-check")).to_contain_text("labels checked", timeout=90_000)
    suspect = strip.locator(".alwidget-card", has_text="⚠").first
    expect(suspect).to_be_visible(timeout=30_000)
    item_key = suspect.get_attribute("data-item-id")
    assert item_key in {"4", "23", "41"}  # a flipped label among the 56 labeled
    given, proposed = re.search(r"⚠ (\w) → (\w)\?", suspect.inner_text()).groups()
    suspect.click()  # focuses it; keys go to the widget from here on
    expect(root.locator(".alwidget-suspect")).to_contain_text(f"you said {given} · model says")
    expect(root.locator(".alwidget-suspect")).to_contain_text("folds agree")
    lab_page.page.keyboard.press(proposed)
    expect(strip.locator(f'.alwidget-card[data-item-id="{item_key}"]')).to_have_count(
        0, timeout=15_000
    )
    assert root.locator(".alwidget-error-text").count() == 0

    expect(strip.locator('.alwidget-card[data-item-id="60"]')).to_have_count(1)
    root.get_by_role("button", name="Unusual items").click()
    unusual = root.locator(".alwidget-unusual")
    first = unusual.locator(".alwidget-card").first
    expect(first).to_have_attribute("data-item-id", "60", timeout=30_000)
    expect(unusual).to_contain_text("typical item's")
    first.click()
    lab_page.page.keyboard.press("x")
    expect(strip.locator('.alwidget-card[data-item-id="60"]')).to_have_count(0, timeout=15_000)
    expect(unusual.locator('.alwidget-card[data-item-id="60"]')).to_have_count(0)
    assert root.locator(".alwidget-error-text").count() == 0

    with open_store(jupyterlab_server.root_dir / "cleaning.db") as store:
        change, mark = store.cleaning_records()
        assert (change.kind, change.item_key, change.from_label, change.to_label) == (
            "change", item_key, given, proposed,
        )  # fmt: skip
        assert store.current_labels()[item_key] == proposed
        assert (mark.kind, mark.item_key) == ("not_a_class", "60")
