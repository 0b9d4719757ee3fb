"""The widget in a real JupyterLab 4 + Chromium: quickstart labeling, retrain, and escaping."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from fixtures.browser import ARTIFACTS_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = "<img src=x onerror=alert(1)>"


class WidgetDriver:
    """Reads and drives the labeling widget on the page."""

    def __init__(self, lab_page):
        from playwright.sync_api import expect

        self.lab = lab_page
        self.page = lab_page.page
        self.root = self.page.locator(".alwidget-root")
        self.expect = expect

    def labeled(self) -> int:
        text = self.root.locator(".alwidget-progress").inner_text()
        return int(re.search(r"(\d+) labeled", text).group(1))

    def wait_labeled(self, count: int) -> None:
        self.expect(self.root.locator(".alwidget-progress")).to_contain_text(
            f"{count} labeled", timeout=15_000
        )

    def focused_id(self) -> str:
        return self.root.locator(".alwidget-card-focused").get_attribute("data-item-id")

    def strip_ids(self) -> list[str]:
        # A card the page took out ahead of the kernel's answer stays hidden until it comes.
        return self.root.locator(".alwidget-card:not(.alwidget-card-done)").evaluate_all(
            "cards => cards.map(c => c.dataset.itemId)"
        )

    def button(self, name: str):
        # Not get_by_role: a Font Awesome icon's CSS glyph becomes part of the accessible name.
        return self.root.locator(
            ".widget-button", has_text=re.compile(rf"^\W*{re.escape(name)}\s*$")
        )

    def label_by_click(self, name: str) -> None:
        before, count = self.focused_id(), self.labeled()
        self.button(name).click()
        self.wait_labeled(count + 1)
        self.expect(self.root.locator(".alwidget-card-focused")).not_to_have_attribute(
            "data-item-id", before
        )

    def label_by_key(self, key: str) -> None:
        before, count = self.focused_id(), self.labeled()
        self.page.keyboard.press(key)
        self.wait_labeled(count + 1)
        assert before not in self.strip_ids()

    def assert_no_errors(self) -> None:
        assert self.root.locator(".alwidget-error-text").count() == 0, self.root.locator(
            ".alwidget-error-text"
        ).all_inner_texts()
        errors_log = self.root.locator(".alwidget-errors").inner_text().strip()
        assert errors_log == "", errors_log
        self.lab.assert_widgets_rendered()


def test_quickstart_label_by_clicks_and_keys_retrain_and_refresh(jupyterlab_server, lab_page):
    name = jupyterlab_server.add_notebook(REPO / "notebooks" / "quickstart.ipynb")
    lab_page.open_notebook(name)
    lab_page.run_all_cells(timeout_s=180)
    lab_page.assert_widgets_rendered()
    widget = WidgetDriver(lab_page)
    widget.root.scroll_into_view_if_needed()
    assert widget.labeled() == 0 and len(widget.strip_ids()) == 10

    for digit in "31415":  # clicks on class buttons
        widget.label_by_click(digit)
    widget.expect(widget.root.locator(".alwidget-keys-badge")).to_have_text("⌨ keys on")
    for key in "92653":  # keys, focus is inside the widget after the clicks
        widget.label_by_key(key)
    assert widget.labeled() == 10

    third = widget.strip_ids()[2]  # clicking a thumbnail focuses it; the next key labels it
    widget.root.locator(f'.alwidget-card[data-item-id="{third}"]').click()
    widget.expect(widget.root.locator(".alwidget-card-focused")).to_have_attribute(
        "data-item-id", third
    )
    widget.label_by_key("7")
    assert third not in widget.strip_ids()

    widget.button("Retrain").click()
    widget.expect(widget.button("Training…")).to_be_visible(timeout=10_000)
    for key in "58":
        widget.label_by_key(key)  # labeling goes on while the model trains
    assert widget.button("Training…").is_visible(), (
        "training ended before the labels during training arrived"
    )
    in_hand, before_refresh = widget.focused_id(), widget.strip_ids()

    widget.expect(widget.button("Retrain")).to_be_visible(timeout=180_000)
    widget.expect(widget.root.locator(".widget-label", has_text="model v1:")).to_be_visible()
    widget.expect(widget.root.locator(".alwidget-progress")).to_contain_text("model v1")
    assert widget.focused_id() == in_hand, "the refresh lost the item in hand"
    assert widget.strip_ids() != before_refresh, "the batch was not refreshed after training"
    assert (
        widget.root.locator("svg.alwidget-curve circle.alwidget-curve-point").count() == 1
    )  # learning-curve point

    widget.label_by_key("2")
    count = widget.labeled()
    widget.page.keyboard.press("u")
    widget.wait_labeled(count - 1)
    assert widget.focused_id() not in (None, "")

    widget.assert_no_errors()
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    widget.root.screenshot(path=str(ARTIFACTS_DIR / "quickstart-widget.png"))


XSS_CELL = f"""
import alwidget as al
texts = [f"review {{i}}: fine" for i in range(30)]
texts[0] = {PAYLOAD!r}
pool = al.Pool(texts, classes=[{PAYLOAD!r}, "ok"])
session = al.Session(pool, strategy="entropy", seed=0)
session.prioritize([0])
widget = al.Widget(session, batch_size=5)
widget
"""


def test_item_text_and_class_names_render_as_text_not_markup(jupyterlab_server, lab_page, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(XSS_CELL)])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "escaping.ipynb"
    nbformat.write(notebook, path)
    dialogs: list[str] = []
    lab_page.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    lab_page.open_notebook(jupyterlab_server.add_notebook(path))
    lab_page.run_all_cells()
    lab_page.assert_widgets_rendered()
    widget = WidgetDriver(lab_page)
    widget.root.locator(".alwidget-card").first.wait_for()

    assert widget.root.locator('img[src="x"]').count() == 0
    assert widget.root.locator(".alwidget-snippet").first.inner_text() == PAYLOAD
    assert widget.root.locator(".alwidget-text").inner_text() == PAYLOAD
    assert PAYLOAD in widget.root.locator(".alwidget-progress").inner_text()
    widget.label_by_click(f"{PAYLOAD} (1)")  # the class button shows the name as text and works
    lab_page.page.wait_for_timeout(500)
    assert dialogs == []
    widget.assert_no_errors()


RAPID_CELL = """
import json
import ipywidgets as w
import alwidget as al

