"""The labeling widget and the map at real size, timed in a real JupyterLab + Chromium.

For each pool (the 60 000-image MNIST training set, and/or a generated folder of RGB PNGs with
one truncated file read with ``on_error="skip"``) and each model setup (``encoder="svd"`` with
its MC-dropout head, and the default model trained from scratch), the script writes a notebook
(pool → session → ``al.Widget(session)`` → ``attach_map(MapView(session))``), opens it in
JupyterLab in Chromium (Playwright), runs all cells and prints, measured in the page
(``performance.now()``, DOM changes), not as Python call times:

* run-all → first batch visible in the strip (goal ≤ 5 s);
* run-all → the map's first paint, i.e. the first points drawn (goal ≤ 20 s);
* key press → next item shown (the focused card and the large image both changed; and the
  next animation frame after that), p50/p95/max over ``--labels`` labels given by key with the
  pointer over the widget and the map attached (goal p95 ≤ 50 ms). The page moves on by
  itself (the strip's preview of the next item, see ``alwidget/widget/keys.py``); "kernel" is
  key press → the kernel's answer (the press acknowledged after its updates were sent);
* Retrain click → training done → refreshed batch visible (goal ≤ 5 s with the encoder head);
* whether the encoder pass's tqdm bar showed in the page; how often and how long the strip was
  empty after the first batch;
* every browser console error and warning, with its text (goal: none).

A step that does not finish within ``--step-timeout`` seconds is reported as a timeout and the
run goes on. Run it niced on the shared machine::

    nice -n 10 .venv/bin/python benchmarks/bench_browser_realsize.py --pool both \\
        --labels 100 --screenshots benchmarks/results/browser-realsize

``tests/test_browser_realsize.py`` runs a small version of the same steps in the suite.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

SHAPE_CLASSES = ("circle", "square", "stripes", "triangle")
TRUNCATED_FILE = "circle/zz-truncated.png"
# MapView(max_points=) by default: the most points the map draws of a big pool.
FULL_MAP_POINTS = 30_000

# The notebook's scroll offset (JupyterLab scrolls the notebook panel, not the window).
SCROLL_POSITION_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')
    || document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  return panel ? panel.scrollTop : null;
}"""
RESTORE_SCROLL_JS = """(top) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')
    || document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (panel && top !== null) panel.scrollTop = top;
}"""
GOALS = {"first_batch_s": 5.0, "key_p95_ms": 50.0, "retrain_head_s": 5.0, "map_paint_s": 20.0}


# --------------------------------------------------------------------------------------------
# The generated image folder
# --------------------------------------------------------------------------------------------


