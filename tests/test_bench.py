"""``python -m alwidget bench``: threshold arithmetic on hand-made curves, and a smoke run on MNIST."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alwidget.cli import main
from alwidget.experiments.bench import (
    labels_to_threshold,
    labels_to_threshold_interpolated,
    median_labels,
)
from alwidget.experiments.report import (
    format_accuracy_at,
    format_paired_ratios,
    format_table,
    repeated_picks,
    summarize,
    write_figure,
)


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "alwidget", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_labels_to_threshold_is_the_first_step_that_reaches_it():
    labels = [20, 30, 40, 50, 60]
    accuracy = [0.50, 0.91, 0.89, 0.95, 0.97]
    assert labels_to_threshold(labels, accuracy, 0.90) == 30  # the later dip does not matter
    assert labels_to_threshold(labels, accuracy, 0.95) == 50  # reaching exactly counts
    assert labels_to_threshold(labels, accuracy, 0.98) is None
    assert labels_to_threshold(labels, accuracy, 0.40) == 20  # the initial model counts too
    assert labels_to_threshold([], [], 0.9) is None


def test_labels_to_threshold_rejects_malformed_curves():
    with pytest.raises(ValueError, match="2 label counts but 3 accuracies"):
        labels_to_threshold([20, 30], [0.1, 0.2, 0.3], 0.9)
    with pytest.raises(ValueError, match="must not decrease"):
        labels_to_threshold([20, 40, 30], [0.1, 0.2, 0.3], 0.9)


def test_interpolated_labels_fall_between_the_step_below_and_the_step_that_reaches():
    labels = [20, 30, 40, 50, 60]
    accuracy = [0.50, 0.91, 0.89, 0.95, 0.97]
    interpolate = labels_to_threshold_interpolated
    assert interpolate(labels, accuracy, 0.90) == pytest.approx(20 + 10 * 0.40 / 0.41)
    assert interpolate(labels, accuracy, 0.95) == 50.0  # from the dip at 40: reached exactly
    assert interpolate(labels, accuracy, 0.93) == pytest.approx(40 + 10 * 0.04 / 0.06)
    assert interpolate(labels, accuracy, 0.40) == 20.0  # the initial model: nothing below it
    assert interpolate(labels, accuracy, 0.98) is None
    with pytest.raises(ValueError, match="must not decrease"):
        interpolate([20, 40, 30], [0.1, 0.2, 0.3], 0.9)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12),
    st.floats(0.0, 1.0),
)
def test_interpolated_labels_never_exceed_the_grid_answer_nor_reach_back_a_step(curve, level):
    labels = [20 + 10 * i for i in range(len(curve))]
    on_grid = labels_to_threshold(labels, curve, level)
    between = labels_to_threshold_interpolated(labels, curve, level)
    if on_grid is None:
        assert between is None
    else:
        assert max(20, on_grid - 10) <= between <= on_grid


def test_paired_ratios_divide_the_baseline_labels_seed_by_seed():
    runs = [
        _run("bald", 0, [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]),  # 95 % at 70
        _run("bald", 1, [0.5, 0.6, 0.7, 0.8, 0.9, 0.94]),  # never within 70
        _run("hybrid", 0, [0.5, 0.8, 0.96, 0.97, 0.97, 0.98]),  # 30 + 10 * 0.15 / 0.16
        _run("hybrid", 1, [0.5, 0.9, 1.0, 1.0, 1.0, 1.0]),  # 30 + 10 * 0.05 / 0.10 = 35
        _run("random", 2, [0.5, 0.96, 0.97, 0.97, 0.97, 0.97]),  # no bald run of seed 2
    ]
    table = format_paired_ratios(summarize(runs), {"mnist": 70}).splitlines()
    hybrid_0 = 30 + 10 * 0.15 / 0.16
    (hybrid,) = [line for line in table if line.startswith("| hybrid ")]
    assert hybrid.split(" | ")[4] == f"{70 / hybrid_0:.2f}/>{70 / 35:.2f}"
    assert hybrid.endswith("| - | - |")  # bald's seed 1 is only a bound: no summary
    (random,) = [line for line in table if line.startswith("| random ")]
    assert random.split(" | ")[4] == "-"
    runs[1] = _run("bald", 1, [0.5, 0.6, 0.7, 0.8, 0.95, 0.96])  # 95 % at 60
    table = format_paired_ratios(summarize(runs), {"mnist": 70}).splitlines()
    (hybrid,) = [line for line in table if line.startswith("| hybrid ")]
    ratios = [70 / hybrid_0, 60 / 35]
    median, geometric = sum(ratios) / 2, (ratios[0] * ratios[1]) ** 0.5
    assert hybrid.endswith(f"| {median:.2f} | {geometric:.2f} |")
    assert format_paired_ratios(summarize(runs[2:]), {"mnist": 70}) == ""  # no baseline


def test_median_counts_never_as_worse_than_any_budget():
    assert median_labels([100, None, 120]) == 120
    assert median_labels([100, None, None]) is None
    assert median_labels([100, 120]) == 110
    assert median_labels([100, None]) is None
    assert median_labels([None]) is None
    assert median_labels([]) is None


def _run(strategy, seed, accuracies):
    labels = [20 + 10 * i for i in range(len(accuracies))]
    return {
        "dataset": "mnist",
        "strategy": strategy,
        "seed": seed,
        "total_seconds": 5.0,
        "steps": [
            {"n_labels": n, "accuracy": a, "train_seconds": 1.0} for n, a in zip(labels, accuracies)
        ],
        "labels_to": {
            str(t): labels_to_threshold(labels, accuracies, t) for t in (0.9, 0.95, 0.98)
        },
    }


def test_repeated_picks_count_second_copies_of_a_base_image():
    # limit 100 base images: ids 5, 105 and 205 are the three copies of image 5.
    run = _run("bald", 0, [0.5, 0.6, 0.7])
    run.update(dataset="repeated-mnist", settings={"limit": 100})
    run["steps"][0]["acquired"] = [5, 17]
    run["steps"][1]["acquired"] = [105, 6, 206]  # 105 repeats 5; 206 repeats 6 (labeled this step)
    run["steps"][2]["acquired"] = [217, 42]  # 217 repeats the initial 17
    assert repeated_picks(run) == 3
    del run["steps"][2]["acquired"]
    assert repeated_picks(run) is None
    assert repeated_picks(_run("bald", 0, [0.5])) is None  # plain MNIST: no copies to count


def test_accuracy_table_reads_the_mean_curve_at_checkpoints():
    runs = [_run("bald", 0, [0.5, 0.9, 0.95, 0.96]), _run("bald", 1, [0.7, 0.8, 0.91, 0.98])]
    table = format_accuracy_at(summarize(runs), [20, 40, 60])
    assert "| bald | 0.600 | 0.930 | - |" in table
    assert "copies" not in table


def test_summary_takes_medians_over_seeds_and_marks_never_reached():
    runs = [
        _run("bald", 0, [0.5, 0.9, 0.95, 0.96]),
        _run("bald", 1, [0.5, 0.8, 0.91, 0.97]),
        _run("bald", 2, [0.6, 0.92, 0.93, 0.99]),
    ]
    entry = summarize(runs)["mnist"]["bald"]
    assert entry["labels_to"] == {"0.9": 30, "0.95": 50, "0.98": None}  # 95%: seeds at 40, 50, 50
    assert entry["labels_to_per_seed"]["0.98"] == [None, None, 50]
    assert entry["curve"]["n_labels"] == [20, 30, 40, 50]
    assert entry["curve"]["mean"][0] == pytest.approx(0.5333, abs=1e-4)
    table = format_table(summarize(runs), {"mnist": 50})
    assert "| bald | 3 | 30 | 50 | >50 |" in table
    assert "Kirsch 120/250" in table


def test_figures_share_the_nearest_plotly_js_above_them(tmp_path):
    summary = summarize([_run("bald", 0, [0.5, 0.9, 0.95])])
    first = write_figure(summary, tmp_path / "mnist", png=False)
    assert (tmp_path / "plotly.min.js").is_file()
    assert 'src="../plotly.min.js"' in Path(first["html"]).read_text()
    nested = write_figure(summary, tmp_path / "fine-tune" / "run", png=False)
    assert not (tmp_path / "fine-tune" / "plotly.min.js").exists()  # no second 4.6 MB copy
    assert 'src="../../plotly.min.js"' in Path(nested["html"]).read_text()


def test_smoke_bench_writes_consistent_results(mnist_root, tmp_path):
    out = tmp_path / "results"
    result = run(
        "--smoke",
        "--data-root",
        str(mnist_root),
        "--strategies",
        "random,batchbald",
        "--jobs",
        "1",
        "--no-png",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "600-image" not in result.stderr  # the smoke pool note names the scored subset instead
    assert "random 300-image subset of the test set" in result.stderr
    report = json.loads((out / "results.json").read_text())
    assert report["settings"]["budget"] == 40 and report["seeds"] == [0]
    assert sorted(r["strategy"] for r in report["runs"]) == ["batchbald", "random"]
    for run_result in report["runs"]:
        steps = run_result["steps"]
        assert [s["n_labels"] for s in steps] == [20, 30, 40]
        assert all(0.0 <= s["accuracy"] <= 1.0 for s in steps)
        assert all(s["train_seconds"] > 0 and s["eval_seconds"] > 0 for s in steps)
        assert all(
            {"predict_seconds", "score_seconds", "select_seconds"} <= set(s) for s in steps[1:]
        )
        assert [len(s["acquired"]) for s in steps] == [20, 10, 10]
        acquired = [i for s in steps for i in s["acquired"]]
        assert len(set(acquired)) == 40  # nothing is acquired twice
        curve = ([s["n_labels"] for s in steps], [s["accuracy"] for s in steps])
        assert run_result["labels_to"] == {
            str(t): labels_to_threshold(*curve, t) for t in (0.9, 0.95, 0.98)
        }
        assert (out / "runs" / f"mnist-{run_result['strategy']}-seed0.json").is_file()
    assert set(report["summary"]["mnist"]) == {"random", "batchbald"}
    assert (out / "learning_curves.html").is_file() and (out / "summary.md").is_file()
    assert (
        tmp_path / "plotly.min.js"
    ).is_file()  # shared by the datasets' figures, for offline viewing
    assert "| batchbald | 1 |" in result.stdout and "Kirsch 90/200" in result.stdout

    again = run(
        "--smoke",
        "--data-root",
        str(mnist_root),
        "--strategies",
        "random",
        "--jobs",
        "1",
        "--no-png",
        "--out",
        str(out),
        "--resume",
    )
    assert again.returncode == 0, again.stderr
    assert "resume: kept mnist-random-seed0.json" in again.stderr

    report_only = run(
        "--smoke",
        "--data-root",
        str(mnist_root),
        "--strategies",
        "random,coreset",
        "--no-png",
        "--out",
        str(out),
        "--report-only",
    )
    assert report_only.returncode == 0, report_only.stderr
    assert "report only: 1 runs missing: coreset seed 0" in report_only.stderr
    reported = json.loads((out / "results.json").read_text())
    assert [r["strategy"] for r in reported["runs"]] == ["random"]
    assert reported["wall_seconds"] is None  # nothing ran in a report-only pass
    assert reported["run_seconds_total"] == pytest.approx(
        reported["runs"][0]["total_seconds"], abs=0.05
    )  # rounded to 0.1 s


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategies", "random,nonsense"], "unknown strategies ['nonsense']"),
        (["--seeds", "0,x"], "--seeds must be a comma-separated list"),
        (["--budget", "10"], "--budget 10 is below --initial 20"),
        (["--mc-samples", "1"], "--mc-samples must be ≥ 2"),
        (["--data-root", "/nonexistent"], "is not a folder"),
        (["--warm-steps", "-1"], "--warm-steps must be ≥ 0, got -1"),
        (["--augment", "flip"], "invalid choice: 'flip'"),
        (["--label-noise", "1.5"], "--label-noise must be a rate in [0, 1)"),
        (["--relabel-fraction", "-0.1"], "--relabel-fraction must be a share"),
        (["--relabel-fraction", "0.01"], "rounds to no suspect per batch"),
        (["--noise-kind", "pairs"], "invalid choice: 'pairs'"),
        (["--encoder-epochs", "0"], "--encoder-epochs must be a number > 0"),
        (["--pseudo-label-per-class", "500"], "pseudo-labels, which are off; add --pseudo-labels"),
        (
            ["--pseudo-labels", "--pseudo-label-candidates", "0"],
            "--pseudo-label-candidates must be ≥ 1, got 0",
        ),
    ],
)
def test_bad_flags_exit_2_with_the_reason(args, message, mnist_root, capsys):
    base = ["--data-root", str(mnist_root)] if "--data-root" not in args else []
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *base, *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_training_flags_reach_the_train_config(mnist_root):
    from alwidget.cli import build_parser
    from alwidget.experiments.bench_cli import settings_from_args

    parser = build_parser()

    def settings(*flags):
        args = parser.parse_args(["bench", "--data-root", str(mnist_root), *flags])
        return settings_from_args(args, parser)[0]

    default = settings()
    first, later = default.train_config(first=True), default.train_config(first=False)
    assert (first.min_steps, first.max_steps, first.warm_start, first.augment) == (
        500,
        500,
        False,
        "affine",
    )
    assert (later.min_steps, later.max_steps, later.warm_start) == (100, 100, True)
    assert first.validation_fraction == 0.0
    assert (first.pseudo_labels, first.pseudo_label_per_class) == (False, 100)
    pseudo = settings(
        "--pseudo-labels", "--pseudo-label-per-class", "1000", "--pseudo-label-candidates", "20000"
    ).train_config(first=False)
    assert (pseudo.pseudo_labels, pseudo.pseudo_label_per_class) == (True, 1000)
    assert pseudo.pseudo_label_candidates == 20000
    fresh = settings("--warm-steps", "0", "--augment", "none", "--train-steps", "300")
    assert fresh.warm_steps is None
    assert not fresh.train_config(first=False).warm_start
    assert (fresh.train_config(first=False).max_steps, fresh.train_config(first=False).augment) == (
        300,
        "none",
    )


def test_noisy_smoke_bench_records_the_noise_and_scores_the_suspects(mnist_root, tmp_path):
    out = tmp_path / "noisy"
    # The smoke sizes with a budget of 30: each query with suspects trains 5 fold models.
    sizes = "--limit 600 --test-limit 300 --train-steps 20 --warm-steps 10 --train-batch 16"
    sizes += " --mc-samples 5 --score-subset 200 --budget 30 --strategies random --seeds 0"
    flags = [*sizes.split(), "--data-root", str(mnist_root), "--no-png", "--out", str(out)]
    result = run(*flags, "--label-noise", "0.3", "--relabel-fraction", "0.2")
    assert result.returncode == 0, result.stderr
    assert "30% symmetric label noise, 20% of each batch spent on relabeling" in result.stderr
    report = json.loads((out / "results.json").read_text())
    assert {key: report["settings"][key] for key in ("label_noise", "noise_kind")} == {
        "label_noise": 0.3, "noise_kind": "symmetric",
    }  # fmt: skip
    assert report["settings"]["relabel_fraction"] == 0.2
    (run_result,) = report["runs"]
    steps = run_result["steps"]
    acquired = [item for step in steps for item in step["acquired"]]
    assert steps[-1]["n_labels"] == 30 == len(set(acquired))  # suspects are not new labels
    assert len(steps[1]["acquired"]) == 8  # 2 of the batch of 10 went to suspects
    assert all(0 <= step["labels_wrong"] <= step["n_labels"] for step in steps)
    assert steps[0]["labels_wrong"] > 0  # 30 % of 20 initial answers: surely some are wrong
    cleaning = run_result["cleaning"]
    assert cleaning["labels_wrong"] == steps[-1]["labels_wrong"]
    assert cleaning["suspects"] >= 0 and {"precision", "recall"} <= set(cleaning)

    # A run recorded before the noise settings existed still counts as a noise-free one.
    from alwidget.experiments.bench import BenchSettings, same_settings

    recorded = {k: v for k, v in report["settings"].items() if k != "relabel_fraction"}
    assert not same_settings(recorded, BenchSettings(**report["settings"]))
    recorded.pop("label_noise")
    plain = BenchSettings(**{**report["settings"], "label_noise": 0.0, "relabel_fraction": 0.0})
    assert same_settings(recorded, plain)


def test_an_epoch_budget_trains_the_self_supervised_encoder_for_that_many_epochs(mnist_root):
    from alwidget.cli import build_parser
    from alwidget.experiments.bench import bench_encoder
    from alwidget.experiments.bench_cli import encoder_training, settings_from_args

    parser = build_parser()
    args = parser.parse_args(
        ["bench", "--data-root", str(mnist_root), "--encoder", "self-supervised",
         "--encoder-epochs", "0.25", "--limit", "512"]
    )  # fmt: skip
    settings = settings_from_args(args, parser)[0]
    assert settings.encoder_epochs == 0.25 and encoder_training(settings) == "0.25 epochs"
    encoder = bench_encoder(settings)
    assert encoder.report.epochs == pytest.approx(0.25, abs=0.1)  # passes, not seconds


def test_fine_tune_trains_the_encoder_weights_and_needs_an_encoder(mnist_root, capsys):
    import torch

    from alwidget.cli import build_parser
    from alwidget.experiments.bench import bench_encoder, bench_session
    from alwidget.experiments.bench_cli import settings_from_args
    from alwidget.experiments.oracle import run_oracle

    parser = build_parser()
    sizes = "--limit 300 --test-limit 100 --train-steps 8 --warm-steps 4 --train-batch 16"
    sizes += " --mc-samples 3 --score-subset 50 --budget 30 --encoder svd"

    def changed_encoder_weights(*flags):
        """Encoder tensors that differ from the svd projection after two trainings and a
        query, the session's frozen-features flag and the items that query scored."""
        args = parser.parse_args(["bench", "--data-root", str(mnist_root), *sizes.split(), *flags])
        settings = settings_from_args(args, parser)[0]
        session = bench_session(settings, "bald", seed=0)
        rounds = run_oracle(
            session, initial=settings.initial, seed=0, batch_size=settings.batch_size,
            budget=settings.budget,
            train_config_for_round=lambda index: settings.train_config(first=index == 0),
        )  # fmt: skip
        assert [step.n_labels for step in rounds] == [20, 30]
        projection = bench_encoder(settings).state_dict()
        network = session.model.members[0]
        # Fine-tuned, the network is the encoder's copy followed by the head; frozen, it is
        # the head alone and the session's encoder must be the untouched projection.
        trained = network[0] if settings.fine_tune else session.encoding.encoder
        changed = [
            name
            for name, tensor in trained.state_dict().items()
            if not torch.equal(tensor, projection[name])
        ]
        return changed, session.scores_on_features, session.last_query_timings["n_scored"]

    assert changed_encoder_weights() == ([], True, 50)
    changed, on_features, scored = changed_encoder_weights("--fine-tune")
    assert sorted(changed) == ["1.bias", "1.weight"] and not on_features  # Flatten → Linear
    assert scored == 50  # a random subset of the pool, through the whole network

    args = parser.parse_args(["bench", "--data-root", str(mnist_root), "--fine-tune"])
    with pytest.raises(SystemExit) as exit_info:
        settings_from_args(args, parser)
    assert exit_info.value.code == 2
    assert "(--fine-tune) trains an encoder's weights, but no encoder is set" in (
        capsys.readouterr().err
    )
    from alwidget.errors import InvalidArgumentError
    from alwidget.experiments.bench import BenchSettings

    with pytest.raises(InvalidArgumentError, match="add --encoder self-supervised"):
        BenchSettings(fine_tune=True)
    fine = BenchSettings(encoder="svd", fine_tune=True)
    assert fine.train_config().augment == "affine"  # the network sees images
    assert BenchSettings(encoder="svd").train_config().augment is None  # the head sees features
