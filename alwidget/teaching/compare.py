"""``ComparePicks``: what two to four strategies would pick now, from one model state.

Every strategy scores the same candidates with the session's current model through the same
:func:`alwidget.session.acquire.acquire` the session's own queries use, each with its own
settings, so the session's strategy, queue and labels are left as they are. The batches are
shown as strips of thumbnails (or text snippets) and on one shared map.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ..errors import InvalidArgumentError, InvalidArgumentTypeError, PoolExhaustedError
from ..session import Session
from ..session.acquire import AcquisitionSettings, acquire
from ..session.checks import check_count, check_seed, check_strategy, mc_samples_for
from ..widget.plotly_widget import FigureWidget
from .layout import pool_layout
from .race import strategy_colour

__all__ = ["ComparePicks", "StrategyPicks", "pick_batches"]

_SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open")
_MAX_STRATEGIES = len(_SYMBOLS)


@dataclass(frozen=True)
class StrategyPicks:
    """One strategy's batch: pool ids in pick order, their scores, and the MC samples used."""

    strategy: str
    ids: list
    scores: np.ndarray
    mc_samples: int
    seconds: float


def _check_strategies(strategies) -> list[str]:
    if isinstance(strategies, str) or not hasattr(strategies, "__iter__"):
        raise InvalidArgumentTypeError(
            f"strategies must be a list of 2 to {_MAX_STRATEGIES} strategy names, e.g. "
            f"['entropy', 'bald'], got {strategies!r}"
        )
    names = list(strategies)
    if not 2 <= len(names) <= _MAX_STRATEGIES or len(set(names)) != len(names):
        raise InvalidArgumentError(
            f"strategies must name 2 to {_MAX_STRATEGIES} different strategies, got {names}"
        )
    for name in names:
        check_strategy(name)
    return names


def pick_batches(
    session: Session, strategies, batch_size: int, seed: int = 0, mc_samples: int | None = None
) -> list:
    """What each strategy would acquire now: one :class:`StrategyPicks` per strategy.

    Every strategy sees the same candidates (the unlabeled items, or the same random
    ``session.score_subset`` of them) and the same model version; the session is not changed.
    ``mc_samples`` overrides the MC samples of the strategies that need samples (default:
    each strategy's own, e.g. 20 for BALD and 50 for BatchBALD).

    Raises
    ------
    PoolExhaustedError
        Nothing is left to label.
    StrategyModelMismatchError
        A strategy needs MC samples the session's model cannot give.
    """
    import time

    names = _check_strategies(strategies)
    batch_size = check_count(batch_size, "batch_size", 1, "items per batch")
    pool = session.pool
    unlabeled = np.array([pool.position(i) for i in session.unlabeled_ids], dtype=np.int64)
    if len(unlabeled) == 0:
        raise PoolExhaustedError(f"every one of the {len(pool)} pool items is labeled")
    batch_size = min(batch_size, len(unlabeled))
    labeled = np.array([pool.position(i) for i in session.labeled_ids], dtype=np.int64)
    subset = session.score_subset
    if subset is not None and len(unlabeled) > subset:
        rng = np.random.default_rng(seed)
        unlabeled = np.sort(rng.choice(unlabeled, size=subset, replace=False))
    results = []
    for name in names:
        spec = check_strategy(name)
        wanted = mc_samples if spec.needs_samples else None
        samples = mc_samples_for(
            spec, name, wanted, dropout=session.model.has_dropout, ensemble=session.ensemble,
            model_name=session.model_name,
        )  # fmt: skip
        settings = AcquisitionSettings(name, spec, samples, None, np.random.default_rng(seed))
        started = time.perf_counter()
        result = acquire(
            session.model, settings, unlabeled, batch_size=batch_size,
            labeled_positions=labeled, n_labels=session.n_labels,
        )  # fmt: skip
        chosen = result.selection.indices
        results.append(
            StrategyPicks(
                name, [pool.ids[p] for p in unlabeled[chosen]], result.selection.scores,
                samples, time.perf_counter() - started,
            )
        )  # fmt: skip
    return results


