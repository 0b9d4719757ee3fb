"""Tables and learning-curve figures of :mod:`alwidget.experiments.bench` results, beside the
papers' figures."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from .bench import (
    DEFAULT_STRATEGIES,
    THRESHOLDS,
    labels_to_threshold_interpolated,
    median_labels,
)

__all__ = [
    "PAPER_FIGURES",
    "format_accuracy_at",
    "format_paired_ratios",
    "format_table",
    "format_timings",
    "repeated_picks",
    "summarize",
    "write_figure",
]

# Labels (initial 20 included) to first reach 90% / 95% test accuracy; None = not within the
# paper's budget. Gal, Islam & Ghahramani 2017 (10% / 5% test error); Kirsch, van Amersfoort
# & Gal 2019 (BatchBALD; median of 6 seeds; Repeated MNIST budget 300).
PAPER_FIGURES = {
    "mnist": {
        "random": "Gal 255/835",
        "entropy": "Gal 165/355",
        "bald": "Gal 145/335; Kirsch 120/250",
        "variation_ratios": "Gal 120/295",
        "batchbald": "Kirsch 90/200",
    },
    "repeated-mnist": {
        "random": "Kirsch 195/never<=300",
        "bald": "Kirsch 260/never<=300",
        "batchbald": "Kirsch 120/260",
    },
}

TIMING_KEYS = (
    "train_seconds",
    "predict_seconds",
    "score_seconds",
    "select_seconds",
    "eval_seconds",
)


def repeated_picks(run: dict) -> int | None:
    """Acquisitions (after the initial labels) of a Repeated MNIST run whose base image was
    already labeled through another copy; ``None`` for other datasets or runs without ids.

    The Repeated MNIST pool stacks the copies, so copy ``k`` of base image ``i`` has id
    ``k * n_base + i`` with ``n_base`` = the ``limit`` setting (60 000 without one).
    """
    steps = run.get("steps") or []
    if (
        run.get("dataset") != "repeated-mnist"
        or not steps
        or any("acquired" not in step for step in steps)
    ):
        return None
    n_base = (run.get("settings") or {}).get("limit") or 60_000
    labeled = {item % n_base for item in steps[0]["acquired"]}
    repeats = 0
    for step in steps[1:]:
        for item in step["acquired"]:
            repeats += item % n_base in labeled
            labeled.add(item % n_base)
    return repeats


def summarize(runs: list[dict]) -> dict:
    """Per dataset and strategy: median labels-to-threshold over seeds, per-seed values,
    mean per-step timings and mean learning curve.

    Returns
    -------
    dict
        ``{dataset: {strategy: {"seeds", "labels_to": {"0.9": median or None},
        "labels_to_per_seed", "mean_step_seconds": {...}, "curve": {"n_labels", "mean",
        "min", "max"}, "repeated_picks": [per seed, Repeated MNIST only]}}}``.
    """
    grouped: dict = {}

    def order(run):  # the paper baselines first, then the batch-aware strategies
        known = list(DEFAULT_STRATEGIES)
        rank = known.index(run["strategy"]) if run["strategy"] in known else len(known)
        return run["dataset"], rank, run["strategy"], run["seed"]

    for run in sorted(runs, key=order):
        grouped.setdefault(run["dataset"], {}).setdefault(run["strategy"], []).append(run)
    summary: dict = {}
    for dataset, by_strategy in grouped.items():
        summary[dataset] = {}
        for strategy, seed_runs in by_strategy.items():
            per_seed = {str(t): [r["labels_to"][str(t)] for r in seed_runs] for t in THRESHOLDS}
            timings = {}
            for key in TIMING_KEYS:
                values = [s[key] for r in seed_runs for s in r["steps"] if key in s]
                timings[key] = round(float(np.mean(values)), 3) if values else None
            length = min(len(r["steps"]) for r in seed_runs)
            accuracy = np.array([[s["accuracy"] for s in r["steps"][:length]] for r in seed_runs])
            interpolated = {
                str(t): [
                    labels_to_threshold_interpolated(
                        [s["n_labels"] for s in r["steps"]], [s["accuracy"] for s in r["steps"]], t
                    )
                    for r in seed_runs
                ]
                for t in THRESHOLDS
            }
            summary[dataset][strategy] = {
                "seeds": [r["seed"] for r in seed_runs],
                "labels_to": {t: median_labels(values) for t, values in per_seed.items()},
                "labels_to_per_seed": per_seed,
                "labels_to_interpolated_per_seed": interpolated,
                "mean_step_seconds": timings,
                "mean_run_seconds": round(
                    float(np.mean([r["total_seconds"] for r in seed_runs])), 1
                ),
                "repeated_picks": [repeated_picks(r) for r in seed_runs],
                "curve": {
                    "n_labels": [s["n_labels"] for s in seed_runs[0]["steps"][:length]],
                    "mean": np.round(accuracy.mean(axis=0), 5).tolist(),
                    "min": accuracy.min(axis=0).tolist(),
                    "max": accuracy.max(axis=0).tolist(),
                },
            }
    return summary


def _cell(value, budget: int) -> str:
    if value is None:
        return f">{budget}"
    return f"{value:g}"


def format_table(summary: dict, budgets: dict) -> str:
    """Markdown table: median labels to 90/95/98% per strategy, beside the papers."""
    lines = []
    for dataset, by_strategy in summary.items():
        budget = budgets.get(dataset, 0)
        lines.append(
            f"\n{dataset}: labels (incl. 20 initial) to first reach test accuracy, "
            "median over seeds"
        )
        lines.append("| strategy | seeds | 90% | 95% | 98% | final acc (mean) | paper 90%/95% |")
        lines.append("|---|---|---|---|---|---|---|")
        for strategy, entry in by_strategy.items():
            cells = " | ".join(_cell(entry["labels_to"][str(t)], budget) for t in THRESHOLDS)
            paper = PAPER_FIGURES.get(dataset, {}).get(strategy, "")
            final = entry["curve"]["mean"][-1]
            lines.append(
                f"| {strategy} | {len(entry['seeds'])} | {cells} | {final:.4f} | {paper} |"
            )
    return "\n".join(lines)


def format_accuracy_at(summary: dict, checkpoints) -> str:
    """Markdown table: mean test accuracy over seeds at the given label counts, and for
    Repeated MNIST how many acquisitions re-labeled an image already labeled."""
    lines = []
    for dataset, by_strategy in summary.items():
        repeated = any(
            p is not None for entry in by_strategy.values() for p in entry["repeated_picks"]
        )
        lines.append(
            f"\n{dataset}: mean test accuracy over seeds at N labels"
            + (
                "; copies = acquisitions of an image already labeled through another copy, per seed"
                if repeated
                else ""
            )
        )
        lines.append(
            "| strategy | "
            + " | ".join(str(n) for n in checkpoints)
            + (" | copies |" if repeated else " |")
        )
        lines.append("|---|" + "---|" * (len(checkpoints) + repeated))
        for strategy, entry in by_strategy.items():
            at = dict(zip(entry["curve"]["n_labels"], entry["curve"]["mean"]))
            cells = " | ".join(f"{at[n]:.3f}" if n in at else "-" for n in checkpoints)
            copies = (
                " | " + "/".join("-" if p is None else str(p) for p in entry["repeated_picks"])
                if repeated
                else ""
            )
            lines.append(f"| {strategy} | {cells}{copies} |")
    return "\n".join(lines)


def format_paired_ratios(
    summary: dict, budgets: dict, baseline: str = "bald", threshold: float = 0.95
) -> str:
    """Markdown table: labels to ``threshold`` interpolated between steps, and the baseline's
    labels divided by each strategy's, seed by seed (a seed gives every strategy the same
    initial labels, so the pairs share their start).

    A ratio of 2 means the strategy needed half the baseline's labels. When the baseline
    never reached the threshold within the budget, the ratio is only bounded below
    (``>budget/labels``); the median and geometric mean are then left out.
    """
    lines = []
    key = str(threshold)
    for dataset, by_strategy in summary.items():
        if baseline not in by_strategy:
            continue
        budget = budgets.get(dataset, 0)
        base = by_strategy[baseline]
        base_by_seed = dict(zip(base["seeds"], base["labels_to_interpolated_per_seed"][key]))
        lines.append(
            f"\n{dataset}: labels to {threshold:.0%} interpolated between steps (median over "
            f"seeds), and {baseline}'s labels over each strategy's, paired by seed"
        )
        lines.append(
            f"| strategy | seeds | labels (median) | per seed | x {baseline} per seed "
            "| median x | geometric mean x |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for strategy, entry in by_strategy.items():
            labels = entry["labels_to_interpolated_per_seed"][key]
            per_seed = "/".join(_cell(None if v is None else round(v, 1), budget) for v in labels)
            ratios, cells = [], []
            for seed, value in zip(entry["seeds"], labels):
                if seed not in base_by_seed or value is None:
                    cells.append("-")
                    ratios.append(None)
                elif base_by_seed[seed] is None:
                    cells.append(f">{budget / value:.2f}")
                    ratios.append(None)
                else:
                    cells.append(f"{base_by_seed[seed] / value:.2f}")
                    ratios.append(base_by_seed[seed] / value)
            median = median_labels(labels)
            complete = bool(ratios) and all(r is not None for r in ratios)
            summary_cells = (
                f"{float(np.median(ratios)):.2f} | {math.exp(np.mean(np.log(ratios))):.2f}"
                if complete
                else "- | -"
            )
            lines.append(
                f"| {strategy} | {len(labels)} | "
                f"{_cell(None if median is None else round(median, 1), budget)} | {per_seed} | "
                f"{'/'.join(cells)} | {summary_cells} |"
            )
    return "\n".join(lines)


def format_timings(summary: dict) -> str:
    """Markdown table: mean seconds per acquisition step, split by phase."""
    lines = [
        "\nmean seconds per step (one worker, 1 torch thread; machine shared with other jobs)",
        "| dataset | strategy | train | predict (MC) | score | select | evaluate | run total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, by_strategy in summary.items():
        for strategy, entry in by_strategy.items():
            cells = " | ".join(
                "-"
                if entry["mean_step_seconds"][k] is None
                else f"{entry['mean_step_seconds'][k]:.2f}"
                for k in TIMING_KEYS
            )
            lines.append(f"| {dataset} | {strategy} | {cells} | {entry['mean_run_seconds']:.0f} |")
    return "\n".join(lines)


def write_figure(summary: dict, out: Path, *, png: bool = True) -> dict:
    """Learning curves (mean over seeds, band = min..max) as ``out/learning_curves.html``
    (plotly.js in ``out/../plotly.min.js``), and PNG when a static export works offline
    (kaleido driving a local Chromium).

    Returns
    -------
    dict
        ``{"html": path, "png": path or None, "png_error": message or None}``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    datasets = list(summary)
    figure = make_subplots(rows=1, cols=len(datasets), subplot_titles=datasets, shared_yaxes=True)
    colors = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
    ]
    strategies = sorted({s for by in summary.values() for s in by})
    for column, dataset in enumerate(datasets, start=1):
        for strategy, entry in summary[dataset].items():
            color = colors[strategies.index(strategy) % len(colors)]
            curve = entry["curve"]
            x = curve["n_labels"]
            figure.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=curve["max"] + curve["min"][::-1],
                    fill="toself",
                    fillcolor=color,
                    opacity=0.15,
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=strategy,
                ),
                row=1,
                col=column,
            )
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=curve["mean"],
                    mode="lines",
                    line={"color": color},
                    legendgroup=strategy,
                    name=f"{strategy} ({len(entry['seeds'])} seeds)",
                    showlegend=column == 1,
                ),
                row=1,
                col=column,
            )
        figure.update_xaxes(title_text="labels (incl. 20 initial)", row=1, col=column)
    for threshold in THRESHOLDS:
        figure.add_hline(
            y=threshold, line_dash="dot", line_color="gray", line_width=1, row="all", col="all"
        )
    lowest = min(min(entry["curve"]["mean"]) for by in summary.values() for entry in by.values())
    figure.update_yaxes(
        title_text="test accuracy",
        range=[max(0.0, math.floor((lowest - 0.02) * 20) / 20), 1.0],
        row=1,
        col=1,
    )
    figure.update_layout(
        title="Active learning with the Gal CNN (mean over seeds; band = min..max)",
        width=560 * len(datasets),
        height=480,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html = out / "learning_curves.html"
    # plotly.js (4.6 MB) is written once, shared by the figures of every dataset, so they
    # open offline: the copy of the nearest folder above that has one (results nested as
    # benchmarks/results/<group>/<run>/ share benchmarks/results/plotly.min.js), else a new
    # one in the parent folder.
    levels = next(
        (
            n
            for n, folder in enumerate(out.resolve().parents, 1)
            if n <= 3 and (folder / "plotly.min.js").is_file()
        ),
        None,
    )
    if levels is None:
        from plotly.offline import get_plotlyjs

        (out.parent / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
        levels = 1
    figure.write_html(html, include_plotlyjs="../" * levels + "plotly.min.js")
    result = {"html": str(html), "png": None, "png_error": None}
    if png:
        result.update(_write_png(figure, out / "learning_curves.png"))
    return result


def _write_png(figure, path: Path) -> dict:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if os.path.exists(chromium):
        os.environ.setdefault("BROWSER_PATH", chromium)
    try:
        figure.write_image(path)
    # kaleido missing, no browser it can drive, or a browser crash: the HTML is still there
    except Exception as error:  # noqa: BLE001
        return {
            "png": None,
            "png_error": f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}",
        }
    return {"png": str(path), "png_error": None}


def load_runs(folder: Path) -> list[dict]:
    """Every run JSON under ``folder`` (``runs/*.json``)."""
    return [json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))]
