"""The side panels: why the focused item was picked, label progress, the learning curve.

Every function returning HTML escapes class names and item ids.
"""

from __future__ import annotations

import html
import math
import threading

import ipywidgets as widgets

PROBABILITY_ROWS = 10


def _escape(value) -> str:
    return html.escape(str(value))


def why_html(detail, *, strategy: str, ranked_by: int | None, current_model_version: int) -> str:
    """Explain one :class:`alwidget.ItemDetail`: probabilities, MC votes, BALD parts, pool rank.

    Parameters
    ----------
    detail : ItemDetail or None
        The focused item's explanation; ``None`` gives a placeholder.
    strategy : str
        The strategy that picked it.
    ranked_by : int or None
        Version of the model that scored the item.
    current_model_version : int
        The session's current model, to flag details computed by an older one.
    """
    if detail is None:
        return '<div class="alwidget-why"><i>No item in focus.</i></div>'
    probabilities = sorted(detail.probabilities.items(), key=lambda pair: -pair[1])[
        :PROBABILITY_ROWS
    ]
    bars = "".join(
        f'<tr><td class="alwidget-class">{_escape(name)}</td>'
        f'<td><div class="alwidget-bar" style="width:{max(1.0, 100 * p):.1f}px"></div></td>'
        f"<td>{p:.3f}</td></tr>"
        for name, p in probabilities
    )
    n_votes = sum(detail.votes.values())
    if strategy.startswith("cold start"):
        reason = (
            "<div><b>Why this item?</b> Cold start: it is a typical item of a region of the "
            "pool that no label covers yet (the model's scores are not worth much before it "
            "has seen every class); the model's current score is "
            f"{detail.score:.4f}"
            + (" (you prioritized it)" if detail.prioritized else "")
            + "</div>"
        )
    else:
        reason = (
            f"<div><b>Why this item?</b> strategy <code>{_escape(strategy)}</code>, "
            f"score {detail.score:.4f}, pool rank {detail.pool_rank} of {detail.n_scored} scored"
            + (" (you prioritized it)" if detail.prioritized else "")
            + "</div>"
        )
    parts = [
        '<div class="alwidget-why">',
        reason,
        f"<div>Predicted <b>{_escape(detail.predicted)}</b>"
        + (
            f" · ranked by model v{ranked_by} (now v{current_model_version}; retrained since)"
            if ranked_by is not None and ranked_by < current_model_version
            else ""
        )
        + "</div>",
        f'<table class="alwidget-probs">{bars}</table>',
    ]
    if n_votes > 1:
        votes = ", ".join(
            f"{_escape(name)}: {count}"
            for name, count in sorted(detail.votes.items(), key=lambda pair: -pair[1])
        )
        parts.append(f"<div>MC votes ({n_votes} samples): {votes}</div>")
        parts.append(
            f"<div>Entropy of the mean {detail.entropy_of_mean:.3f}"
            f" − mean entropy {detail.mean_entropy:.3f} = BALD {detail.bald:.3f} nats"
            "<br><small>High BALD: the samples disagree (model uncertainty); high mean entropy: "
            "each sample is unsure on its own (ambiguous item).</small></div>"
        )
    else:
        parts.append(f"<div>Predictive entropy {detail.entropy_of_mean:.3f} nats</div>")
    parts.append("</div>")
    return "".join(parts)


