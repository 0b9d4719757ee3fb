"""A label suspect in a real JupyterLab + Chromium: marked in the strip, changed by a key,
and the change is in the store's log."""

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
pool = al.Pool(rows, targets=np.repeat(np.arange(3), 20), classes=["a", "b", "c"])
session = al.Session(pool, model="mlp", store="sqlite:///cleaning.db", cv_folds=0, seed=0,
                     track_coverage=False,
                     train_config=al.TrainConfig(max_steps=60, min_steps=40, lr=1e-2))
flips = {4: "b", 23: "c", 41: "a", 57: "b"}
session.label(list(range(56)), [flips.get(i, "abc"[i // 20]) for i in range(56)])
session.retrain()
session.relabel_fraction = 0.5
widget = al.Widget(session, batch_size=2)
widget
"""


def test_a_suspect_is_marked_in_the_strip_and_a_key_changes_its_label(jupyterlab_server, lab_page):
    from playwright.sync_api import expect

    lab_page.open_notebook(jupyterlab_server.add_code_notebook("cleaning.ipynb", [CELL]))
    lab_page.run_all_cells(timeout_s=240)
    lab_page.assert_widgets_rendered()
    root = lab_page.page.locator(".alwidget-root")
    focused = root.locator(".alwidget-card-focused")
    expect(focused).to_contain_text("⚠", timeout=60_000)
    item_key = focused.get_attribute("data-item-id")
    assert item_key in {"4", "23", "41"}  # a flipped label among the 56 labeled
    given, proposed = re.search(r"⚠ (\w) → (\w)\?", focused.inner_text()).groups()
    expect(root.locator(".alwidget-suspect")).to_contain_text(f"you said {given} · model says")
    expect(root.locator(".alwidget-suspect")).to_contain_text("folds agree")

    focused.click()  # keys go to the widget from here on
    lab_page.page.keyboard.press(proposed)
    expect(root.locator(f'.alwidget-card[data-item-id="{item_key}"]')).to_have_count(
        0, timeout=15_000
    )
    assert root.locator(".alwidget-error-text").count() == 0

    with open_store(jupyterlab_server.root_dir / "cleaning.db") as store:
        (change,) = store.cleaning_records()
        assert (change.kind, change.item_key, change.from_label, change.to_label) == (
            "change", item_key, given, proposed,
        )  # fmt: skip
        assert store.current_labels()[item_key] == proposed
