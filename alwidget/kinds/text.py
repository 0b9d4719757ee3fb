"""Texts: a list of strings, trained on TF-IDF features fitted on the pool's own texts.

Strings that name media files are not taken for texts (see :mod:`alwidget.kinds.media`);
``al.Pool(strings, kind="text")`` takes them anyway.
"""

from __future__ import annotations

import html

import numpy as np

from ..errors import InvalidArgumentError
from .base import (
    SNIPPET_CHARS,
    InputEncoder,
    PoolItems,
    RenderedItem,
    scrolling_pane_html,
    shorten,
    wrong_items,
)
from .items import ListItems
from .media import first_media_path

__all__ = ["TextKind", "text_hover", "HOVER_TEXT_CHARS", "TFIDF_MAX_FEATURES"]

HOVER_TEXT_CHARS = 160
TFIDF_MAX_FEATURES = 4096
_HOVER_LINE_CHARS = 50


def text_hover(text: str, limit: int = HOVER_TEXT_CHARS) -> str:
    """A text item made safe for plotly hover labels: escaped, shortened, wrapped every ~50
    characters (hover labels render a subset of HTML, so raw text could inject tags)."""
    flat = shorten(text, limit)
    lines = [
        html.escape(flat[start : start + _HOVER_LINE_CHARS])
        for start in range(0, len(flat), _HOVER_LINE_CHARS)
    ]
    return "<br>".join(lines)


def _all_strings(items) -> bool:
    return (
        isinstance(items, (list, tuple))
        and len(items) > 0
        and all(isinstance(item, str) for item in items)
    )


class TextKind:
    """Plain strings, one per item."""

    name = "text"
    description = "lists of strings"

    def detect(self, items) -> bool:
        return _all_strings(items) and first_media_path(items) is None

    def read(self, items) -> PoolItems:
        if not _all_strings(items):
            raise wrong_items(self, items)
        return ListItems(items)

    def input_encoder(self, items: PoolItems) -> InputEncoder:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(max_features=TFIDF_MAX_FEATURES, sublinear_tf=True)
        try:
            vectorizer.fit(items.batch(np.arange(len(items))))
        except ValueError as error:  # scikit-learn: "empty vocabulary"
            raise InvalidArgumentError(
                f"items: none of the {len(items)} texts has a word (TF-IDF counts words of two "
                "or more letters or digits), so there are no features to learn from; give "
                "texts with words, or pass features= (an array or a function) as model inputs"
            ) from error
        return InputEncoder(lambda texts: vectorizer.transform(texts).toarray().astype(np.float32))

    def default_model(self, input_shape: tuple[int, ...]) -> str:
        return "mlp"

    def render(self, item) -> RenderedItem:
        text = str(item)
        return RenderedItem(
            self.name,
            snippet=shorten(text, SNIPPET_CHARS),
            focus_html=f'<div class="alwidget-text">{html.escape(text)}</div>',
        )

    def pane_html(self, item) -> str:
        return scrolling_pane_html(self.render(item).focus_html)

    def hover_texts(self, pool) -> list[str]:
        return [
            f"<b>{html.escape(str(item_id))}</b><br>{text_hover(pool.item(item_id))}"
            for item_id in pool.ids
        ]