def _thumbnail(pool, item_id) -> widgets.Widget:
    rendered = pool.item_kind.render(pool.item(item_id))
    if rendered.thumbnail_png:
        picture = widgets.Image(value=rendered.thumbnail_png, format="png", width=56, height=56)
        picture.add_class("alwidget-compare-thumb")
        return picture
    snippet = widgets.HTML(
        f'<div class="alwidget-compare-snippet" style="width:110px;font-size:80%;'
        f'overflow:hidden;max-height:56px">{html.escape(rendered.snippet)}</div>'
    )
    return snippet


class ComparePicks:
    """Strips and a map of what each of two to four strategies would pick now.

    Parameters
    ----------
    session : Session
        Any session; its own strategy, queue and labels are not touched.
    strategies : list of str
        Two to four names from :func:`alwidget.strategies.available`.
    batch_size : int, optional
        Picks per strategy (default: the session's batch size).
    layout : {"auto", "data", "pca", "umap"} or array
        The shared map (see :func:`alwidget.teaching.layout.pool_layout`), computed once.
    max_map_points : int
        Pool points drawn grey under the picks (a random subsample of larger pools).
    seed : int
        Seeds random choices (``random``, the candidate subset) so a refresh of the same
        model shows the same picks.
    mc_samples : int, optional
        MC samples for the strategies that need them (default: each strategy's own).

    Attributes
    ----------
    picks : list of StrategyPicks
        The batches last computed (:meth:`refresh` recomputes them).

    Examples
    --------
    >>> compare = ComparePicks(session, strategies=["entropy", "bald", "batchbald"])
    >>> compare                       # shows strips and the map
    >>> compare.overlap()             # shared picks between strategies
    """

    def __init__(
        self,
        session: Session,
        strategies=("entropy", "bald", "batchbald"),
        *,
        batch_size: int | None = None,
        layout="auto",
        max_map_points: int = 3000,
        seed: int = 0,
        mc_samples: int | None = None,
    ):
        if not isinstance(session, Session):
            raise InvalidArgumentTypeError(
                f"session must be an alwidget.Session, got {type(session).__name__}"
            )
        self.session = session
        self.strategies = _check_strategies(strategies)
        self.batch_size = (
            session.batch_size if batch_size is None else check_count(batch_size, "batch_size")
        )
        self.seed = check_seed(seed)
        self.mc_samples = mc_samples
        self.coordinates_N_2, self.layout_name = pool_layout(session.pool, layout)
        rng = np.random.default_rng(seed)
        shown = min(len(session.pool), max(1, int(max_map_points)))
        self._background_rows = np.sort(rng.choice(len(session.pool), size=shown, replace=False))
        self.picks: list[StrategyPicks] = []
        self.error: BaseException | None = None
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self._build_widgets()
        self.refresh()

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        self.refresh_button = widgets.Button(
            description="Refresh", tooltip="recompute every strategy's batch from the current model"
        )
        self.refresh_button.on_click(lambda _: self.refresh_in_background())
        self.status = widgets.HTML()
        self.status.add_class("alwidget-compare-status")
        self.strips = widgets.VBox()
        map_figure = go.Figure(
            layout=go.Layout(
                width=560, height=460, margin=dict(l=10, r=10, t=40, b=10),
                template="plotly_white", legend=dict(orientation="h", y=-0.02),
                xaxis=dict(showticklabels=False, showgrid=False, zeroline=False),
                yaxis=dict(showticklabels=False, showgrid=False, zeroline=False),
                title=f"Each strategy's batch ({self.layout_name} layout)",
            )
        )  # fmt: skip
        background = self.coordinates_N_2[self._background_rows]
        map_figure.add_scatter(
            x=background[:, 0], y=background[:, 1], mode="markers", hoverinfo="skip",
            marker=dict(size=4, color="rgba(160,160,160,0.35)"), name="pool",
        )  # fmt: skip
        map_figure.add_scatter(
            x=[], y=[], mode="markers", marker=dict(size=5, color="#333"), name="labeled",
            hoverinfo="skip",
        )  # fmt: skip
        for index, name in enumerate(self.strategies):
            map_figure.add_scatter(
                x=[], y=[], mode="markers", name=name, hoverinfo="text",
                marker=dict(size=13, symbol=_SYMBOLS[index], color=strategy_colour(index),
                            line=dict(width=2.5)),
            )  # fmt: skip
        # traces in the constructor: plotly 7 drops traces added before a FigureWidget is shown
        self.map = FigureWidget(map_figure)
        self.widget = widgets.VBox(
            [widgets.HBox([self.refresh_button, self.status]),
             widgets.HBox([self.strips, self.map])]
        )  # fmt: skip
        self.widget.add_class("alwidget-compare")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ actions
    def refresh(self) -> list[StrategyPicks]:
        """Recompute every strategy's batch from the session's current model and redraw."""
        self.picks = pick_batches(
            self.session, self.strategies, self.batch_size, self.seed, self.mc_samples
        )
        self.error = None
        self._draw()
        return self.picks

    def refresh_in_background(self) -> None:
        """:meth:`refresh` in a thread (the Refresh button); errors are shown in the view."""
        if not self._busy.acquire(blocking=False):
            return

        def work():
            self.refresh_button.disabled = True
            self.status.value = "scoring…"
            try:
                self.refresh()
            except Exception as error:
                self.error = error
                self.status.value = (
                    '<span class="alwidget-compare-error" style="color:#b00">'
                    f"{html.escape(type(error).__name__)}: {html.escape(str(error))}</span>"
                )
            finally:
                self.refresh_button.disabled = False
                self._busy.release()

        self._thread = threading.Thread(target=work, name="alwidget-compare", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background refresh to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def overlap(self) -> dict:
        """``{(a, b): number of items both picked}`` for every pair of strategies."""
        sets = {picks.strategy: set(map(str, picks.ids)) for picks in self.picks}
        return {
            (first, second): len(sets[first] & sets[second])
            for index, first in enumerate(self.strategies)
            for second in self.strategies[index + 1 :]
        }

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        pool, session = self.session.pool, self.session
        rows = []
        for index, picks in enumerate(self.picks):
            title = widgets.HTML(
                f'<b style="color:{strategy_colour(index)}">{html.escape(picks.strategy)}</b>'
                f'<div style="font-size:80%;color:#555">K={picks.mc_samples}, '
                f"{picks.seconds:.2f} s</div>",
                layout=widgets.Layout(width="110px"),
            )
            strip = widgets.HBox(
                [_thumbnail(pool, item_id) for item_id in picks.ids],
                layout=widgets.Layout(flex_flow="row wrap", max_width="620px"),
            )
            row = widgets.HBox([title, strip])
            row.add_class("alwidget-compare-strip")
            rows.append(row)
        self.strips.children = rows
        labeled = np.array([pool.position(i) for i in session.labeled_ids], dtype=np.int64)
        with self.map.edit_lock, self.map.batch_update():
            labeled_points = self.coordinates_N_2[labeled]
            self.map.data[1].x, self.map.data[1].y = labeled_points[:, 0], labeled_points[:, 1]
            for index, picks in enumerate(self.picks):
                positions = [pool.position(i) for i in picks.ids]
                points = self.coordinates_N_2[positions]
                trace = self.map.data[2 + index]
                trace.x, trace.y = points[:, 0], points[:, 1]
                trace.text = [
                    f"{picks.strategy} #{rank + 1}: {i}" for rank, i in enumerate(picks.ids)
                ]
        shared = sum(self.overlap().values())
        self.status.value = (
            f'<span class="alwidget-compare-version" data-version="{session.model_version}">'
            f"model v{session.model_version}</span> · {session.n_labels} labels · "
            f"{self.batch_size} picks each · {shared} shared between pairs"
        )
