"""``python -m alwidget simulate``: JSON on stdout, progress on stderr, exit code 2 on bad input."""

import json
import subprocess
import sys

import pytest

from alwidget.cli import main


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "alwidget", *args], capture_output=True, text=True, timeout=timeout
    )


def test_simulate_on_digits_prints_one_json_object_and_improves():
    result = run(
        "simulate",
        "--dataset",
        "digits",
        "--strategy",
        "entropy",
        "--initial",
        "20",
        "--batch",
        "10",
        "--rounds",
        "5",
        "--seed",
        "0",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    rounds = report["rounds"]
    assert [r["n_labels"] for r in rounds] == [20, 30, 40, 50, 60, 70]
    assert rounds[-1]["accuracy"] > rounds[0]["accuracy"]
    assert all(r["train_seconds"] > 0 for r in rounds)
    assert all("predict_seconds" in r for r in rounds[1:])
    assert "round" in result.stderr  # tqdm progress goes to stderr


def test_simulate_on_mnist_files(mnist_root):
    result = run(
        "simulate",
        "--dataset",
        "mnist",
        "--data-root",
        str(mnist_root),
        "--limit",
        "1000",
        "--test-limit",
        "1000",
        "--max-steps",
        "60",
        "--strategy",
        "bald",
        "--mc-samples",
        "5",
        "--rounds",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dataset"] == "mnist" and report["rounds"][-1]["n_labels"] == 30


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "--strategy", "nonsense"], "invalid choice"),
        (["simulate", "--batch", "0"], "must be ≥ 1"),
        (["simulate", "--rounds", "x"], "not an integer"),
        (["simulate", "--dataset", "mnist"], "needs --data-root"),
        (["simulate", "--dataset", "mnist", "--data-root", "/nonexistent"], "not a folder"),
        (["simulate", "--model", "resnet"], "unknown --model"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_usage(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "usage:" in captured.err and message in captured.err
    assert captured.out == ""


def test_bad_arguments_exit_2_from_the_command_line_too():
    result = run("simulate", "--initial", "-3", timeout=120)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "must be ≥ 1" in result.stderr
