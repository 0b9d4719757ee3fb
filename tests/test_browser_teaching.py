"""The teaching views in a real browser: the race (play, steps, pause), the 2-D toy view and
ComparePicks in JupyterLab 4, and the race in Notebook 7 and in Voila.

The JupyterLab test saves the screenshots under ``docs/images/`` that the README shows.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from fixtures.browser import _free_port, require_browser_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"

RACE_CELL = """
import alwidget as al
race = al.Race(
    al.datasets.two_moons(160, noise=0.2), ["random", "entropy", "bald"], seeds=[0, 1],
    initial=6, batch_size=4, rounds=6, delay=0.3,
    train_config=al.TrainConfig(min_steps=25, max_steps=50),
)
race
"""
TOY_CELL = """
from alwidget.experiments.oracle import balanced_initial_ids, oracle_labels
pool = al.datasets.two_moons(200, noise=0.2)
session = al.Session(pool, strategy="bald", batch_size=6, store=False,
                     train_config=al.TrainConfig(min_steps=60, max_steps=120))
first = balanced_initial_ids(pool, 8, seed=0)
session.label(first, oracle_labels(pool, first))
session.retrain()
toy = al.ToyView(session, field="bald", grid_size=40)
toy
"""
COMPARE_CELL = """
compare = al.ComparePicks(session, ["entropy", "bald", "batchbald"], batch_size=6)
compare
"""
# The toy cell's session without the toy view, for the compare view in the other front ends.
SESSION_CELL = TOY_CELL.split("toy = ")[0]


def _check_compare(page, expect) -> None:
    """Three strategies' picks from the same model: three strips of six, drawn on the map."""
    compare = page.locator(".alwidget-compare")
    compare.scroll_into_view_if_needed()
    expect(compare.locator(".alwidget-compare-strip")).to_have_count(3, timeout=120_000)
    assert compare.locator(".alwidget-compare-snippet").count() == 18  # 2-D points: snippets
    page.wait_for_function(
        "() => document.querySelectorAll("
        "'.alwidget-compare .js-plotly-plot .scatterlayer .point').length >= 18",
        timeout=60_000,
    )


def _notebook(root: Path, name: str, sources: list[str]) -> str:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source.strip()) for source in sources]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, root / name)
    return name


class RaceDriver:
    """Reads and drives the race widget on a page."""

    def __init__(self, page):
        from playwright.sync_api import expect

        self.page = page
        self.expect = expect
        self.root = page.locator(".alwidget-race")

    def round(self) -> int:
        value = self.root.locator(".alwidget-race-round").get_attribute("data-round")
        return int(value)

    def wait_round(self, at_least: int, timeout_s: float = 400) -> int:
        deadline = time.monotonic() + timeout_s
        while self.round() < at_least:
            assert time.monotonic() < deadline, f"race stuck at round {self.round()}"
            time.sleep(0.2)
        return self.round()

    def state(self) -> str:
        return self.root.locator(".alwidget-race-state").inner_text()

    def button(self, text: str):
        return self.root.locator(".widget-button", has_text=re.compile(rf"^\W*{text}\s*$"))

    def plot(self, index: int):
        return self.root.locator(".js-plotly-plot").nth(index)

    def curve_points(self) -> int:
        return self.plot(0).locator(".scatterlayer .point").count()

    def map_points(self) -> int:
        return self.plot(1).locator(".scatterlayer .point").count()

    def play_some_rounds_pause_and_step(self) -> None:
        """Play until two rounds ran, pause (no new round starts), then one Step."""
        self.expect(self.root.locator(".js-plotly-plot")).to_have_count(2, timeout=60_000)
        assert self.round() == 0 and self.state() == "paused"
        map_before = self.map_points()
        self.button("Play").click()
        self.expect(self.button("Pause")).to_be_visible(timeout=10_000)
        self.wait_round(2)
        self.button("Pause").click()
        self.expect(self.root.locator(".alwidget-race-state")).to_have_text(
            "paused", timeout=120_000
        )
        paused_at = self.round()
        time.sleep(1.5)
        assert self.round() == paused_at, "the race went on after Pause"
        curve_points = self.curve_points()
        assert curve_points >= 3 * paused_at, curve_points  # a mean point per strategy and round
        assert self.map_points() > map_before, "the maps did not gain the labels"
        self.button("Step").click()
        self.wait_round(paused_at + 1)
        self.expect(self.root.locator(".alwidget-race-state")).to_have_text(
            "paused", timeout=120_000
        )
        assert self.curve_points() > curve_points
        rows = self.root.locator(".alwidget-race-summary tr[data-strategy]")
        self.expect(rows).to_have_count(3)
        assert "–" not in rows.first.inner_text()  # accuracy and AUC filled in


# Errors the front ends log with a notebook holding only an ``ipywidgets.IntSlider`` (checked
# on this machine, 2026-11-30), so not the views':
_FRONT_END_NOISE = (
    # ipyannotations' bundled JS against the widget manager's version (FACTS).
    "Unsatisfied version",
    # Notebook 7.6.5, at start-up.
    "pageerror: Cannot read properties of undefined (reading 'schema')",
    # Voila 0.5.13 fetches Font Awesome from a CDN (no internet here) ...
    "https://cdn.jsdelivr.net/npm/@fortawesome/",
    # ... and cannot load Notebook 7's lab extension (installed beside it for the test).
    '{"shareKey":"@jupyterlab/docregistry"}',
)


def _real_errors(messages: list[str]) -> list[str]:
    return [text for text in messages if not any(noise in text for noise in _FRONT_END_NOISE)]