def counts_html(
    counts: dict,
    *,
    n_labels: int,
    since_retrain: int,
    model_version: int,
    stale: bool,
    accuracy: float | None,
    accuracy_name: str = "held-out accuracy",
) -> str:
    """Labeled count per class, labels since the last retrain, and whether the ranking is stale.

    Classes without a label are flagged: the model cannot predict them, and an accuracy
    measured without them (cross-validation on the labels) is marked unreliable.
    """
    missing = [name for name, count in counts.items() if count == 0]
    cells = "".join(
        f'<span class="alwidget-count{" alwidget-count-missing" if count == 0 else ""}"'
        f' title="{_escape(name)}"><span class="alwidget-class">{_escape(name)}</span>: '
        f"<b>{count}</b></span>"
        for name, count in counts.items()
    )
    model = "untrained model" if model_version == 0 else f"model v{model_version}"
    score = (
        ""
        if accuracy is None or (isinstance(accuracy, float) and math.isnan(accuracy))
        else (f", {_escape(accuracy_name)} {accuracy:.1%}")
    )
    if score and missing and accuracy_name != "held-out accuracy":
        score += (
            f' <span class="alwidget-stale">(unreliable: {len(missing)} class(es) unlabeled)</span>'
        )
    missing_note = (
        f'<div class="alwidget-missing">No labels yet for {len(missing)} class(es): '
        f"{_escape(', '.join(missing[:12]))}{' …' if len(missing) > 12 else ''} — the model "
        "cannot predict them; the cold start looks for them (or find one on the map).</div>"
        if missing
        else ""
    )
    stale_note = (
        f'<div class="alwidget-stale">Ranking stale: {since_retrain} label(s) arrived after '
        "the model that ranked this batch was trained. Retrain to use them.</div>"
        if stale
        else ""
    )
    return (
        f'<div class="alwidget-progress"><div><b>{n_labels}</b> labeled · '
        f"{since_retrain} since last retrain · "
        f"{model}{score}</div><div>{cells}</div>{missing_note}{stale_note}</div>"
    )


def pseudo_labels_html(summary: dict, pictures: dict) -> str:
    """The pseudo-labels the current model trained with: how many, per class, and a sample.

    Parameters
    ----------
    summary : dict
        :meth:`alwidget.Session.pseudo_labels` (``n``, ``n_candidates``, ``counts``,
        ``sample``).
    pictures : dict
        Item id → ``("img", data URL)`` or ``("text", snippet)``.
    """
    if not summary.get("n"):
        return ""
    counts = ", ".join(
        f"{_escape(name)}: {count}" for name, count in summary["counts"].items() if count
    )
    cards = []
    for entry in summary["sample"]:
        form, picture = pictures.get(entry["id"], ("text", ""))
        label = (
            f"→ {_escape(entry['predicted'])} · p {entry['confidence']:.2f}"
            f"<br><small>item {_escape(entry['id'])}</small>"
        )
        if form == "img":
            body = f'<img src="{picture}" alt="item {_escape(entry["id"])}">'
        else:
            body = f'<div class="alwidget-snippet">{_escape(picture)}</div>'
        cards.append(f'<div class="alwidget-pseudo-card">{body}<div>{label}</div></div>')
    return (
        '<details class="alwidget-pseudo"><summary>'
        f"<b>{summary['n']}</b> pseudo-labels of {summary['n_candidates']} unlabeled items "
        f"helped train this model ({counts}) — never stored as labels. A sample:</summary>"
        f'<div class="alwidget-pseudo-cards">{"".join(cards)}</div></details>'
    )


STYLE = """
<style>
.alwidget-why, .alwidget-progress { font-size: 12px; line-height: 1.45; }
.alwidget-probs td { padding: 0 4px; }
.alwidget-bar { height: 8px; background: var(--jp-brand-color1, #1976d2); }
.alwidget-count { display: inline-block; margin: 2px 6px 2px 0; padding: 0 6px; border-radius: 8px;
  background: var(--jp-layout-color2, #eee); }
.alwidget-stale { color: var(--jp-warn-color0, #b26a00); }
.alwidget-missing { color: var(--jp-warn-color0, #b26a00); }
.alwidget-pseudo { font-size: 12px; margin-top: 4px; }
.alwidget-pseudo-cards { display: flex; flex-wrap: wrap; gap: 6px; max-width: 560px; }
.alwidget-pseudo-card { width: 76px; font-size: 10px; text-align: center; }
.alwidget-pseudo-card img { width: 64px; height: 64px; object-fit: contain;
  image-rendering: pixelated; }
.alwidget-count-missing { outline: 1px dashed var(--jp-warn-color0, #b26a00); }
.alwidget-text { white-space: pre-wrap; font-size: 14px; max-width: 560px; max-height: 260px;
  overflow: auto;
  padding: 8px; border: 1px solid var(--jp-border-color2, #ddd); }
.alwidget-row th { text-align: left; padding-right: 10px; font-weight: normal;
  color: var(--jp-ui-font-color2, #555); }
.alwidget-item-error, .alwidget-error-text { color: var(--jp-error-color1, #d32f2f);
  white-space: pre-wrap; }
.alwidget-status { font-size: 12px; color: var(--jp-ui-font-color2, #555); }
</style>
"""