def write_shape_pngs(folder: Path, n_images: int, size: int = 96, seed: int = 0) -> dict[str, str]:
    """Write ``n_images`` RGB PNGs of four classes into ``folder/<class>/NNNNN.png``, plus one
    truncated PNG (``TRUNCATED_FILE``) that a pool must skip.

    Each image is a textured, coloured background with one shape (circle, square, triangle,
    or a patch of stripes) of random colour, size and place, so the classes are learnable but
    not by colour alone. Deterministic for a seed. Returns ``{id: class}`` for the good files,
    the id being the path inside ``folder`` (as ``al.Pool(folder)`` names items).
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    truth: dict[str, str] = {}
    for name in SHAPE_CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for index in range(n_images):
        name = SHAPE_CLASSES[index % len(SHAPE_CLASSES)]
        base = rng.integers(40, 200, size=3)
        frequency = rng.uniform(0.05, 0.3)
        angle = rng.uniform(0, np.pi)
        wave = np.sin(frequency * (xx * np.cos(angle) + yy * np.sin(angle)))
        pixels = base + 25 * wave[..., None] + rng.normal(0, 12, size=(size, size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        radius = int(rng.integers(size // 8, size // 3))
        cx, cy = (int(v) for v in rng.integers(radius, size - radius, size=2))
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if name == "circle":
            draw.ellipse(box, fill=colour)
        elif name == "square":
            draw.rectangle(box, fill=colour)
        elif name == "triangle":
            draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
                         fill=colour)  # fmt: skip
        else:
            for offset in range(-radius, radius, max(2, radius // 3)):
                draw.line([(cx + offset, cy - radius), (cx + offset, cy + radius)], fill=colour,
                          width=max(1, radius // 6))  # fmt: skip
        item_id = f"{name}/{index:05d}.png"
        image.save(folder / item_id)
        truth[item_id] = name
    good = (folder / f"circle/{0:05d}.png").read_bytes()
    (folder / TRUNCATED_FILE).write_bytes(good[: len(good) // 2])
    return truth


def shape_truth(folder: Path, n_images: int) -> dict[str, str] | None:
    """``{id: class}`` of a folder :func:`write_shape_pngs` wrote before, or None if it holds
    another set (then it is written again)."""
    truth = {
        f"{SHAPE_CLASSES[index % len(SHAPE_CLASSES)]}/{index:05d}.png": SHAPE_CLASSES[
            index % len(SHAPE_CLASSES)
        ]
        for index in range(n_images)
    }
    files = (
        {str(p.relative_to(folder)) for p in folder.glob("*/*.png")} if folder.is_dir() else set()
    )
    return truth if files == set(truth) | {TRUNCATED_FILE} else None


# --------------------------------------------------------------------------------------------
# What runs in the page
# --------------------------------------------------------------------------------------------

# Installed before run-all: polls the page every 20 ms and records the first moment (in
# performance.now() milliseconds) of each milestone, the encoder's tqdm bar, and every spell
# of an empty strip after the first batch; records key press → next item shown.
PROBE_JS = r"""
() => {
  if (window.__bench) clearInterval(window.__bench.timer);
  const bench = {t0: performance.now(), first: {}, tqdm: [], emptySpells: [], keys: [],
                 pending: null, clicks: [], mapPointsMax: 0};
  window.__bench = bench;
  const root = () => document.querySelector('.alwidget-root');
  const mark = (name) => { if (!(name in bench.first)) bench.first[name] = performance.now(); };
  const focusImage = () => {
    const r = root();
    if (!r) return null;
    const img = [...r.querySelectorAll('img.widget-image')].find(i => !i.closest('.alwidget-map'));
    return img ? img.src : null;
  };
  const focusedId = () => {
    const card = document.querySelector('.alwidget-root .alwidget-card-focused');
    return card ? card.dataset.itemId : null;
  };
  bench.focusedId = focusedId;
  // Points drawn by the map's plotly graph(s): the most any one of them holds.
  const mapPoints = () => {
    let most = 0;
    for (const gd of document.querySelectorAll('.alwidget-map .js-plotly-plot')) {
      let n = 0;
      for (const t of gd._fullData || []) if (t.visible !== false && t.x) n += t.x.length;
      most = Math.max(most, n);
    }
    return most;
  };
  let emptySince = null;
  bench.timer = setInterval(() => {
    const r = root();
    if (r) mark('widget');
    const cards = r ? r.querySelectorAll('.alwidget-card').length : 0;
    if (cards) mark('first_card');
    if ('first_card' in bench.first) {
      if (!cards && emptySince === null) emptySince = performance.now();
      if (cards && emptySince !== null) {
        const text = (r.querySelector('.alwidget-strip') || r).innerText.slice(0, 120);
        bench.emptySpells.push({start: emptySince, end: performance.now(), text});
        emptySince = null;
      }
    }
    if (document.querySelector('.alwidget-map')) mark('map_element');
    const points = mapPoints();
    bench.mapPointsMax = Math.max(bench.mapPointsMax, points);
    if (points > 0) mark('map_paint');
    for (const bar of document.querySelectorAll('.jp-OutputArea .widget-hprogress, .jp-OutputArea progress')) {
      if (bar.closest('.alwidget-root')) continue;
      const box = bar.closest('.widget-hbox') || bar.parentElement;
      const text = box ? box.innerText.replace(/\s+/g, ' ').trim() : '';
      mark('tqdm');
      if (!bench.tqdm.includes(text) && bench.tqdm.length < 50) bench.tqdm.push(text);
    }
  }, 20);
  // The large view the user sees: the strip's preview of the next item while the kernel's
  // answer is on its way (keys.py), else the kernel's image.
  const shownImage = () => {
    const r = root();
    const preview = r && r.querySelector('.alwidget-focus-preview img');
    return preview ? preview.src : focusImage();
  };
  let lastShown = {id: null, previous: null, img: null, t: -1};
  const settle = (p) => requestAnimationFrame(() => {
    p.frame = performance.now();
    bench.keys.push(p);
    bench.pending = null;
  });
  window.addEventListener('keydown', (event) => {
    if (bench.pending || !root()) return;
    const p = {key: event.key, t: event.timeStamp};
    bench.pending = p;
    if (lastShown.t >= event.timeStamp) {
      // The widget's own key listener (older, so it ran first) has moved on already.
      Object.assign(p, {from: lastShown.previous, to: lastShown.id, dom: lastShown.t});
      settle(p);
    } else {
      Object.assign(p, {from: lastShown.id, img: lastShown.img});
    }
  }, true);
  // Key press -> the kernel's answer (the press acknowledged: keys.py).
  bench.confirm = [];
  const advanced = new Map();
  let listening = null;
  const listen = () => {
    const r = root();
    if (!r || r === listening) return;
    listening = r;
    r.addEventListener('alwidget-advance', (e) => advanced.set(e.detail.seq, performance.now()));
    r.addEventListener('alwidget-ack', (e) => {
      for (const [seq, t] of advanced) {
        if (seq > e.detail.seq) continue;
        bench.confirm.push(performance.now() - t);
        advanced.delete(seq);
      }
    });
  };
  bench.listen = listen;
  document.addEventListener('click', (event) => {
    bench.clicks.push({t: event.timeStamp,
                       text: (event.target.closest('button') || event.target).innerText || ''});
  }, true);
  new MutationObserver(() => {
    listen();
    const now = focusedId();
    const img = shownImage();
    if (now !== null && now !== lastShown.id) {
      lastShown = {id: now, previous: lastShown.id, img, t: performance.now()};
    } else {
      lastShown.img = img;
    }
    const p = bench.pending;
    if (!p || p.dom) return;
    if (now === null || now === p.from) return;
    if (p.img !== null && p.img !== undefined && img === p.img) return;
    p.dom = performance.now();
    p.to = now;
    settle(p);
  }).observe(document.body, {subtree: true, childList: true, attributes: true,
                              attributeFilter: ['class', 'src', 'data-item-id']});
  // After a Retrain click: training seen (button disabled), done (enabled again; or 60 s
  // without ever seeing it), and the strip differing from the one at the click after that.
  bench.watchRetrain = (before, clicked) => {
    const watch = {clicked, seen: null, done: null, refreshed: null};
    bench.retrain = watch;
    const timer = setInterval(() => {
      const state = window.__retrainState(before);
      const now = performance.now();
      if (state.training && watch.seen === null) watch.seen = now;
      if (!state.training && watch.done === null && (watch.seen !== null || now - clicked > 60000)) {
        watch.done = now;
      }
      if (watch.done !== null && state.stripChanged) { watch.refreshed = now; clearInterval(timer); }
    }, 20);
  };
  return bench.t0;
}
"""

STRIP_SIGNATURE_JS = """() => [...document.querySelectorAll('.alwidget-root .alwidget-card')]
    .map(c => c.dataset.itemId + ' ' + c.innerText).join('|')"""

RETRAIN_BUTTON_JS = """() => [...document.querySelectorAll('.alwidget-root button')]
    .filter(b => !b.closest('.alwidget-map'))
    .find(b => /^\\W*(Retrain|Training…)\\s*$/.test(b.innerText.trim()))"""

# Training is on while the Retrain button is disabled or says Training…; the strip signature
# tells a refreshed batch from the one at the click.
RETRAIN_STATE_JS = (
    """() => { window.__retrainState = (before) => {
    const button = ("""
    + RETRAIN_BUTTON_JS
    + """)();
    const strip = ("""
    + STRIP_SIGNATURE_JS
    + """)();
    return {training: !button || button.disabled || /Training/.test(button.innerText),
            stripChanged: strip !== before && strip !== ''};
}; }"""
)

CELL_ERRORS_JS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code')
    .flatMap(c => c.model.outputs.toJSON())
    .filter(o => o.output_type === 'error')
    .map(o => o.ename + ': ' + o.evalue)"""

