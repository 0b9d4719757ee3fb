"""``Race``: strategies raced side by side with a simulated oracle, watched live in a notebook.

The race itself is a :class:`~alwidget.teaching.race_run.RaceRun`; this module only shows it.
One background thread steps the lanes (the kernel stays free, so play, pause, step and the
speed slider answer while a model trains) and redraws after every trained model: learning
curves with a band over the seeds, one small map per strategy showing where its labels went,
and a table of labels-to-threshold and area under the curve.
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..data import Pool
from ..embedding.figure import class_colour
from ..errors import InvalidArgumentError
from ..training import TrainConfig
from ..widget.plotly_widget import FigureWidget
from .layout import pool_layout
from .race_run import RaceRun

__all__ = ["Race", "strategy_colour"]

_BACKGROUND = "rgba(160, 160, 160, 0.35)"


def strategy_colour(index: int) -> str:
    """A stable colour per strategy position (plotly's qualitative palette)."""
    return qualitative.Plotly[index % len(qualitative.Plotly)]


def _band(colour: str) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, 0.18)"


def _format(value, pattern: str, missing: str) -> str:
    return missing if value is None else pattern.format(value)


class Race:
    """Several strategies, same pool, same seeds, a simulated oracle: watch them race.

    Parameters
    ----------
    pool : Pool
        A pool with ground truth (e.g. :func:`alwidget.datasets.two_moons`,
        :func:`~alwidget.datasets.load_digits`, :func:`~alwidget.datasets.load_mnist`).
    strategies : list of str
        Two to six names from :func:`alwidget.strategies.available`.
    seeds : list of int
        One run per strategy and seed; the curves' bands span the seeds (min to max).
    initial, batch_size, rounds : int
        Balanced initial labels, labels per acquisition, acquisitions per run.
    layout : {"auto", "data", "pca", "umap"} or array
        The shared map (see :func:`alwidget.teaching.layout.pool_layout`): the points
        themselves for 2-D pools, else PCA by default.
    threshold : float
        Accuracy for the "labels to reach" column.
    delay : float
        Seconds to wait between rounds while playing (the speed slider).
    model, mc_samples, train_config, score_subset
        As for :class:`alwidget.Session`, the same for every run.
    max_map_points : int
        Pool points drawn grey under each map (a random subsample of larger pools).
    autoplay : bool
        Start playing as soon as the race is built.

    Examples
    --------
    >>> race = al.Race(al.datasets.two_moons(), ["random", "entropy", "bald"], rounds=8)
    >>> race            # the last expression of a cell shows it; press ▶ Play
    >>> race.step()     # or drive it from Python: one round of every run
    >>> race.wait()
    """

    def __init__(
        self,
        pool: Pool,
        strategies=("random", "entropy", "bald"),
        *,
        seeds=(0, 1, 2),
        initial: int = 20,
        batch_size: int = 10,
        rounds: int = 10,
        layout="auto",
        threshold: float = 0.9,
        delay: float = 0.5,
        model=None,
        mc_samples: int | None = None,
        train_config: TrainConfig | None = None,
        score_subset: int | None = None,
        max_map_points: int = 2000,
        autoplay: bool = False,
    ):
        if isinstance(strategies, str) or len(list(strategies)) > 6:
            raise InvalidArgumentError(
                f"strategies must be a list of one to six names (the maps get small beyond "
                f"that), got {strategies!r}"
            )
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 10:
            raise InvalidArgumentError(f"delay must be seconds between 0 and 10, got {delay!r}")
        self.run = RaceRun(
            pool, strategies, seeds=seeds, initial=initial, batch_size=batch_size,
            rounds=rounds, model=model, mc_samples=mc_samples, train_config=train_config,
            score_subset=score_subset, threshold=threshold,
        )  # fmt: skip
        self.pool = pool
        self.coordinates_N_2, self.layout_name = pool_layout(pool, layout)
        rng = np.random.default_rng(0)
        shown = min(len(pool), max(1, int(max_map_points)))
        self._background_rows = np.sort(rng.choice(len(pool), size=shown, replace=False))
        self._state = threading.Condition()
        self._playing = False
        self._rounds_asked = 0  # rounds requested with Step, not yet run
        self._busy = False
        self._closing = False
        self.error: BaseException | None = None
        self._build_widgets(delay)
        self._redraw()
        self._thread = threading.Thread(target=self._loop, name="alwidget-race", daemon=True)
        self._thread.start()
        if autoplay:
            self.play()

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self, delay: float) -> None:
        names = self.run.strategies
        self.play_button = widgets.Button(description="▶ Play", tooltip="run round after round")
        self.step_button = widgets.Button(description="Step", tooltip="one round of every run")
        self.delay_slider = widgets.FloatSlider(
            value=float(delay), min=0.0, max=3.0, step=0.1, description="Delay (s)",
            tooltip="pause between rounds while playing", continuous_update=False,
        )  # fmt: skip
        self.seed_picker = widgets.Dropdown(
            options=self.run.seeds, value=self.run.seeds[0], description="Map seed",
            layout=widgets.Layout(width="170px"),
        )  # fmt: skip
        self.status = widgets.HTML()
        self.status.add_class("alwidget-race-status")
        self.error_text = widgets.HTML()
        self.error_text.add_class("alwidget-race-error-box")
        self.table = widgets.HTML()
        self.table.add_class("alwidget-race-table")
        self.play_button.on_click(lambda _: self.pause() if self._playing else self.play())
        self.step_button.on_click(lambda _: self.step())
        self.seed_picker.observe(lambda _: self._redraw(), names="value")

        curves = go.Figure(
            layout=go.Layout(
                height=330, margin=dict(l=50, r=10, t=40, b=40),
                title=f"Held-out accuracy · band: min–max over {len(self.run.seeds)} seeds",
                xaxis_title="labels", yaxis_title="accuracy", yaxis_range=[0, 1.02],
                legend=dict(orientation="h", y=-0.25), template="plotly_white",
            )
        )  # fmt: skip
        for index, name in enumerate(names):
            colour = strategy_colour(index)
            curves.add_scatter(
                x=[], y=[], fill="toself", fillcolor=_band(colour), line=dict(width=0),
                hoverinfo="skip", showlegend=False, name=f"{name} band",
            )  # fmt: skip
            curves.add_scatter(
                x=[], y=[], mode="lines+markers", line=dict(color=colour, width=2), name=name
            )
        curves.add_hline(
            y=self.run.threshold, line=dict(color="grey", dash="dot", width=1),
            annotation_text=f"{self.run.threshold:.0%}", annotation_position="bottom right",
        )  # fmt: skip

        # Every trace goes into the widget's constructor: plotly 7 does not keep traces added
        # to a FigureWidget before it is shown (only its views get them, as messages).
        self.curves = FigureWidget(curves)

        columns = min(3, len(names))
        rows = -(-len(names) // columns)
        figure = make_subplots(
            rows=rows, cols=columns, subplot_titles=names,
            horizontal_spacing=0.03, vertical_spacing=0.08,
        )  # fmt: skip
        background = self.coordinates_N_2[self._background_rows]
        for index, _ in enumerate(names):
            row, column = index // columns + 1, index % columns + 1
            figure.add_scatter(
                x=background[:, 0], y=background[:, 1], mode="markers", hoverinfo="skip",
                marker=dict(size=4, color=_BACKGROUND), showlegend=False, row=row, col=column,
            )  # fmt: skip
            figure.add_scatter(
                x=[], y=[], mode="markers", marker=dict(size=7, line=dict(width=0)),
                showlegend=False, row=row, col=column, name="labeled", hoverinfo="text",
            )  # fmt: skip
            figure.add_scatter(
                x=[], y=[], mode="markers", showlegend=False, row=row, col=column,
                marker=dict(size=12, color="rgba(0,0,0,0)", line=dict(color="black", width=2)),
                name="last batch", hoverinfo="skip",
            )  # fmt: skip
        figure.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
        figure.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
        figure.update_layout(
            height=260 * rows + 40, margin=dict(l=10, r=10, t=50, b=10),
            template="plotly_white",
            title=f"Where each strategy's labels went ({self.layout_name} layout; "
            "ringed: the last batch)",
        )  # fmt: skip
        self.map = FigureWidget(figure)

        controls = widgets.HBox(
            [self.play_button, self.step_button, self.delay_slider, self.seed_picker]
        )
        self.widget = widgets.VBox(
            [controls, self.status, self.error_text,
             widgets.HBox([self.curves, self.table]), self.map]
        )  # fmt: skip
        self.widget.add_class("alwidget-race")
        self.curves.layout.width = 620
        self.table.layout = widgets.Layout(margin="30px 0 0 10px")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ controls
    @property
    def playing(self) -> bool:
        return self._playing

    def play(self) -> None:
        """Run round after round in the background, waiting the slider's delay between them."""
        with self._state:
            self._playing = not self.run.done and not self._closing
            self._state.notify_all()
        self._show_controls()

    def pause(self) -> None:
        """Stop after the model being trained now (no new training starts)."""
        with self._state:
            self._playing = False
            self._state.notify_all()
        self._show_controls()

    def step(self, rounds: int = 1) -> None:
        """Ask for ``rounds`` more rounds of every run (in the background; see :meth:`wait`)."""
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise InvalidArgumentError(f"rounds must be an integer ≥ 1, got {rounds!r}")
        with self._state:
            self._rounds_asked += rounds
            self._state.notify_all()
        self._show_controls()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the race is paused with no step pending, or finished; True if so.

        While playing it waits for the end of the race. Raises the error that stopped the
        race, if one did.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state:
            while not self._idle():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._state.wait(remaining)
        if self.error is not None:
            raise self.error
        return True

    def close(self) -> None:
        """Stop the background thread and close the runs' sessions and the widgets."""
        with self._state:
            self._closing = True
            self._playing = False
            self._state.notify_all()
        self._thread.join(timeout=60)
        self.run.close()
        self.widget.close()

    def _idle(self) -> bool:
        done = self.run.done or self.error is not None or self._closing
        return not self._busy and (done or (not self._playing and self._rounds_asked == 0))

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while True:
            with self._state:
                while not self._closing and (
                    self.run.done or self.error is not None
                    or not (self._playing or self._rounds_asked)
                ):  # fmt: skip
                    self._playing, self._rounds_asked = False, 0
                    self._state.notify_all()
                    self._state.wait()
                if self._closing:
                    self._state.notify_all()
                    return
                self._busy = True
            try:
                self._run_round()
            except Exception as error:  # shown in the widget; wait() raises it
                self.error = error
                self.error_text.value = (
                    '<div class="alwidget-race-error" style="color:#b00">race stopped: '
                    f"{html.escape(type(error).__name__)}: {html.escape(str(error))}</div>"
                )
            with self._state:
                self._busy = False
                if self._rounds_asked:
                    self._rounds_asked -= 1
                self._state.notify_all()
            self._show_controls()
            if self._playing and not self._rounds_asked:
                with self._state:  # the speed control: wait, but wake at once for pause/close
                    self._state.wait_for(
                        lambda: self._closing or not self._playing,
                        timeout=self.delay_slider.value,
                    )

    def _run_round(self) -> None:
        target = self.run.rounds_done + 1
        while not self.run.done and self.run.rounds_done < target and not self._closing:
            stepping_for_step = self._rounds_asked > 0
            if not (self._playing or stepping_for_step):
                return  # paused mid-round: the lanes that ran stay, the round resumes later
            self.status.value = self._status_text(training=True)
            self.run.step_lane()
            self._redraw()

    # ------------------------------------------------------------------ drawing
    def _status_text(self, training: bool = False) -> str:
        done = self.run.rounds_done
        state = (
            "finished" if self.run.done
            else "stopped by an error" if self.error is not None
            else "training…" if training
            else "playing" if self._playing else "paused"
        )  # fmt: skip
        labels = self.run.lanes[0].n_labels[done - 1] if done else 0
        return (
            f'<span class="alwidget-race-round" data-round="{done}">round {done} of '
            f"{self.run.rounds + 1}</span> · {labels} labels per run · "
            f"{len(self.run.strategies)} strategies × {len(self.run.seeds)} seeds · "
            f'<span class="alwidget-race-state">{state}</span>'
        )

    def _show_controls(self) -> None:
        finished = self.run.done or self.error is not None
        self.play_button.description = "■ Pause" if self._playing else "▶ Play"
        self.play_button.disabled = finished
        self.step_button.disabled = finished
        self.status.value = self._status_text()

    def _redraw(self) -> None:
        seed = self.seed_picker.value
        classes = self.pool.targets
        with self.curves.edit_lock, self.curves.batch_update():
            for index, name in enumerate(self.run.strategies):
                curve = self.run.curve(name)
                band, line = self.curves.data[2 * index], self.curves.data[2 * index + 1]
                if len(curve["n_labels"]) > 1 and len(self.run.seeds) > 1:
                    band.x = curve["n_labels"] + curve["n_labels"][::-1]
                    band.y = curve["high"] + curve["low"][::-1]
                line.x, line.y = curve["n_labels"], curve["mean"]
        with self.map.edit_lock, self.map.batch_update():
            for index, name in enumerate(self.run.strategies):
                lane = self.run.lane(name, seed)
                labeled = lane.labeled_positions
                points = self.coordinates_N_2[labeled]
                trace = self.map.data[3 * index + 1]
                trace.x, trace.y = points[:, 0], points[:, 1]
                trace.marker.color = [class_colour(int(classes[p])) for p in labeled]
                trace.text = [
                    f"{self.pool.ids[p]} · {self.pool.classes[int(classes[p])]}" for p in labeled
                ]
                batch = self.coordinates_N_2[lane.last_batch_positions]
                ring = self.map.data[3 * index + 2]
                ring.x, ring.y = batch[:, 0], batch[:, 1]
        self.table.value = self._table_html()
        self.status.value = self._status_text()

    def _table_html(self) -> str:
        threshold = f"{self.run.threshold:.0%}"
        head = (
            "<tr><th>strategy</th><th>labels</th><th>accuracy</th>"
            f"<th>labels to {threshold}</th><th>AUC</th></tr>"
        )
        body = []
        for index, row in enumerate(self.run.summary()):
            reached = row["labels_to_threshold"]
            if reached is None:
                to_threshold = f"not yet ({row['reached']}/{row['n_seeds']} seeds)"
            else:
                to_threshold = f"{reached:g}"
            swatch = f'<span style="color:{strategy_colour(index)}">■</span>'
            body.append(
                f'<tr data-strategy="{html.escape(row["strategy"])}"><td>{swatch} '
                f"{html.escape(row['strategy'])}</td>"
                f"<td>{_format(row['n_labels'], '{}', '–')}</td>"
                f"<td>{_format(row['accuracy'], '{:.3f}', '–')}</td>"
                f"<td>{to_threshold}</td><td>{_format(row['auc'], '{:.3f}', '–')}</td></tr>"
            )
        return (
            '<table class="alwidget-race-summary" style="border-collapse:collapse">'
            f"{head}{''.join(body)}</table>"
            '<div style="font-size:85%;color:#555;max-width:330px">Mean over seeds at the last '
            "round every run finished; labels-to-threshold is the median seed; AUC is the mean "
            "accuracy over the label range.</div>"
        )
