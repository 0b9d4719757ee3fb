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


def _nice_step(span: float, max_ticks: int) -> int:
    """A round tick step (1, 2, 5 × 10^k) giving at most ``max_ticks`` ticks over ``span``."""
    magnitude = 1
    while True:
        for step in (magnitude, 2 * magnitude, 5 * magnitude):
            if span / step <= max_ticks:
                return step
        magnitude *= 10


def _short_axis(axis: str) -> str:
    """The y axis's title without its parenthesis (the full text is its hover title)."""
    return axis.split(" (")[0]


class LearningCurve:
    """A small SVG chart of accuracy (held-out or cross-validated) against the labels' count.

    Plain SVG in an ``HTML`` widget, not a plotly figure: importing plotly's widget (plotly,
    nbformat, jsonschema, lark grammars) took 4 s on a quiet machine and 12 s under load,
    on the kernel's thread, and the page then parsed plotly's 5 MB bundle, all while the
    user waited for the first batch. A dozen points need none of that. Each point is a
    ``circle.alwidget-curve-point`` whose ``data-labels``/``data-accuracy`` attributes carry
    the values (and a hover title shows them).
    """

    WIDTH, HEIGHT = 360, 220
    _LEFT, _RIGHT, _TOP, _BOTTOM = 46, 12, 28, 36

    def __init__(self):
        self.box = widgets.HTML(
            self._svg([], accuracy_name(True)),
            layout=widgets.Layout(width=f"{self.WIDTH}px", min_height=f"{self.HEIGHT}px"),
        )
        self._points: list[tuple[int, float]] = []
        self._axis_title = accuracy_name(True)
        self._drawing = threading.Lock()  # retrains end on worker threads

    def update(self, history: list[dict], validation_points=(), *, held_out: bool = True) -> None:
        """Redraw from :attr:`alwidget.Session.history` (``n_labels`` and ``accuracy`` entries).

        ``held_out`` says whether that accuracy is on a held-out split (else the session
        cross-validated on the labels). When no run has an accuracy (cross-validation off or
        too few labels), each run's validation accuracy (labels held out of that run) is drawn:
        ``validation_points`` as ``(n_labels, accuracy)`` pairs.
        """
        points = [(h["n_labels"], h["accuracy"]) for h in history if h.get("accuracy") is not None]
        axis = accuracy_name(held_out)
        if not points:
            points = [(n, acc) for n, acc in validation_points if acc is not None]
            if points:
                axis = "validation accuracy (labels held out of training)"
        points = [(int(n), float(acc)) for n, acc in points]
        with self._drawing:
            if points == self._points and axis == self._axis_title:
                return  # the panel redraws on several events: resend nothing unchanged
            self._points, self._axis_title = points, axis
            self.box.value = self._svg(points, axis)

    @property
    def axis_title(self) -> str:
        """What the y axis measures (held-out, cross-validated or validation accuracy)."""
        return self._axis_title

    def _svg(self, points: list[tuple[int, float]], axis: str) -> str:
        left, right, top, bottom = self._LEFT, self._RIGHT, self._TOP, self._BOTTOM
        width, height = self.WIDTH, self.HEIGHT
        plot_w, plot_h = width - left - right, height - top - bottom
        x_top = max([n for n, _ in points] + [10])  # an empty chart still reads 0..10 labels
        step = _nice_step(x_top, 6)
        x_max = math.ceil(x_top / step) * step

        def sx(n: float) -> float:
            return left + plot_w * n / x_max

        def sy(acc: float) -> float:
            return top + plot_h * (1.0 - min(max(acc, 0.0), 1.0))

        parts = [
            f'<svg class="alwidget-curve" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="learning curve" '
            'style="font: 10px sans-serif; fill: var(--jp-ui-font-color1, #333);">',
            f'<text x="{width / 2:.0f}" y="14" text-anchor="middle" font-size="13">'
            f"{'Learning curve' if points else 'Learning curve (a point per retrain)'}</text>",
        ]
        for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            y = sy(tick)
            parts.append(
                f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#e5e5e5"/>'
                f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{tick:.1f}</text>'
            )
        for tick in range(0, x_max + 1, step):
            parts.append(
                f'<text x="{sx(tick):.1f}" y="{top + plot_h + 13}" text-anchor="middle">'
                f"{tick}</text>"
            )
        parts.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">'
            "labels</text>"
            f'<text transform="translate(11 {top + plot_h / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle">{html.escape(_short_axis(axis))}<title>'
            f"{html.escape(axis)}</title></text>"
        )
        if points:
            path = " ".join(f"{sx(n):.1f},{sy(acc):.1f}" for n, acc in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
            )
            for n, acc in points:
                parts.append(
                    f'<circle class="alwidget-curve-point" cx="{sx(n):.1f}" cy="{sy(acc):.1f}" '
                    f'r="3.5" fill="#1f77b4" data-labels="{n}" data-accuracy="{acc:.6f}">'
                    f"<title>{n} labels: {html.escape(axis)} {acc:.1%}</title></circle>"
                )
        parts.append("</svg>")
        return "".join(parts)

    @property
    def points(self) -> list[tuple[int, float]]:
        """The ``(n_labels, accuracy)`` points drawn, in order."""
        return list(self._points)