ANY_CELL_ERROR_JS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .some(c => c.model.type === 'code'
               && c.model.outputs.toJSON().some(o => o.output_type === 'error'))"""

CELL_STDERR_JS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code')
    .flatMap(c => c.model.outputs.toJSON())
    .filter(o => o.output_type === 'stream' && o.name === 'stderr')
    .map(o => Array.isArray(o.text) ? o.text.join('') : o.text).join('')"""

ALL_CELLS_DONE_JS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const kernel = w.sessionContext.session.kernel;
    const cells = w.content.widgets.filter(c => c.model.type === 'code');
    return cells.every(c => c.model.executionCount !== null) && kernel.status === 'idle';
}"""


# --------------------------------------------------------------------------------------------
# One scenario: a notebook, run and driven
# --------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """A notebook to run: how the pool and the session are built, and the keys per item."""

    name: str
    pool_code: str
    session_code: str
    key_for_item: dict  # item id (str) -> key that labels it correctly
    n_items: int

    def cells(self) -> list[str]:
        return [
            "import alwidget as al\n" + self.pool_code,
            self.session_code,
            "widget = al.Widget(session)\nwidget",
            "from alwidget.widget import MapView\n"
            "map_view = MapView(session)\nwidget.attach_map(map_view)",
        ]


@dataclass
class Figures:
    """What one scenario measured (seconds unless named ``_ms``); ``None`` = not reached."""

    scenario: str
    first_batch_s: float | None = None
    widget_s: float | None = None
    map_element_s: float | None = None
    map_paint_s: float | None = None
    map_points: int = 0
    map_full_s: float | None = None  # every point the map draws is drawn (seen by the poll)
    cells_done_s: float | None = None
    tqdm_seen_s: float | None = None
    tqdm_texts: list = field(default_factory=list)
    key_dom_ms: list = field(default_factory=list)
    key_frame_ms: list = field(default_factory=list)
    key_confirmed_ms: list = field(default_factory=list)
    key_timeouts: int = 0
    labels_shown: str = ""
    empty_spells: list = field(default_factory=list)
    retrain_done_s: float | None = None
    retrain_refreshed_s: float | None = None
    console: list = field(default_factory=list)  # (type, text)
    console_at_run_all: int = 0  # messages logged while JupyterLab loaded, before run-all
    cell_errors: list = field(default_factory=list)
    stderr_tail: str = ""
    # The same notebook again after "restart the kernel": encoder and features cached on disk.
    rerun_first_batch_s: float | None = None
    rerun_widget_s: float | None = None
    rerun_map_paint_s: float | None = None
    notes: list = field(default_factory=list)


class BrowserRun:
    """Drives one notebook in one browser context; every wait is bounded by ``step_timeout``."""

    def __init__(
        self, chromium, server, step_timeout_s: float, screenshots: Path | None, rerun: bool
    ):
        self.rerun = rerun
        self.chromium = chromium
        self.server = server
        self.step_timeout_ms = step_timeout_s * 1000
        self.screenshots = screenshots

    def run(self, scenario: Scenario, n_labels: int, pause_s: float) -> Figures:
        from fixtures.browser import LabPage

        figures = Figures(scenario.name)
        folder = self.server.root_dir / scenario.name
        folder.mkdir(parents=True, exist_ok=True)
        notebook = self.server.add_code_notebook(f"{scenario.name}/bench.ipynb", scenario.cells())
        context = self.chromium.new_context(viewport={"width": 1600, "height": 1100})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.on("console", lambda msg: figures.console.append((msg.type, msg.text)))
        page.on("pageerror", lambda exc: figures.console.append(("pageerror", str(exc))))
        lab = LabPage(page, self.server)
        try:
            lab.open_notebook(notebook, timeout_s=180)
            self._run_all(page, figures)
            self._shot(page, scenario, "1-first-batch")
            self._wait_map(page, figures)
            self._wait_full_map(page, figures, min(scenario.n_items, FULL_MAP_POINTS))
            self._shot(page, scenario, "2-map")
            self._shot(page, scenario, "2b-map-itself", scroll_to=".alwidget-map .js-plotly-plot")
            self._label(page, scenario, figures, n_labels, pause_s)
            self._retrain(page, figures)
            self._shot(page, scenario, "3-after-retrain")
            figures.cell_errors = page.evaluate(CELL_ERRORS_JS)
            figures.map_points = page.evaluate("() => window.__bench.mapPointsMax")
            if self.rerun:
                self._rerun_resumed(page, figures)
                self._shot(page, scenario, "4-rerun")
            if figures.map_paint_s is None:  # it may have come after its wait timed out
                figures.map_paint_s = self._since_t0(page, "map_paint")
                if figures.map_paint_s is not None:
                    figures.notes.append("the map painted after its wait had timed out")
            figures.stderr_tail = page.evaluate(CELL_STDERR_JS)[-600:]
        except Exception as error:  # a timeout or a crash of one step: report, go on
            figures.notes.append(f"stopped: {type(error).__name__}: {str(error)[:300]}")
            self._shot(page, scenario, "9-stopped")
        finally:
            context.close()
            self.server.shutdown_all_kernels()
        return figures

    def _since_t0(self, page, name: str) -> float | None:
        value = page.evaluate(f"() => window.__bench.first[{name!r}]")
        t0 = page.evaluate("() => window.__bench.t0")
        return None if value is None else (value - t0) / 1000.0

    def _wait(self, page, expression: str, figures: Figures, what: str, arg=None) -> bool:
        """Wait for ``expression``; False on a timeout; raises if a cell fails meanwhile."""
        try:
            page.wait_for_function(
                f"(arg) => ({ANY_CELL_ERROR_JS})() || ({expression})(arg)",
                arg=arg,
                timeout=self.step_timeout_ms,
                polling=100,
            )
        except Exception as error:
            if "Timeout" not in type(error).__name__ and "Timeout" not in str(error):
                raise
            figures.notes.append(f"timeout ({self.step_timeout_ms / 1000:.0f} s): {what}")
            return False
        errors = page.evaluate(CELL_ERRORS_JS)
        if errors:
            raise RuntimeError(f"a notebook cell failed while waiting for {what}: {errors}")
        return True

    def _run_all(self, page, figures: Figures) -> None:
        figures.console_at_run_all = len(figures.console)
        page.evaluate(PROBE_JS)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self._wait(page, "() => 'first_card' in window.__bench.first", figures, "first batch")
        figures.first_batch_s = self._since_t0(page, "first_card")
        figures.widget_s = self._since_t0(page, "widget")

    def _rerun_resumed(self, page, figures: Figures) -> None:
        """Clear the outputs, restart the kernel and run all again: the user reopening the
        notebook another day. The session resumes from its store (the labels and the model
        trained above) and reads the svd encoder and the features from the disk cache."""
        first_run = (figures.first_batch_s, figures.widget_s, figures.map_paint_s)
        console_at_run_all = figures.console_at_run_all  # console errors count from the 1st
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        page.evaluate(
            "async () => { const w = window.jupyterapp.shell.currentWidget;"
            " await w.sessionContext.session.kernel.restart();"
            " await w.sessionContext.ready; }"
        )
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
            " === 'idle' && !document.querySelector('.alwidget-root')",
            timeout=120_000,
        )
        self._run_all(page, figures)
        figures.rerun_first_batch_s, figures.rerun_widget_s = (
            figures.first_batch_s,
            figures.widget_s,
        )
        if self._wait(page, "() => 'map_paint' in window.__bench.first", figures, "rerun map"):
            figures.rerun_map_paint_s = self._since_t0(page, "map_paint")
        self._wait(page, ALL_CELLS_DONE_JS, figures, "rerun: all cells executed")
        figures.first_batch_s, figures.widget_s, figures.map_paint_s = first_run
        figures.console_at_run_all = console_at_run_all
        figures.cell_errors += page.evaluate(CELL_ERRORS_JS)

    def _wait_map(self, page, figures: Figures) -> None:
        self._wait(page, "() => 'map_paint' in window.__bench.first", figures, "map first paint")
        figures.map_element_s = self._since_t0(page, "map_element")
        figures.map_paint_s = self._since_t0(page, "map_paint")
        if self._wait(page, ALL_CELLS_DONE_JS, figures, "all cells executed"):
            figures.cells_done_s = (
                page.evaluate("() => performance.now() - window.__bench.t0") / 1000.0
            )
        figures.tqdm_seen_s = self._since_t0(page, "tqdm")
        figures.tqdm_texts = page.evaluate("() => window.__bench.tqdm")
        figures.map_points = page.evaluate("() => window.__bench.mapPointsMax")

    def _wait_full_map(self, page, figures: Figures, n_points: int) -> None:
        """Label only once the map shows every point it will draw (its sample comes first),
        so the key figures are taken with the whole map in the page."""
        if self._wait(
            page, "(n) => window.__bench.mapPointsMax >= n", figures, "the full map", n_points
        ):
            figures.map_full_s = (
                page.evaluate("() => performance.now() - window.__bench.t0") / 1000.0
            )

    def _label(self, page, scenario: Scenario, figures: Figures, n_labels: int, pause_s: float):
        root = page.locator(".alwidget-root").first
        root.scroll_into_view_if_needed()
        # Keys reach the widget while it has focus (the badge gives it) with the pointer over it.
        page.locator(".alwidget-keys-badge").first.click()
        box = root.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 4, box["y"] + min(box["height"] / 3, 250))
        consecutive_timeouts = 0
        for index in range(n_labels):
            item_id = page.evaluate("() => window.__bench.focusedId()")
            if item_id is None:
                ok = self._wait(
                    page, "() => window.__bench.focusedId() !== null", figures, "a focused item"
                )
                if not ok:
                    break
                item_id = page.evaluate("() => window.__bench.focusedId()")
            time.sleep(pause_s)  # the annotator looks at the item
            page.keyboard.press(scenario.key_for_item[item_id])
            try:
                page.wait_for_function(
                    "(n) => window.__bench.keys.length >= n", arg=index + 1 - figures.key_timeouts,
                    timeout=min(self.step_timeout_ms, 120_000), polling=50,
                )  # fmt: skip
                consecutive_timeouts = 0
            except Exception:
                figures.key_timeouts += 1
                consecutive_timeouts += 1
                page.evaluate("() => { window.__bench.pending = null; }")
                if consecutive_timeouts >= 3:
                    figures.notes.append(f"labeling stopped after {index + 1} key presses")
                    break
        records = page.evaluate("() => window.__bench.keys")
        figures.key_dom_ms = [r["dom"] - r["t"] for r in records]
        figures.key_frame_ms = [r["frame"] - r["t"] for r in records]
        figures.key_confirmed_ms = page.evaluate("() => window.__bench.confirm")
        progress = page.locator(".alwidget-root .alwidget-progress")
        figures.labels_shown = progress.first.inner_text()[:200] if progress.count() else ""
        figures.empty_spells = page.evaluate("() => window.__bench.emptySpells")

    def _retrain(self, page, figures: Figures) -> None:
        page.evaluate(RETRAIN_STATE_JS)
        before = page.evaluate(STRIP_SIGNATURE_JS)
        button = page.evaluate_handle(RETRAIN_BUTTON_JS).as_element()
        if button is None:
            figures.notes.append("no Retrain button found")
            return
        button.click()
        page.evaluate(
            "(before) => window.__bench.watchRetrain(before, window.__bench.clicks.at(-1).t)",
            before,
        )
        self._wait(page, "() => window.__bench.retrain.done !== null", figures, "training done")
        self._wait(
            page, "() => window.__bench.retrain.refreshed !== null", figures, "refreshed batch"
        )
        watch = page.evaluate("() => window.__bench.retrain")
        for name, attribute in (("done", "retrain_done_s"), ("refreshed", "retrain_refreshed_s")):
            if watch[name] is not None:
                setattr(figures, attribute, (watch[name] - watch["clicked"]) / 1000)
        if watch["seen"] is None:
            figures.notes.append("the Retrain button never showed training")

    def _shot(self, page, scenario: Scenario, step: str, scroll_to: str | None = None) -> None:
        """Save a screenshot; with ``scroll_to`` (a CSS selector) of that element scrolled
        into view, then the notebook scrolled back (so later steps see the page as before)."""
        if self.screenshots is None:
            return
        try:
            self.screenshots.mkdir(parents=True, exist_ok=True)
            before = None
            if scroll_to is not None:
                before = page.evaluate(SCROLL_POSITION_JS)
                page.locator(scroll_to).first.scroll_into_view_if_needed(timeout=5_000)
            save_small_png(page.screenshot(), self.screenshots / f"{scenario.name}-{step}.png")
            if before is not None:
                page.evaluate(RESTORE_SCROLL_JS, before)
        except Exception as error:  # a screenshot must not end the run
            print(f"screenshot {step} failed: {error}", file=sys.stderr)


def save_small_png(png: bytes, path: Path, width: int = 1000, colours: int = 96) -> None:
    """Save a screenshot shrunk to ``width`` px and a palette of ``colours`` (a few 100 kB)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    height = round(image.height * width / image.width)
    image = image.resize((width, height), Image.LANCZOS).quantize(colours)
    image.save(path, optimize=True)