pool = al.datasets.load_digits()
session = al.Session(pool, model="mlp", strategy="entropy", seed=0, store=False)
panel = al.Widget(session, batch_size=10)
stored = w.HTML()
stored.add_class("stored-labels")
panel.observe(
    lambda _change: setattr(
        stored, "value", json.dumps({str(k): v for k, v in session.labels.items()})
    ),
    "n_labels",
)
w.VBox([panel, stored])
"""


def test_keys_pressed_faster_than_the_kernel_answers_label_the_items_shown(
    jupyterlab_server, lab_page
):
    """The page moves to the next card at once (keys.py); presses that overtake the kernel's
    answers still label exactly the item each one was pressed on."""
    import json

    lab_page.open_notebook(jupyterlab_server.add_code_notebook("rapid.ipynb", [RAPID_CELL]))
    lab_page.run_all_cells(timeout_s=180)
    lab_page.assert_widgets_rendered()
    widget = WidgetDriver(lab_page)
    widget.root.scroll_into_view_if_needed()
    widget.expect(widget.root.locator(".alwidget-card")).to_have_count(10, timeout=60_000)
    widget.root.locator(".alwidget-card-focused").click()  # keys go to the widget

    pressed = {}
    for key in "4071826":
        shown = widget.focused_id()  # the page's own focus, moved on by the last press
        assert shown not in pressed, f"the page showed {shown} again"
        pressed[shown] = key
        widget.page.keyboard.press(key)  # no wait for the kernel's answer
    widget.wait_labeled(len(pressed))
    stored = json.loads(widget.page.locator(".stored-labels").inner_text())
    assert stored == pressed, (stored, pressed)
    widget.expect(widget.root.locator(".alwidget-card-done")).to_have_count(0, timeout=15_000)
    assert not set(pressed) & set(widget.strip_ids())
    assert widget.page.locator(".alwidget-focus-preview").count() == 0  # kernel caught up
    widget.assert_no_errors()
