"""Every kind of pool item shows in the widget; user text never becomes markup."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fixtures.widget_sessions import FAST_TRAINING
from PIL import Image

import alwidget as al
from alwidget.widget.render import image_to_uint8, render_item

PAYLOAD = "<img src=x onerror=alert(1)>"


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def make_widget(pool, **session_kwargs) -> al.Widget:
    session_kwargs.setdefault("strategy", "entropy")
    session = al.Session(pool, seed=0, train_config=FAST_TRAINING, **session_kwargs)
    return al.Widget(session, batch_size=4).ready()


def test_grayscale_numpy_images_show_as_upscaled_pngs():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 16, size=(30, 8, 8)).astype(np.float32)
    widget = make_widget(al.Pool(images, targets=rng.integers(0, 2, 30), classes=["no", "yes"]))
    try:
        focus = decode(widget.focus_image.value)
        assert focus.size == (240, 240) and focus.mode == "L"
        card = widget.strip.cards[0]
        assert card["kind"] == "image" and card["thumbnail"].startswith("data:image/png;base64,")
        assert widget.focus_image.layout.display is None and widget.focus_html.value == ""
        expected = image_to_uint8(images[widget.session.pool.position(widget.focused_item.id)])
        shown = np.asarray(focus)[:: 240 // 8, :: 240 // 8]
        np.testing.assert_array_equal(shown, expected)
    finally:
        widget.close()


def test_rgb_numpy_images_keep_their_colours():
    images = np.zeros((12, 6, 4, 3), dtype=np.uint8)
    images[:, :, :, 0] = 255  # pure red
    widget = make_widget(al.Pool(images, targets=[0, 1] * 6, classes=["x", "y"]))
    try:
        focus = decode(widget.focus_image.value)
        assert focus.mode == "RGB" and focus.size == (160, 240)  # 6 rows × 4 columns
        assert focus.getpixel((10, 10)) == (255, 0, 0)
    finally:
        widget.close()


def test_image_files_show_and_a_corrupt_file_shows_a_clear_error(tmp_path):
    paths = []
    for index in range(10):
        path = tmp_path / f"img{index}.png"
        Image.fromarray(np.full((10, 10), index * 20, dtype=np.uint8)).save(path)
        paths.append(path)
    pool = al.Pool([str(p) for p in paths], targets=[0, 1] * 5, classes=["dark", "light"])
    # Without the cold start the widget's first batch is the one queried here (entropy ranks
    # deterministically); the cold start draws a fresh random sample for each query.
    session = al.Session(
        pool, seed=0, strategy="entropy", train_config=FAST_TRAINING, cold_start=False
    )
    first_id = session.query(4).ids[0]
    paths[pool.position(first_id)].write_bytes(
        b"this is not a png"
    )  # breaks after the pool was built
    widget = al.Widget(session, batch_size=4).ready()
    try:
        assert widget.focused_item.id == first_id
        card = widget.strip.cards[0]
        assert card["kind"] == "error" and "corrupt or unreadable image file" in card["snippet"]
        assert widget.focus_image.layout.display == "none"
        assert (
            "cannot be shown" in widget.focus_html.value
            and f"img{pool.position(first_id)}.png" in widget.focus_html.value
        )
        widget.skip()  # the user can move on
        assert decode(widget.focus_image.value).size == (240, 240)
    finally:
        widget.close()


def test_text_items_and_class_names_are_escaped():
    texts = [f"review {i}: fine" for i in range(20)]
    texts[0] = PAYLOAD
    pool = al.Pool(texts, targets=[PAYLOAD, "ok"] * 10, classes=[PAYLOAD, "ok"])
    session = al.Session(pool, seed=0, strategy="entropy", train_config=FAST_TRAINING)
    session.prioritize([0])
    widget = al.Widget(session, batch_size=4).ready()
    try:
        assert widget.focused_item.id == 0
        everything = (
            widget.why.value
            + widget.counts.value
            + widget.focus_html.value
            + widget.error_banner.value
        )
        assert PAYLOAD not in everything
        assert "&lt;img src=x onerror=alert(1)&gt;" in widget.focus_html.value
        assert "&lt;img src=x onerror=alert(1)&gt;" in widget.counts.value
        assert "&lt;img src=x onerror=alert(1)&gt;" in widget.why.value
        assert (
            widget.strip.cards[0]["snippet"] == PAYLOAD
        )  # the browser inserts it with textContent
        assert widget.label_buttons[PAYLOAD].description.startswith(
            PAYLOAD
        )  # drawn as text by ipywidgets
        widget.label(PAYLOAD)
        assert session.labels == {0: PAYLOAD}
    finally:
        widget.close()


def test_render_item_escapes_text_and_shortens_snippets():
    rendered = render_item("text", PAYLOAD + " and more " * 30)
    assert PAYLOAD not in rendered.focus_html and "&lt;img" in rendered.focus_html
    assert rendered.snippet.endswith("…") and len(rendered.snippet) <= 90
    row = render_item("tabular", np.array([1.5, -2.0, 3.25]))
    assert "<th>x0</th><td>1.5</td>" in row.focus_html and row.snippet == "1.5, -2, 3.25"


def test_tabular_rows_show_as_tables():
    rng = np.random.default_rng(1)
    widget = make_widget(
        al.Pool(
            rng.normal(size=(25, 3)).astype(np.float32),
            targets=rng.integers(0, 2, 25),
            classes=["n", "p"],
        )
    )
    try:
        assert widget.focus_image.layout.display == "none"
        assert widget.focus_html.value.startswith('<table class="alwidget-row">')
        assert (
            widget.strip.cards[0]["kind"] == "tabular" and widget.strip.cards[0]["thumbnail"] == ""
        )
    finally:
        widget.close()


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 4, 5)), np.array([[np.nan, 1.0]])])
def test_unshowable_arrays_raise_clear_errors(bad):
    with pytest.raises(ValueError, match="shape|NaN"):
        image_to_uint8(bad)