# --------------------------------------------------------------------------------------------
# Pools and report
# --------------------------------------------------------------------------------------------


def mnist_scenarios(data_root: Path, strategy: str) -> list[Scenario]:
    import alwidget as al

    pool = al.datasets.load_mnist(data_root)
    keys = {str(item_id): pool.classes[int(t)] for item_id, t in zip(pool.ids, pool.targets)}
    code = f"pool = al.datasets.load_mnist({str(data_root)!r})"
    return _two_setups("mnist", code, keys, len(pool), strategy)


def png_scenarios(folder: Path, n_images: int, size: int, strategy: str) -> list[Scenario]:
    truth = shape_truth(folder, n_images) or write_shape_pngs(folder, n_images, size=size)
    keys = {item_id: str(SHAPE_CLASSES.index(name) + 1) for item_id, name in truth.items()}
    code = (
        f"pool = al.Pool({str(folder)!r}, classes={list(SHAPE_CLASSES)!r}, on_error='skip')\n"
        "print('skipped:', [s.path for s in pool.skipped])"
    )
    return _two_setups("pngs", code, keys, n_images, strategy)


def _two_setups(pool_name, pool_code, keys, n_items, strategy) -> list[Scenario]:
    return [
        Scenario(
            f"{pool_name}-encoder-svd",
            pool_code,
            f'session = al.Session(pool, encoder="svd", strategy={strategy!r}, seed=0)',
            keys,
            n_items,
        ),
        Scenario(
            f"{pool_name}-scratch",
            pool_code,
            f"session = al.Session(pool, strategy={strategy!r}, seed=0)",
            keys,
            n_items,
        ),
    ]


