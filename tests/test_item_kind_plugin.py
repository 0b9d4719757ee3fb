"""A new item kind, written outside the package, registered with one call and labeled in the
widget: 1-D signals of 64 samples, shown as small line plots drawn with PIL."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fixtures.widget_sessions import FAST_TRAINING
from PIL import Image, ImageDraw

import alwidget as al
import alwidget.kinds
from alwidget.widget.map_pane import item_html

SIGNAL_LENGTH = 64


def line_plot_png(signal: np.ndarray, size: int) -> bytes:
    """A black line on white, ``size`` pixels square, spanning the signal's range."""
    values = np.asarray(signal, dtype=np.float64)
    low, high = values.min(), values.max()
    span = (high - low) or 1.0
    margin = 2
    xs = np.linspace(margin, size - 1 - margin, len(values))
    ys = (size - 1 - margin) - (values - low) / span * (size - 1 - 2 * margin)
    picture = Image.new("L", (size, size), 255)
    ImageDraw.Draw(picture).line(list(zip(xs.tolist(), ys.tolist())), fill=0, width=1)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


class SignalKind:
    """Lists of 1-D numpy arrays of 64 samples each."""

    name = "signal"
    description = f"lists of 1-D numpy arrays of {SIGNAL_LENGTH} samples"

    def detect(self, items) -> bool:
        return (
            isinstance(items, list)
            and len(items) > 0
            and all(getattr(item, "shape", None) == (SIGNAL_LENGTH,) for item in items)
        )

    def read(self, items):
        if not self.detect(items):
            raise al.kinds.ItemKindError(f"the signal kind reads {self.description}")
        return al.kinds.ArrayItems(np.stack(items).astype(np.float32))

    def input_encoder(self, items):
        return al.kinds.InputEncoder(lambda batch: np.asarray(batch, dtype=np.float32))

    def default_model(self, input_shape):
        return "mlp"

    def render(self, item):
        return al.kinds.RenderedItem(
            self.name,
            thumbnail_png=line_plot_png(item, al.kinds.THUMBNAIL_PX),
            focus_png=line_plot_png(item, al.kinds.FOCUS_PX),
        )

    def pane_html(self, item):
        return al.kinds.png_pane_html(line_plot_png(item, al.kinds.FOCUS_PX), alt="signal")

    def hover_texts(self, pool):
        return al.kinds.ids_hover(pool.ids)


@pytest.fixture
def signal_kind():
    kind = al.kinds.register(SignalKind())
    yield kind
    al.kinds.unregister(kind)


def signals(n_items: int, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Sines and square waves of random frequency and phase, with their class names."""
    rng = np.random.default_rng(seed)
    time = np.linspace(0, 1, SIGNAL_LENGTH)
    items, targets = [], []
    for index in range(n_items):
        wave = np.sin(2 * np.pi * rng.uniform(2, 5) * time + rng.uniform(0, 2 * np.pi))
        is_square = index % 2 == 1
        items.append(np.sign(wave) if is_square else wave)
        targets.append("square" if is_square else "sine")
    return items, targets


def decode(data_url: str) -> Image.Image:
    png = base64.b64decode(data_url.split(",", 1)[1])
    return Image.open(io.BytesIO(png))


def test_registered_kind_is_detected_and_labeled_through_the_widget(signal_kind):
    items, targets = signals(40)
    pool = al.Pool(items, targets=targets, name="waves")
    assert pool.kind == "signal" and pool.item_kind is signal_kind
    assert pool.input_shape == (SIGNAL_LENGTH,)
    session = al.Session(
        pool, model="mlp", strategy="entropy", store=False, seed=0, train_config=FAST_TRAINING
    )
    widget = al.Widget(session, batch_size=4).ready()
    try:
        card = widget.strip.cards[0]
        focused = widget.focused_item.id
        assert card["kind"] == "signal" and card["key"] == str(focused)
        expected = signal_kind.render(pool.item(focused))
        assert card["thumbnail"] == expected.thumbnail_data_url
        assert decode(card["thumbnail"]).size == (al.kinds.THUMBNAIL_PX,) * 2
        assert widget.focus_image.value == expected.focus_png
        assert widget.focus_image.layout.display is None

        labeled = {}
        for _ in range(5):
            widget.wait(timeout=60)  # the strip refills in the background
            item_id = widget.focused_item.id
            widget.label(targets[pool.position(item_id)])
            labeled[item_id] = targets[pool.position(item_id)]
        widget.wait(timeout=60)
        skipped = widget.focused_item.id
        widget.skip()
        assert session.labels == labeled and skipped not in session.labels
        assert all(card["thumbnail"].startswith("data:image/png") for card in widget.strip.cards)
        assert 'alt="signal"' in item_html(pool, skipped, None, None)
    finally:
        widget.close()


def test_kind_object_skips_detection_without_registering():
    items, targets = signals(6)
    pool = al.Pool(items, targets=targets, kind=SignalKind())
    assert pool.kind == "signal" and al.kinds.get("tabular") is not pool.item_kind
    assert [kind.name for kind in al.kinds.registered()] == ["image", "text", "tabular"]
    assert al.Pool(items, targets=targets).kind == "tabular"  # unregistered: rows of numbers


def test_registry_does_not_leak_between_tests():
    assert [kind.name for kind in al.kinds.registered()] == ["image", "text", "tabular"]