def accuracy_name(held_out: bool) -> str:
    """How the session's accuracy was measured: on the held-out split, or cross-validated."""
    return "held-out accuracy" if held_out else "cross-validated accuracy"


def _kernel_loop():
    """The running IPython kernel's main-thread event loop, or None outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    return getattr(kernel, "io_loop", None)


class LearningCurve:
    """A live plotly chart of accuracy (held-out or cross-validated) against the labels' count.

    :attr:`box` holds a placeholder until the chart is built: importing plotly's widget
    (plotly, nbformat, jsonschema) took 6 s of a 7 s widget construction on 60 000 MNIST
    images, in the cell the user waits on. In a kernel the chart is built on the kernel's
    own thread once the cell is done (:meth:`prepare`), never on a worker thread: importing
    plotly compiles validators, and CPython 3.11 fails another thread's concurrent compile
    ("AST constructor recursion depth mismatch"), which would break the user's next cell.
    """

    def __init__(self):
        self.box = widgets.Box(
            [
                widgets.HTML(
                    '<div class="alwidget-status">Learning curve: a point per retrain</div>'
                )
            ],
            layout=widgets.Layout(width="360px", min_height="220px"),
        )
        self.figure = None
        self._points: list[tuple[int, float]] = []
        self._redraw = None  # the newest update, drawn once the chart exists
        self._building = threading.Lock()

    def prepare(self) -> None:
        """Build the chart after the current cell (in a kernel), or now (elsewhere)."""
        loop = _kernel_loop()
        if loop is None:
            self._built_figure()
        else:
            loop.add_callback(self._built_figure)

    def _built_figure(self):
        with self._building:
            if self.figure is None:
                import plotly.graph_objects as go

                from .plotly_widget import FigureWidget

                self.figure = FigureWidget(
                    data=[go.Scatter(x=[], y=[], mode="lines+markers", name="held-out accuracy")],
                    layout=go.Layout(
                        height=220,
                        width=360,
                        margin={"l": 40, "r": 10, "t": 30, "b": 35},
                        title={"text": "Learning curve", "font": {"size": 13}},
                        xaxis={"title": {"text": "labels"}, "rangemode": "tozero"},
                        yaxis={"title": {"text": "accuracy"}, "range": [0, 1]},
                    ),
                )
                self.box.children = (self.figure,)
                if self._redraw is not None:
                    self.figure.edit(self._redraw)
            return self.figure

    def update(self, history: list[dict], validation_points=(), *, held_out: bool = True) -> None:
        """Redraw from :attr:`alwidget.Session.history` (``n_labels`` and ``accuracy`` entries).

        ``held_out`` says whether that accuracy is on a held-out split (else the session
        cross-validated on the labels). When no run has an accuracy (cross-validation off or
        too few labels), each run's validation accuracy (labels held out of that run) is drawn:
        ``validation_points`` as ``(n_labels, accuracy)`` pairs.
        """
        points = [(h["n_labels"], h["accuracy"]) for h in history if h.get("accuracy") is not None]
        name = accuracy_name(held_out)
        axis = name
        if not points:
            points = [(n, acc) for n, acc in validation_points if acc is not None]
            if points:
                name, axis = (
                    "validation accuracy",
                    "validation accuracy (labels held out of training)",
                )

        self._points = points

        def redraw():
            figure = self.figure
            with figure.batch_update():
                figure.data[0].x = [x for x, _ in points]
                figure.data[0].y = [y for _, y in points]
                figure.data[0].name = name
                figure.layout.yaxis.title.text = axis
                figure.layout.title.text = (
                    "Learning curve" if points else "Learning curve (a point per retrain)"
                )

        with self._building:
            self._redraw = redraw
            figure = self.figure
        if figure is not None:
            # Retrains end in a background thread, which edits under the figure's lock.
            figure.edit(redraw)

    @property
    def points(self) -> list[tuple[int, float]]:
        """The ``(n_labels, accuracy)`` points drawn, in order."""
        return list(self._points)