def _seconds(value: float | None, goal: float | None = None) -> str:
    if value is None:
        return "not reached (timeout)"
    text = f"{value:8.1f} s"
    if goal is not None:
        text += f"   (goal ≤ {goal:g} s: {'met' if value <= goal else 'MISSED'})"
    return text


def report(figures: Figures, n_items: int, head: bool) -> str:
    lines = [f"== {figures.scenario} ({n_items} items)"]
    add = lines.append
    add(
        f"  run-all → first batch visible   {_seconds(figures.first_batch_s, GOALS['first_batch_s'])}"
    )
    add(f"  run-all → widget on the page    {_seconds(figures.widget_s)}")
    add(f"  run-all → map element           {_seconds(figures.map_element_s)}")
    add(f"  run-all → map first paint       {_seconds(figures.map_paint_s, GOALS['map_paint_s'])}"
        f"   ({figures.map_points} points drawn at most)")  # fmt: skip
    add(
        f"  run-all → map fully drawn       {_seconds(figures.map_full_s)}   (labeling starts here)"
    )
    if figures.map_paint_s is not None and figures.map_element_s is not None:
        add(
            f"  map element → first paint       {_seconds(figures.map_paint_s - figures.map_element_s)}"
        )
    add(f"  run-all → all cells done        {_seconds(figures.cells_done_s)}")
    if figures.rerun_first_batch_s is not None or figures.rerun_map_paint_s is not None:
        add("  again after a kernel restart (the session resumes: labels and model from its store,")
        add("  encoder and features from the disk cache):")
        add(f"    run-all → widget on the page  {_seconds(figures.rerun_widget_s)}")
        add(f"    run-all → first batch visible {_seconds(figures.rerun_first_batch_s, GOALS['first_batch_s'])}")  # fmt: skip
        add(f"    run-all → map first paint     {_seconds(figures.rerun_map_paint_s, GOALS['map_paint_s'])}")  # fmt: skip
    tqdm = "not seen" if figures.tqdm_seen_s is None else f"seen at {figures.tqdm_seen_s:.1f} s"
    add(f"  progress bar (tqdm) in the page {tqdm}: {figures.tqdm_texts[:3]}")
    for name, values in (
        ("DOM", figures.key_dom_ms),
        ("next frame", figures.key_frame_ms),
        ("kernel", figures.key_confirmed_ms),
    ):
        if values:
            array = np.asarray(values)
            p50, p95 = np.percentile(array, 50), np.percentile(array, 95)
            goal = (
                f"   (goal p95 ≤ 50 ms: {'met' if p95 <= 50 else 'MISSED'})"
                if name == "DOM"
                else ""
            )
            add(f"  key → next item ({name:10s}) p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                f"max {array.max():7.1f} ms  over {array.size} labels{goal}")  # fmt: skip
    if figures.key_dom_ms:
        slowest = sorted(enumerate(figures.key_dom_ms), key=lambda pair: -pair[1])[:8]
        add("  slowest keys (label number: DOM ms): "
            + ", ".join(f"{index + 1}: {ms:.0f}" for index, ms in slowest))  # fmt: skip
    if figures.key_timeouts:
        add(f"  key presses with no next item within the timeout: {figures.key_timeouts}")
    add(f"  counts after labeling: {figures.labels_shown!r}")
    spells = figures.empty_spells
    if spells:
        longest = max(s["end"] - s["start"] for s in spells) / 1000
        add(f"  strip empty after the first batch: {len(spells)} times, longest {longest:.1f} s, "
            f"e.g. {spells[0]['text']!r}")  # fmt: skip
    else:
        add("  strip empty after the first batch: never")
    goal = GOALS["retrain_head_s"] if head else None
    add(f"  Retrain click → training done   {_seconds(figures.retrain_done_s)}")
    add(f"  Retrain click → batch refreshed {_seconds(figures.retrain_refreshed_s, goal)}")
    for when, messages in (
        ("while JupyterLab loaded", figures.console[: figures.console_at_run_all]),
        ("from run-all on", figures.console[figures.console_at_run_all :]),
    ):
        lines.extend(console_summary(when, messages))
    for error in figures.cell_errors:
        add(f"  cell error: {error}")
    if figures.stderr_tail.strip():
        add("  cell stderr (tail): " + figures.stderr_tail.strip().replace("\n", " | ")[-400:])
    for note in figures.notes:
        add(f"  note: {note}")
    return "\n".join(lines)


def alwidget_source() -> str:
    """Where the notebook kernels import alwidget from (``PYTHONPATH`` can point elsewhere)."""
    return subprocess.run(
        [sys.executable, "-c", "import alwidget, os; print(os.path.dirname(alwidget.__file__))"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    ).stdout.strip()


# JupyterLab's own timing notes, logged by the dozen while it loads on a busy machine.
SLOW_PLUGIN = re.compile(r"^Plugin .* (took [\d.]+ ?ms to activate|is taking too long to activate)")


def console_summary(when: str, messages: list) -> list[str]:
    """Count errors and warnings; list each distinct text with its count (JupyterLab's slow
    plugin notes as one line)."""
    errors = [text for kind, text in messages if kind in ("error", "pageerror")]
    warnings = [text for kind, text in messages if kind == "warning"]
    lines = [f"  browser console {when}: {len(errors)} errors, {len(warnings)} warnings"]
    for kind, texts in (("error", errors), ("warning", warnings)):
        counts: dict[str, int] = {}
        slow_plugins = 0
        for text in texts:
            if SLOW_PLUGIN.match(text):
                slow_plugins += 1
            else:
                counts[text[:300]] = counts.get(text[:300], 0) + 1
        if slow_plugins:
            lines.append(
                f"    {kind} ×{slow_plugins}: JupyterLab 'Plugin … to activate' timing notes"
            )
        lines += [f"    {kind} ×{count}: {text}" for text, count in counts.items()]
    return lines


def header(args) -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %cd %s", "--date=iso"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    versions = {}
    for module in ("jupyterlab", "playwright", "ipywidgets", "plotly", "torch"):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:
            versions[module] = "?"
    chromium = subprocess.run(
        ["/usr/bin/chromium", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return "\n".join(
        [
            f"bench_browser_realsize · {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
            f"commit {commit} (HEAD of {REPO})",
            f"alwidget imported from {alwidget_source()}",
            f"{chromium}; " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            f"args: {' '.join(sys.argv[1:])}",
            f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
            f"({os.cpu_count()} cores, shared)",
            "times measured in the page (performance.now(), DOM changes); goals from issue 12",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", choices=("mnist", "pngs", "both"), default="both")
    parser.add_argument("--setups", default="encoder-svd,scratch",
                        help="comma-separated: encoder-svd, scratch")  # fmt: skip
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds before each key press")
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--data-root", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--png-count", type=int, default=5000)
    parser.add_argument("--png-size", type=int, default=96)
    parser.add_argument("--png-dir", type=Path, default=None,
                        help="generate the PNGs here, or reuse the ones an earlier run wrote")  # fmt: skip
    parser.add_argument("--strategy", default="bald")
    parser.add_argument("--step-timeout", type=float, default=900.0)
    parser.add_argument("--output", type=Path, default=None, help="also write the report here")
    parser.add_argument("--no-rerun", action="store_true",
                        help="skip the second run-all after a kernel restart (the session resumes)")  # fmt: skip
    args = parser.parse_args(argv)

    from fixtures.browser import CHROMIUM_ARGS, CHROMIUM_PATH, _start_jupyterlab
    from playwright.sync_api import sync_playwright

    setups = set(args.setups.split(","))
    lines = [header(args)]
    print(lines[0], flush=True)
    with tempfile.TemporaryDirectory(prefix="alwidget-bench-browser-") as temp:
        temp = Path(temp)
        # A first-time user: an empty feature cache, so the encoder pass runs (and shows).
        os.environ["ALWIDGET_CACHE"] = str(temp / "feature-cache")
        os.environ.pop("ALWIDGET_STORE", None)
        # Absolute: the kernel runs in the notebook's folder, where a relative cache path
        # would be a new, empty cache (umap's JIT compiled again, minutes on a busy machine).
        numba_cache = os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".venv" / "numba-cache"))
        os.environ["NUMBA_CACHE_DIR"] = str(Path(numba_cache).resolve())
        scenarios: list[Scenario] = []
        if args.pool in ("mnist", "both"):
            scenarios += mnist_scenarios(args.data_root, args.strategy)
        if args.pool in ("pngs", "both"):
            started = time.perf_counter()
            folder = args.png_dir or temp / "shapes"
            scenarios += png_scenarios(folder, args.png_count, args.png_size, args.strategy)
            lines.append(
                f"{args.png_count} RGB {args.png_size}×{args.png_size} PNGs + 1 truncated "
                f"({TRUNCATED_FILE}) in {folder}, written or found in "
                f"{time.perf_counter() - started:.1f} s"
            )
            print(lines[-1], flush=True)
        scenarios = [s for s in scenarios if s.name.split("-", 1)[1] in setups]
        server = _start_jupyterlab(temp / "lab", startup_timeout_s=args.step_timeout)
        try:
            with sync_playwright() as playwright:
                chromium = playwright.chromium.launch(
                    executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS
                )
                runner = BrowserRun(
                    chromium, server, args.step_timeout, args.screenshots, not args.no_rerun
                )
                for scenario in scenarios:
                    started = time.perf_counter()
                    figures = runner.run(scenario, args.labels, args.pause)
                    text = report(figures, scenario.n_items, head="encoder" in scenario.name)
                    text += (
                        f"\n  (scenario wall time {time.perf_counter() - started:.0f} s; load "
                        f"average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
                    )
                    lines.append(text)
                    print(text, flush=True)
                chromium.close()
        finally:
            server.shutdown_all_kernels()
            server.process.terminate()
            server.process.wait(timeout=30)
    lines.append(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(lines[-1], flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
