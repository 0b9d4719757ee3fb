"""``PanelViews``: the labeling panel's child widgets and how its traits are drawn into them.

Each ``_render_*`` method observes specific traits of the panel (``observe(..., names=[...])``)
and redraws only its part; the traits stay the source of truth. Buttons and keys call the
panel's public methods through its error guard.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from . import keys as keymod
from . import suspects
from .panels import (
    STYLE,
    LearningCurve,
    accuracy_name,
    counts_html,
    pseudo_labels_html,
    why_html,
)
from .parts import PanelParts
from .queue import clamp_focus
from .render import render_pool_item
from .strip import FOCUS_BOX_CLASS, WHY_CLASS, BatchStrip


def strategy_names(current: str) -> list[str]:
    """Every registered strategy (the session's own included, even if registered later)."""
    from ..strategies import available

    names = available()
    return names if current in names else [current, *names]


# Cards the strip shows at most: a long queue ("label these next" on a big lasso) scrolls
# through a window that follows the focus instead of drawing hundreds of thumbnails.
MAX_CARDS = 30


def strip_window(focused: int, length: int, size: int = MAX_CARDS) -> tuple[int, int]:
    """``(first, stop)`` of the queue positions shown: the focus, two before it, then on."""
    first = max(0, min(focused - 2, length - size))
    return first, min(length, first + size)


class PanelViews:
    """Builds the child widgets of :class:`alwidget.widget.app.Widget` and renders its traits.

    Parameters
    ----------
    panel : alwidget.Widget
        Whose traits are drawn and whose public methods the controls call.
    book : QueueBook
        Rendered items and which model ranked each (read only).
    lock : threading.RLock
        The panel's lock, so a redraw sees the queue and the focus of one moment.
    guard : ErrorGuard
        Runs the controls' callbacks; its log is shown at the bottom.
    """

    # The child widgets a panel exposes as its own attributes (``widget.strip``, ...).
    PARTS = (
        "main_row",
        "key_catcher",
        "strip",
        "focus_image",
        "focus_html",
        "label_buttons",
        "label_row",
        "new_class_text",
        "new_class_button",
        "skip_button",
        "undo_button",
        "retrain_button",
        "train_progress",
        "train_status",
        "auto_retrain_box",
        "why",
        "counts",
        "pseudo_labels",
        "pseudo_labels_switch",
        "learning_curve",
        "status_label",
        "strategy_picker",
        "compare_button",
        "compare_box",
        "scoring_note",
        "error_banner",
        "errors",
    )

    def __init__(self, parts: PanelParts):
        self._panel, self._session = parts.panel, parts.session
        self._book, self._lock, self._guard = parts.book, parts.lock, parts.guard
        self._has_held_out = self._session.pool.test is not None
        self._build_controls()
        self.children = self._layout()
        self._observe()
        # The traits start at their defaults, so no change fires for those: draw them once.
        self._render_counts()
        self._render_curve()

    def _build_controls(self) -> None:
        panel, run = self._panel, self._guard.run
        watched = [
            *panel.key_map,
            keymod.SKIP_KEY,
            keymod.UNDO_KEY,
            keymod.NEXT_KEY,
            keymod.PREVIOUS_KEY,
        ]
        self.key_catcher = keymod.KeyCatcher(
            watched, advancing_keys=[*panel.key_map, keymod.SKIP_KEY]
        )
        self.key_catcher.on_key(lambda key, focused_key: run(panel.press_key, key, focused_key))
        self.strip = BatchStrip()
        self.strip.on_focus(lambda index, key: run(panel.focus, index, key))
        self.focus_image = widgets.Image(
            format="png", layout=widgets.Layout(width="240px", height="240px", object_fit="contain")
        )
        self.focus_html = widgets.HTML()
        self.label_buttons = {name: self._class_button(name) for name in self._session.classes}
        self.new_class_text = widgets.Text(
            placeholder="new class", layout=widgets.Layout(width="140px")
        )
        self.new_class_button = widgets.Button(
            description="Add & label",
            icon="plus",
            tooltip="add this class and label the focused item with it",
        )
        self.new_class_button.on_click(
            lambda _b: run(panel.label_new_class, self.new_class_text.value)
        )
        self.skip_button = self._button("Skip (s)", "forward", panel.skip)
        self.undo_button = self._button("Undo (u)", "undo", panel.undo)
        self.retrain_button = self._button("Retrain", "refresh", panel.retrain)
        self.retrain_button.button_style = "primary"
        self.train_progress = widgets.FloatProgress(
            min=0.0, max=1.0, layout=widgets.Layout(width="200px")
        )
        self.train_status = widgets.Label(
            "", layout=widgets.Layout(width="auto", margin="0 0 0 8px")
        )
        self.auto_retrain_box = widgets.BoundedIntText(
            min=0,
            max=100_000,
            layout=widgets.Layout(width="70px"),
            tooltip="retrain after this many new labels (0 = off)",
        )
        widgets.link((panel, "auto_retrain_every"), (self.auto_retrain_box, "value"))
        self.why = widgets.HTML(layout=widgets.Layout(width="360px"))
        self.counts = widgets.HTML()
        self.pseudo_labels = widgets.HTML()
        self.pseudo_labels_switch = widgets.Checkbox(
            value=bool(self._session.train_config.pseudo_labels),
            description="train with pseudo-labels",
            indent=False,
            layout=widgets.Layout(width="auto", margin="0 0 0 16px"),
            tooltip="unlabeled items the model is sure of join the next retrain with their "
            "predicted class (weighted below yours; never stored as labels)",
        )
        self.pseudo_labels_switch.observe(
            lambda change: self._guard.run(self._use_pseudo_labels, change["new"]),
            names=["value"],
        )
        self.learning_curve = LearningCurve()
        self.status_label = widgets.Label("")
        self.strategy_picker = widgets.Dropdown(
            options=strategy_names(self._session.strategy),
            value=self._session.strategy,
            layout=widgets.Layout(width="150px"),
            tooltip="the strategy that ranks the next batches",
        )
        self.strategy_picker.observe(self._pick_strategy, names=["value"])
        self.compare_button = widgets.ToggleButton(
            description="Compare strategies",
            icon="columns",
            tooltip="what two more strategies would pick now, from the same model",
        )
        self.compare_button.observe(
            lambda change: self._guard.run(self._panel.show_comparison, change["new"]),
            names=["value"],
        )
        self.compare_box = widgets.VBox()
        self.scoring_note = widgets.HTML(layout=widgets.Layout(margin="0 0 0 4px"))
        self.error_banner = widgets.HTML()
        self.errors = self._guard.log

    def _layout(self) -> list:
        session, panel = self._session, self._panel
        title = widgets.HBox(
            [
                widgets.HTML("<b>alwidget</b> · strategy"),
                self.strategy_picker,
                widgets.HTML(f"· {len(session.pool):,} items · batch of {panel.batch_size}"),
                self.compare_button,
            ],
            layout=widgets.Layout(align_items="center"),
        )
        focus_box = widgets.VBox(
            [self.focus_image, self.focus_html],
            layout=widgets.Layout(min_width="260px", align_items="center"),
        )
        # The strip shows the next item here while the kernel's answer to a key is on its way.
        focus_box.add_class(FOCUS_BOX_CLASS)
        self.why.add_class(WHY_CLASS)
        self.label_row = widgets.HBox(
            list(self.label_buttons.values()), layout=widgets.Layout(flex_flow="row wrap")
        )
        new_class_row = widgets.HBox(
            [self.new_class_text, self.new_class_button],
            layout=widgets.Layout(display="flex" if panel.allow_new_classes else "none"),
        )
        left = widgets.VBox(
            [
                focus_box,
                self.label_row,
                new_class_row,
                widgets.HBox([self.skip_button, self.undo_button]),
                self.error_banner,
            ]
        )
        training_row = widgets.HBox(
            [self.retrain_button, self.train_progress, self.train_status],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
        )
        auto_row = widgets.HBox(
            [
                widgets.Label("Auto-retrain every"),
                self.auto_retrain_box,
                widgets.Label("new labels (0 = off)"),
                self.pseudo_labels_switch,
            ],
            layout=widgets.Layout(align_items="center"),
        )
        header = widgets.HBox(
            [title, self.key_catcher, self.status_label],
            layout=widgets.Layout(justify_content="space-between", align_items="center"),
        )
        self.column = column = widgets.VBox(
            [
                header,
                self.strip,
                self.scoring_note,
                widgets.HBox([left, self.why]),
                training_row,
                auto_row,
                self.compare_box,
                widgets.HBox(
                    [widgets.VBox([self.counts, self.pseudo_labels]), self.learning_curve.box]
                ),
                self.errors,
            ]
        )
        # The map is appended to this row (MapLink), so attaching it adds a view and
        # re-renders nothing: a re-created view of the learning curve's FigureWidget
        # dropped every later update ("Error setting state ... reading 'length'").
        self.main_row = widgets.HBox([column], layout=widgets.Layout(align_items="flex-start"))
        return [widgets.HTML(STYLE), self.main_row]

    def add_to_column(self, *children) -> None:
        """Put more rows (say the cleaning tools) in the panel's column, above the error log."""
        rows = list(self.column.children)
        at = rows.index(self.errors)
        self.column.children = (*rows[:at], *children, *rows[at:])

    def _observe(self) -> None:
        observe = self._panel.observe
        observe(self._render_queue, names=["queue", "focused", "empty_message"])
        observe(self._render_training, names=["training"])
        observe(self._render_training_progress, names=["training_progress"])
        observe(
            self._render_counts,
            names=["n_labels", "labels_since_retrain", "model_version", "stale"],
        )
        # Once per retrain, from the job that applies it: a second plotly edit right after the
        # first (say on model_version, from the kernel's thread) left the chart blank in
        # JupyterLab.
        observe(self._render_curve, names=["validation_points"])
        observe(self._render_curve, names=["evaluated_version"])
        observe(self._render_counts, names=["evaluated_version"])
        observe(self._render_pseudo_labels, names=["model_version"])
        observe(self._render_status, names=["status"])
        observe(self._render_scoring_note, names=["scoring_note"])
        observe(self._render_error, names=["last_error"])

    def _button(self, description: str, icon: str, action) -> widgets.Button:
        button = widgets.Button(description=description, icon=icon)
        button.on_click(lambda _b: self._guard.run(action))
        return button

    def _class_button(self, name: str) -> widgets.Button:
        key_map = self._panel.key_map
        hint = next((key for key, class_name in key_map.items() if class_name == name), None)
        button = widgets.Button(
            description=name if hint in (None, name) else f"{name} ({hint})",
            tooltip=f"label as {name}" + (f" — key {hint}" if hint else ""),
            layout=widgets.Layout(width="auto", min_width="44px"),
        )
        button.on_click(lambda _b: self._guard.run(self._panel.label, name))
        return button

    def show_class(self, name: str) -> None:
        """A button (and, if one is free, a key) for a class added while labeling; clears
        the new-class box."""
        self.new_class_text.value = ""
        if name in self.label_buttons:
            return
        key_map = self._panel.key_map
        free_key = next((key for key in keymod.DEFAULT_LABEL_KEYS if key not in key_map), None)
        if free_key is not None:
            key_map[free_key] = name
            self.key_catcher.watched_keys = [*self.key_catcher.watched_keys, free_key]
            self.key_catcher.advancing_keys = [*self.key_catcher.advancing_keys, free_key]
        self.label_buttons[name] = self._class_button(name)
        self.label_row.children = list(self.label_buttons.values())

    def _render_queue(self, _change=None) -> None:
        panel = self._panel
        with self._lock:
            queue, index = list(panel.queue), clamp_focus(panel.focused, len(panel.queue))
            first, last = strip_window(index, len(queue))
            cards = [
                self._card(item, rank) for rank, item in enumerate(queue) if first <= rank < last
            ]
            self.strip.empty_message = "" if queue else panel.empty_message
            self.strip.more = len(queue) - last
            self.strip.cards = cards
            self.strip.focused = index - first
            detail = queue[index] if queue else None
            rendered = self._book.rendered.get(detail.id) if detail is not None else None
            if rendered is not None and rendered.focus_png:
                self.focus_image.value = rendered.focus_png
                self.focus_image.layout.display = None
                self.focus_html.value = ""
            else:
                self.focus_image.layout.display = "none"
                self.focus_html.value = rendered.focus_html if rendered is not None else ""
            ranked_by = None if detail is None else self._book.ranked_by.get(detail.id)
            self.why.value = suspects.badge_html(detail) + why_html(
                detail,
                strategy=self._book.picked_by.get(
                    None if detail is None else detail.id, self._session.strategy
                ),
                ranked_by=ranked_by,
                current_model_version=self._session.model_version,
            )
            for button in (*self.label_buttons.values(), self.skip_button):
                button.disabled = detail is None
            if detail is None:
                self.key_catcher.request_focus()  # see _render_training

    def _card(self, item, position: int) -> dict:
        rendered = self._book.rendered[item.id]
        return {
            "key": str(item.id),
            "index": position,
            # The place in the queue: unique and in order (pool ranks of batches fetched at
            # different times repeat); the pool rank is in the tooltip and "Why this item?".
            "rank": position + 1,
            "pool_rank": f"{item.pool_rank} of {item.n_scored}",
            "score": f"{item.score:.3f}",
            "predicted": item.predicted,
            **suspects.card_fields(item),
            "kind": rendered.kind,
            "thumbnail": rendered.thumbnail_data_url,
            "snippet": rendered.snippet,
        }

    def _render_training(self, change) -> None:
        self.retrain_button.disabled = change["new"]
        self.retrain_button.description = "Training…" if change["new"] else "Retrain"
        if change["new"]:
            # The browser drops focus from a button that becomes disabled; keep keys working.
            self.key_catcher.request_focus()

    def _render_training_progress(self, change) -> None:
        info = change["new"]
        phase = info.get("phase")
        if phase == "started":
            self.train_progress.bar_style = ""
            self.train_progress.value = 0.0
            self.train_status.value = f"training on {info['n_labels']} labels…"
        elif phase == "running":
            self.train_progress.value = info["fraction"]
            member = (
                f"member {info['member'] + 1}/{info['members']} · " if info["members"] > 1 else ""
            )
            self.train_status.value = (
                f"{member}step {info['step']}/{info['total_steps']} · loss {info['loss']:.3f}"
            )
        elif phase == "scoring":
            self.train_progress.value = info.get("fraction", 1.0)
            counted = f" {info['done']:,} / {info['total']:,}" if "total" in info else ""
            self.train_status.value = f"trained; ranking the pool with the new model…{counted}"
        elif phase == "done":
            self.train_progress.value = 1.0
            self.train_progress.bar_style = "success"
            self.train_status.value = (
                f"model v{info['model_version']}: {info['n_labels']} labels, "
                f"{info['steps']} steps, loss {info['train_loss']:.3f}, {info['seconds']:.1f} s"
            )
        elif phase == "cross-validating":
            self.train_progress.bar_style = "info"
            self.train_progress.value = info["fraction"]
            self.train_status.value = (
                f"estimating accuracy: fold {info['member'] + 1}/{info['members']}, "
                f"step {info['step']}/{info['total_steps']}…"
            )
        elif phase == "validated":
            self.train_progress.value = 1.0
            self.train_progress.bar_style = "success"
            self.train_status.value = (
                f"model v{info['model_version']}: {info['n_labels']} labels, "
                f"{info['folds']}-fold cross-validated accuracy {info['accuracy']:.1%}"
            )
        elif phase == "failed":
            self.train_progress.bar_style = "danger"
            self.train_status.value = f"training failed; keeping model v{info['model_version']}"

    def _render_counts(self, _change=None) -> None:
        panel, history = self._panel, self._session.history
        accuracy = history[-1].get("accuracy") if history else None
        self.counts.value = counts_html(
            self._session.label_counts(),
            n_labels=panel.n_labels,
            since_retrain=panel.labels_since_retrain,
            model_version=panel.model_version,
            stale=panel.stale,
            accuracy=accuracy,
            accuracy_name=accuracy_name(self._has_held_out),
        )

    def _render_curve(self, _change=None) -> None:
        self.learning_curve.update(
            self._session.history, self._panel.validation_points, held_out=self._has_held_out
        )

    def _pick_strategy(self, change) -> None:
        name = change["new"]
        if name == self._session.strategy:
            return
        self._guard.run(self._panel.set_strategy, name)
        if self._session.strategy != name:
            self.strategy_picker.value = self._session.strategy  # refused: show what ranks

    def _render_pseudo_labels(self, _change=None) -> None:
        summary = self._session.pseudo_labels(sample=12)
        pictures = {}
        for entry in summary["sample"]:
            rendered = self._book.rendered.get(entry["id"]) or render_pool_item(
                self._session.pool, entry["id"]
            )
            pictures[entry["id"]] = (
                ("img", rendered.thumbnail_data_url)
                if rendered.thumbnail_data_url
                else ("text", rendered.snippet)
            )
        self.pseudo_labels.value = pseudo_labels_html(summary, pictures)

    def _use_pseudo_labels(self, on: bool) -> None:
        self._session.train_config.pseudo_labels = bool(on)
        self._panel.status = (
            "pseudo-labels on: the next retrain adds the unlabeled items the model is sure of"
            if on
            else "pseudo-labels off from the next retrain"
        )

    def _render_scoring_note(self, change) -> None:
        note = change["new"]
        self.scoring_note.value = (
            f'<div class="alwidget-status">{html.escape(note)}</div>' if note else ""
        )

    def _render_status(self, change) -> None:
        self.status_label.value = change["new"]

    def _render_error(self, change) -> None:
        message = change["new"]
        self.error_banner.value = (
            f'<div class="alwidget-error-text">⚠ {html.escape(message)}</div>' if message else ""
        )