def test_race_toy_and_compare_in_jupyterlab(jupyterlab_server, lab_page):
    name = _notebook(
        jupyterlab_server.root_dir, "teaching.ipynb", [RACE_CELL, TOY_CELL, COMPARE_CELL]
    )
    lab_page.open_notebook(name)
    lab_page.run_all_cells(timeout_s=240)
    lab_page.assert_widgets_rendered()
    page = lab_page.page
    race = RaceDriver(page)
    race.root.scroll_into_view_if_needed()
    race.play_some_rounds_pause_and_step()
    IMAGES.mkdir(parents=True, exist_ok=True)
    race.root.screenshot(path=str(IMAGES / "race.png"))

    toy = page.locator(".alwidget-toy")
    toy.scroll_into_view_if_needed()
    version = toy.locator(".alwidget-toy-version")
    lab_page.page.wait_for_function(
        "() => document.querySelectorAll('.alwidget-toy .js-plotly-plot .heatmaplayer image').length"
        " + document.querySelectorAll('.alwidget-toy .js-plotly-plot .hm').length > 0"
    )
    assert version.get_attribute("data-version") == "1"
    toy.locator(".widget-button", has_text="Label batch & retrain").click()
    race.expect(version).to_have_attribute("data-version", "2", timeout=120_000)
    toy.locator(".widget-toggle-button", has_text=re.compile(r"^entropy$")).click()
    race.expect(toy.locator(".colorbar")).to_contain_text("entropy", timeout=10_000)
    toy.screenshot(path=str(IMAGES / "toy-view.png"))

    _check_compare(page, race.expect)
    compare = page.locator(".alwidget-compare")
    compare.locator(".widget-button", has_text="Refresh").click()
    race.expect(compare.locator(".alwidget-compare-version")).to_have_attribute(
        "data-version", "2", timeout=60_000
    )
    assert not _real_errors(lab_page.console_errors), (lab_page.console_errors, lab_page.failures())


# --------------------------------------------------------------------- other front ends
def _start_server(base: Path, command: list[str], ready_path: str, token: str | None):
    for directory in ("config", "runtime", "ipython", "data"):
        (base / directory).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        IPYTHONDIR=str(base / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("NUMBA_CACHE_DIR", "/work/.numba-cache")
    log_path = base / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base / "root"
        )
    port = int(next(part for part in command if part.startswith("--port=")).split("=")[1])
    url = f"http://127.0.0.1:{port}{ready_path}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[2]} exited:\n{log_path.read_text()[-3000:]}")
        try:
            request = urllib.request.Request(url)
            if token:
                request.add_header("Authorization", f"token {token}")
            urllib.request.urlopen(request, timeout=5).read()
            return process, port, log_path
        except urllib.error.HTTPError:
            return process, port, log_path  # it answers: up (Voila has no status page)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"{command[2]} did not answer within 90 s:\n{log_path.read_text()[-3000:]}")


def _stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on(
        "console",
        lambda msg: (
            msg.type == "error" and errors.append(f"{msg.text} ({msg.location.get('url')})")
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return context, page, errors


def test_race_and_compare_in_notebook_7(chromium, tmp_path):
    require_browser_stack()
    pytest.importorskip("notebook", reason="Notebook 7 is in the test extra")
    (tmp_path / "root").mkdir()
    name = _notebook(tmp_path / "root", "race.ipynb", [RACE_CELL, SESSION_CELL, COMPARE_CELL])
    token, port = secrets.token_hex(16), _free_port()
    command = [
        sys.executable, "-m", "notebook", "--no-browser", "--allow-root", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={tmp_path / 'root'}",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]  # fmt: skip
    process, port, log_path = _start_server(tmp_path, command, "/api/status", token)
    context, page, errors = _page(chromium)
    try:
        page.goto(f"http://127.0.0.1:{port}/notebooks/{name}?token={token}")
        page.wait_for_function(
            """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session
                    && w.sessionContext.session.kernel;
                return !!k && k.status === 'idle'; }""",
            timeout=90_000,
        )
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        race = RaceDriver(page)
        race.expect(race.root).to_be_visible(timeout=400_000)
        race.play_some_rounds_pause_and_step()
        _check_compare(page, race.expect)
        assert not page.get_by_text("Error displaying widget").count()
        assert not _real_errors(errors), errors
    finally:
        page.screenshot(path=str(tmp_path / "notebook7.png"))
        context.close()
        _stop(process)


def test_race_and_compare_in_voila(chromium, tmp_path):
    require_browser_stack()
    pytest.importorskip("voila", reason="Voila is in the test extra")
    (tmp_path / "root").mkdir()
    name = _notebook(tmp_path / "root", "race.ipynb", [RACE_CELL, SESSION_CELL, COMPARE_CELL])
    port = _free_port()
    command = [
        sys.executable, "-m", "voila", name, "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", f"--Voila.root_dir={tmp_path / 'root'}",
    ]  # fmt: skip
    process, port, log_path = _start_server(tmp_path, command, "/voila/static/nothing", None)
    context, page, errors = _page(chromium)
    try:
        # Voila answers once the notebook has run (imports and the race's sessions)
        page.goto(f"http://127.0.0.1:{port}/", wait_until="commit", timeout=400_000)
        race = RaceDriver(page)
        race.expect(race.root).to_be_visible(timeout=400_000)
        race.play_some_rounds_pause_and_step()
        _check_compare(page, race.expect)
        assert not page.get_by_text("Error displaying widget").count()
        assert not _real_errors(errors), (errors, log_path.read_text()[-2000:])
    finally:
        page.screenshot(path=str(tmp_path / "voila.png"))
        context.close()
        _stop(process)
