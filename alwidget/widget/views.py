"""The widget's views and how traits are drawn into them (a mixin of :class:`Widget`).

Each ``_render_*`` method observes specific traits; the traits stay the source of truth.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from . import keys as keymod
from .panels import STYLE, LearningCurve, accuracy_name, counts_html, why_html
from .queue import clamp_focus
from .strip import BatchStrip


class WidgetViews:
    """Builds the child widgets of :class:`alwidget.widget.app.Widget` and renders its traits."""

    def _build_views(self) -> None:
        self.key_catcher = keymod.KeyCatcher(list(self.key_map) + [keymod.SKIP_KEY, keymod.UNDO_KEY,
                                                            keymod.NEXT_KEY, keymod.PREVIOUS_KEY])
        self.key_catcher.on_key(lambda key, focused_key: self._guarded(self.press_key, key, focused_key))
        self.strip = BatchStrip()
        self.strip.on_focus(lambda index, key: self._guarded(self.focus, index, key))
        self.focus_image = widgets.Image(
            format="png", layout=widgets.Layout(width="240px", height="240px", object_fit="contain"))
        self.focus_html = widgets.HTML()
        self.label_buttons: dict[str, widgets.Button] = {}
        for name in self.session.classes:
            self.label_buttons[name] = self._class_button(name)
        self.new_class_text = widgets.Text(placeholder="new class", layout=widgets.Layout(width="140px"))
        self.new_class_button = widgets.Button(description="Add & label", icon="plus",
                                               tooltip="add this class and label the focused item with it")
        self.new_class_button.on_click(lambda _b: self._guarded(self.label_new_class, self.new_class_text.value))
        self.skip_button = widgets.Button(description="Skip (s)", icon="forward")
        self.skip_button.on_click(lambda _b: self._guarded(self.skip))
        self.undo_button = widgets.Button(description="Undo (u)", icon="undo")
        self.undo_button.on_click(lambda _b: self._guarded(self.undo))
        self.retrain_button = widgets.Button(description="Retrain", icon="refresh", button_style="primary")
        self.retrain_button.on_click(lambda _b: self._guarded(self.retrain))
        self.train_progress = widgets.FloatProgress(min=0.0, max=1.0, layout=widgets.Layout(width="200px"))
        self.train_status = widgets.Label("", layout=widgets.Layout(width="auto", margin="0 0 0 8px"))
        self.auto_retrain_box = widgets.BoundedIntText(
            min=0, max=100_000, layout=widgets.Layout(width="70px"),
            tooltip="retrain after this many new labels (0 = off)",
        )
        widgets.link((self, "auto_retrain_every"), (self.auto_retrain_box, "value"))
        self.why = widgets.HTML(layout=widgets.Layout(width="360px"))
        self.counts = widgets.HTML()
        self.learning_curve = LearningCurve()
        self.status_label = widgets.Label("")
        self.error_banner = widgets.HTML()
        self.errors = widgets.Output(layout=widgets.Layout(max_height="160px", overflow="auto"))
        self.errors.add_class("alwidget-errors")

        title = widgets.HTML(
            f"<b>alwidget</b> · strategy <code>{html.escape(self.session.strategy)}</code> · "
            f"{len(self.session.pool)} items · batch of {self.batch_size}"
        )
        focus_box = widgets.VBox(
            [self.focus_image, self.focus_html],
            layout=widgets.Layout(min_width="260px", align_items="center"),
        )
        self.label_row = widgets.HBox(list(self.label_buttons.values()), layout=widgets.Layout(flex_flow="row wrap"))
        new_class_row = widgets.HBox([self.new_class_text, self.new_class_button],
                                     layout=widgets.Layout(display="flex" if self.allow_new_classes else "none"))
        left = widgets.VBox([focus_box, self.label_row, new_class_row,
                             widgets.HBox([self.skip_button, self.undo_button]), self.error_banner])
        training_row = widgets.HBox(
            [self.retrain_button, self.train_progress, self.train_status],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
        )
        auto_row = widgets.HBox(
            [widgets.Label("Auto-retrain every"), self.auto_retrain_box, widgets.Label("new labels (0 = off)")],
            layout=widgets.Layout(align_items="center"),
        )
        self.children = [
            widgets.HTML(STYLE),
            widgets.HBox([title, self.key_catcher, self.status_label], layout=widgets.Layout(
                justify_content="space-between", align_items="center")),
            self.strip,
            widgets.HBox([left, self.why]),
            training_row,
            auto_row,
            widgets.HBox([self.counts, self.learning_curve.figure]),
            self.errors,
        ]
        self.observe(self._render_queue, names=["queue", "focused"])
        self.observe(self._render_training, names=["training"])
        self.observe(self._render_counts, names=["n_labels", "labels_since_retrain", "model_version", "stale"])
        self.observe(self._render_status, names=["status"])
        self.observe(self._render_error, names=["last_error"])

    def _class_button(self, name: str) -> widgets.Button:
        hint = next((key for key, class_name in self.key_map.items() if class_name == name), None)
        button = widgets.Button(
            description=name if hint in (None, name) else f"{name} ({hint})",
            tooltip=f"label as {name}" + (f" — key {hint}" if hint else ""),
            layout=widgets.Layout(width="auto", min_width="44px"),
        )
        button.on_click(lambda _b: self._guarded(self.label, name))
        return button

    def _show_new_class(self, name: str) -> None:
        """A button (and, if one is free, a key) for a class added while labeling."""
        free_key = next((key for key in keymod.DEFAULT_LABEL_KEYS if key not in self.key_map), None)
        if free_key is not None:
            self.key_map[free_key] = name
            self.key_catcher.watched_keys = [*self.key_catcher.watched_keys, free_key]
        self.label_buttons[name] = self._class_button(name)
        self.label_row.children = list(self.label_buttons.values())

    def _render_queue(self, _change=None) -> None:
        with self._lock:
            queue, index = list(self.queue), clamp_focus(self.focused, len(self.queue))
            cards = [self._card(item) for item in queue]
            if queue:
                self.strip.empty_message = ""
            self.strip.cards = cards
            self.strip.focused = index
            detail = queue[index] if queue else None
            rendered = self._rendered.get(detail.id) if detail is not None else None
            if rendered is not None and rendered.kind == "image":
                self.focus_image.value = rendered.focus_png
                self.focus_image.layout.display = None
                self.focus_html.value = ""
            else:
                self.focus_image.layout.display = "none"
                self.focus_html.value = rendered.focus_html if rendered is not None else ""
            self.why.value = why_html(detail, strategy=self.session.strategy,
                                      ranked_by=None if detail is None else self._ranked_by.get(detail.id),
                                      current_model_version=self.session.model_version)
            for button in (*self.label_buttons.values(), self.skip_button):
                button.disabled = detail is None
            if detail is None:
                self.key_catcher.request_focus()  # see _render_training

    def _card(self, item) -> dict:
        rendered = self._rendered[item.id]
        return {
            "key": str(item.id), "rank": item.pool_rank, "score": f"{item.score:.3f}",
            "predicted": item.predicted, "kind": rendered.kind,
            "thumbnail": rendered.thumbnail_data_url, "snippet": rendered.snippet,
        }

    def _render_training(self, change) -> None:
        self.retrain_button.disabled = change["new"]
        self.retrain_button.description = "Training…" if change["new"] else "Retrain"
        if change["new"]:
            # The browser drops focus from a button that becomes disabled; keep keys working.
            self.key_catcher.request_focus()

    def _render_counts(self, _change=None) -> None:
        history = self.session.history
        accuracy = history[-1].get("accuracy") if history else None
        self.counts.value = counts_html(
            self.session.label_counts(), n_labels=self.n_labels, since_retrain=self.labels_since_retrain,
            model_version=self.model_version, stale=self.stale, accuracy=accuracy,
            accuracy_name=accuracy_name(self._has_held_out),
        )

    def _render_status(self, change) -> None:
        self.status_label.value = change["new"]

    def _render_error(self, change) -> None:
        message = change["new"]
        self.error_banner.value = f'<div class="alwidget-error-text">⚠ {html.escape(message)}</div>' if message else ""
