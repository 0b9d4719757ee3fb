"""Issue 13: a user's mistake gets an alwidget error naming the argument, the item and the fix.

One test per example of the issue (and a few of their neighbours); each failed on the code
before the fix with a raw numpy, torch or scikit-learn error, or with no error at all.
"""

import gzip
import struct

import numpy as np
import pytest
import torch
from torch import nn

import alwidget as al
from alwidget.cli import main
from alwidget.datasets import load_mnist, read_idx
from alwidget.errors import (
    AlwidgetError,
    DataFileError,
    DeviceUnavailableError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    ItemReadError,
    StrategyModelMismatchError,
    TrainingDivergedError,
    UnsupportedModelError,
)
from alwidget.experiments.simulate import simulate
from alwidget.kinds import ItemKindError, UnsupportedItemsError

N_ROWS = 30


def fast():
    """A short training run (a fresh one: a test may change its fields)."""
    return al.TrainConfig(min_steps=4, max_steps=4, max_epochs=1)


def rows(count=N_ROWS, width=4, seed=0):
    return np.random.default_rng(seed).normal(size=(count, width)).astype(np.float32)


def targets(count=N_ROWS):
    return np.arange(count) % 2


def tabular_pool(**overrides):
    arguments = {"targets": targets()} | overrides
    return al.Pool(rows(), **arguments)


def session(pool=None, **overrides):
    arguments = {"train_config": fast(), "cv_folds": 0, "track_coverage": False, "store": False}
    return al.Session(tabular_pool() if pool is None else pool, **(arguments | overrides))


class Linear(nn.Module):
    """A model without dropout: BALD cannot sample it."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.layer = nn.Linear(4, num_classes)

    def forward(self, inputs):
        return self.layer(inputs)


# ------------------------------------------------------------------------------ pools
def test_rows_of_different_lengths_name_the_first_odd_item():
    with pytest.raises(ItemKindError, match=r"item 0 has shape \(2,\) but item 2 has shape \(3,\)"):
        al.Pool([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0, 7.0]], classes=["a", "b"])


def test_a_dict_of_items_says_how_to_pass_it():
    with pytest.raises(UnsupportedItemsError, match=r"list\(d.values\(\)\).*ids="):
        al.Pool({"x": [1.0, 2.0], "y": [3.0, 4.0]}, classes=["a", "b"])


def test_a_pandas_frame_says_how_to_pass_it():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(rows(), columns=list("abcd"))
    with pytest.raises(UnsupportedItemsError, match=r"to_numpy"):
        al.Pool(frame, targets=targets())


def test_texts_without_a_word_name_the_problem_not_the_vocabulary():
    pool = al.Pool(["", " ", "a", "!"], classes=["x", "y"])
    with pytest.raises(InvalidArgumentError, match="none of the 4 texts has a word"):
        pool.inputs(np.arange(4))


def test_features_of_the_wrong_length_are_refused_when_the_pool_is_built():
    with pytest.raises(InvalidArgumentError, match="features has 5 rows for 30 items"):
        tabular_pool(features=np.zeros((5, 3), dtype=np.float32))


def test_features_given_as_a_list_of_rows_are_used_not_ignored():
    pool = tabular_pool(features=[[float(i), 1.0, 2.0] for i in range(N_ROWS)])
    assert pool.input_shape == (3,)


def test_held_out_items_of_another_width_are_refused_when_the_pool_is_built():
    with pytest.raises(InvalidArgumentError, match=r"test_items give model inputs of shape \(3,\)"):
        tabular_pool(test_items=rows(6, width=3), test_targets=targets(6))


def test_held_out_items_with_an_array_of_features_ask_for_a_feature_function():
    with pytest.raises(InvalidArgumentError, match="features as a function"):
        tabular_pool(
            features=rows(width=7), test_items=rows(6), test_targets=targets(6)
        )  # fmt: skip


class FlakyDataset:
    """A torch-style Dataset whose item ``bad`` raises."""

    def __init__(self, bad, count=12):
        self.bad, self.count = bad, count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if index == self.bad:
            raise OSError(f"record {index} is corrupt")
        return torch.full((4,), float(index)), index % 2


def test_a_dataset_item_that_raises_is_named():
    pool = al.Pool(FlakyDataset(bad=7), targets=targets(12))
    with pytest.raises(ItemReadError, match=r"reading item 7 .*record 7 is corrupt"):
        pool.inputs(np.arange(12))


def test_a_dataset_whose_first_item_raises_fails_when_the_pool_is_built():
    with pytest.raises(ItemReadError, match=r"reading item 0"):
        al.Pool(FlakyDataset(bad=0), targets=targets(12))


def test_complex_items_are_refused_instead_of_dropping_the_imaginary_part():
    with pytest.raises(InvalidArgumentError, match="complex dtype"):
        al.Pool(rows().astype(np.complex64) * 1j, targets=targets())


def test_nan_targets_are_refused_instead_of_becoming_a_class():
    values = np.where(targets() == 0, np.nan, 1.0)
    with pytest.raises(InvalidArgumentError, match="item 0 has the float target nan.*None or -1"):
        al.Pool(rows(), targets=values)


def test_one_string_of_classes_is_refused_instead_of_split_into_letters():
    with pytest.raises(InvalidArgumentTypeError, match=r"classes='ab' is one string"):
        al.Pool(rows(), classes="ab")


@pytest.mark.parametrize(
    "classes, message",
    [({"a", "b"}, "no order"), (["a", None], "entry 1 is None"), (["a", "a"], "appears twice")],
)
def test_classes_that_would_be_misread_are_refused(classes, message):
    with pytest.raises(AlwidgetError, match=message):
        al.Pool(rows(), classes=classes)


@pytest.mark.parametrize(
    "bad_targets, message",
    [
        (np.eye(2)[targets()], r"argmax"),
        (targets(29), "got 29 targets for 30 items"),
        (set(range(30)), "no order"),
        ([True] * 30, "of type bool"),
    ],
)
def test_targets_that_would_be_misread_are_refused(bad_targets, message):
    with pytest.raises(AlwidgetError, match=message):
        al.Pool(rows(), targets=bad_targets)


def test_ids_of_the_wrong_count_or_as_a_set_are_alwidget_errors():
    with pytest.raises(InvalidArgumentError, match="got 3 ids for 30 items"):
        tabular_pool(ids=[1, 2, 3])
    with pytest.raises(InvalidArgumentTypeError, match="no order"):
        tabular_pool(ids=set(range(N_ROWS)))


def test_a_held_out_split_needs_items_and_known_targets():
    with pytest.raises(InvalidArgumentError, match="test_targets given without test_items"):
        tabular_pool(test_targets=targets(6))
    with pytest.raises(InvalidArgumentError, match="test_targets: item 0 has no target"):
        tabular_pool(test_items=rows(6), test_targets=[None, 1, 0, 1, 0, 1])


def test_rows_without_columns_are_refused():
    with pytest.raises(InvalidArgumentError, match="no columns"):
        al.Pool(np.zeros((N_ROWS, 0), dtype=np.float32), targets=targets())


# ---------------------------------------------------------------------------- sessions
@pytest.mark.parametrize("seed", [-1, 2**70, 1.5, True])
def test_seeds_outside_the_usable_range_are_refused(seed):
    with pytest.raises(AlwidgetError, match="seed"):
        session(seed=seed)


@pytest.mark.parametrize("score_subset", [-3, 0, 2.5])
def test_a_score_subset_that_scores_nothing_is_refused(score_subset):
    with pytest.raises(AlwidgetError, match="score_subset must be None"):
        session(score_subset=score_subset)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails_at_the_session_not_at_the_first_query():
    with pytest.raises(DeviceUnavailableError, match="device='cuda' cannot be used.*device='cpu'"):
        session(device="cuda")


@pytest.mark.parametrize("device", ["tpu9", "meta", 3])
def test_devices_torch_cannot_use_are_refused(device):
    with pytest.raises(AlwidgetError, match="device"):
        session(device=device)


class IntegerLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def forward(self, inputs):
        return self.layer(inputs).round().long()


class NoParameters(nn.Module):
    def forward(self, inputs):
        return inputs[:, :2]


@pytest.mark.parametrize(
    "model, message",
    [
        (nn.Sequential(nn.Linear(4, 2)).double(), r"float64 weights.*model.float\(\)"),
        (IntegerLogits(), "int64 outputs"),
        (NoParameters(), "has no parameters"),
        (nn.Sequential(nn.Linear(4, 2)).requires_grad_(False), "every parameter frozen"),
        (nn.Sequential(nn.Linear(5, 2)), r"failed on one pool input of shape \(1, 4\)"),
    ],
)
def test_models_alwidget_cannot_train_are_refused_at_the_session(model, message):
    with pytest.raises(UnsupportedModelError, match=message):
        session(model=model)


def _raising_factory():
    raise ZeroDivisionError("division by zero")


@pytest.mark.parametrize(
    "model, message",
    [
        ("resnet", "unknown model 'resnet'"),
        ("small_cnn", "a CNN needs image inputs.*model='mlp'"),
        (5, "model must be a name, an nn.Module or a factory"),
        (lambda: "x", "returned str, not an nn.Module"),
        (_raising_factory, "_raising_factory raised ZeroDivisionError"),
    ],
)
def test_model_arguments_that_build_no_model_are_named(model, message):
    with pytest.raises(AlwidgetError, match=message):
        session(model=model)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"batch_size": 0}, "batch_size must be ≥ 1"),
        ({"lr": -1}, "lr must be > 0"),
        ({"lr": float("nan")}, "lr must be finite"),
        ({"validation_fraction": 1}, r"validation_fraction must be in \[0, 1\)"),
        ({"min_steps": 10, "max_steps": 5}, "min_steps=10 is above max_steps=5"),
        ({"max_epochs": 2.5}, "max_epochs must be an integer"),
        ({"balanced": "yes"}, "balanced must be True or False"),
        ({"augment": "flip"}, "unknown augment 'flip'"),
        ({"augment": 3}, "augment must be None"),
    ],
)
def test_train_config_is_checked_when_built(settings, message):
    with pytest.raises(AlwidgetError, match=message):
        al.TrainConfig(**settings)


def test_a_train_config_changed_after_it_was_built_is_checked_at_retrain():
    work = session()
    work.label([0, 1, 2, 3], [0, 1, 0, 1])
    work.train_config.batch_size = 0
    with pytest.raises(InvalidArgumentError, match="batch_size must be ≥ 1"):
        work.retrain()
    assert work.model_version == 0


def test_a_learning_rate_that_makes_training_diverge_says_so():
    work = session(train_config=al.TrainConfig(min_steps=20, max_steps=20, lr=1e30))
    work.label([0, 1, 2, 3], [0, 1, 0, 1])
    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        work.retrain()


@pytest.mark.parametrize(
    "name, error",
    [(None, InvalidArgumentTypeError), ("  ", InvalidArgumentError), ("1", InvalidArgumentError)],
)
def test_add_class_refuses_none_empty_and_existing_names(name, error):
    work = session()
    with pytest.raises(error, match="add_class"):
        work.add_class(name)
    assert work.classes == ["0", "1"]


@pytest.mark.parametrize(
    "ids, labels, message",
    [
        ([0, 1], {"0", "1"}, "labels is a set"),
        ({0, 1}, ["0", "1"], "ids is a set"),
        ({0: "0"}, ["0"], "ids is a dict"),
        ([0, 1, 2], ["0", "1"], "got 3 ids but 2 labels"),
    ],
)
def test_label_refuses_unordered_or_mismatched_arguments_and_stores_nothing(ids, labels, message):
    work = session()
    work.label(5, "1")
    with pytest.raises(AlwidgetError, match=message):
        work.label(ids, labels)
    assert work.labels == {5: "1"}


def test_bald_without_dropout_advises_an_ensemble_that_then_works():
    with pytest.raises(StrategyModelMismatchError, match="pass ensemble=5") as refused:
        session(model=Linear, strategy="bald")
    assert "mc_samples" in str(refused.value)
    work = session(model=Linear, strategy="bald", ensemble=3)
    assert (work.ensemble, work.mc_samples) == (3, 1)
    work.label([0, 1, 2, 3], [0, 1, 0, 1])
    work.retrain()
    assert len(work.query(2).ids) == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"strategy": "nonsense"}, "unknown strategy 'nonsense'"),
        ({"strategy": 5}, "strategy must be a name"),
        ({"ensemble": 0}, "ensemble must be ≥ 1"),
        ({"batch_size": 0}, "batch_size must be ≥ 1"),
        ({"chunk_size": 0}, "chunk_size must be ≥ 1"),
        ({"cv_folds": -1}, "cv_folds must be ≥ 0"),
        ({"track_coverage": "no"}, "track_coverage must be True, False or None"),
        ({"annotator": ""}, "annotator must be a non-empty string"),
        ({"train_config": {"lr": 1e-3}}, "train_config must be an alwidget.TrainConfig"),
        ({"mc_samples": 0}, "mc_samples must be ≥ 1"),
    ],
)
def test_session_arguments_are_checked(overrides, message):
    with pytest.raises(AlwidgetError, match=message):
        session(**overrides)


def test_a_session_needs_a_pool():
    with pytest.raises(InvalidArgumentTypeError, match="alwidget.Pool"):
        session(pool=rows())


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_query_sizes_that_are_not_positive_integers_are_refused(size):
    with pytest.raises(AlwidgetError, match="batch_size"):
        session().query(size)


def test_retrain_callbacks_must_be_callable():
    work = session()
    work.label([0, 1, 2, 3], [0, 1, 0, 1])
    with pytest.raises(InvalidArgumentTypeError, match="progress must be a function"):
        work.retrain(progress=5)


# ---------------------------------------------------------------------- data files, CLI
def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_a_corrupt_gz_file_is_a_data_file_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"certainly not gzip")
    with pytest.raises(DataFileError, match="cannot be read .*download it again"):
        read_idx(path)


def test_mnist_files_that_do_not_belong_together_are_named(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2))
    with pytest.raises(DataFileError, match="do not belong together"):
        load_mnist(tmp_path)


def cli_error(args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "usage: python -m alwidget" in captured.err and "Traceback" not in captured.err
    return captured.err


def test_cli_negative_and_huge_seeds_exit_2_with_usage(capsys):
    assert "--seed: must be ≥ 0" in cli_error(["simulate", "--seed", "-1"], capsys)
    assert "--seed: must be ≤ 4294967295" in cli_error(
        ["simulate", "--seed", "2" + "0" * 20], capsys
    )


def test_cli_corrupt_gz_mnist_exits_2_with_usage(tmp_path, capsys):
    for stem in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (tmp_path / f"{stem}-ubyte.gz").write_bytes(b"not gzip")
    error = cli_error(["simulate", "--dataset", "mnist", "--data-root", str(tmp_path)], capsys)
    assert "cannot be read" in error and "BadGzipFile" in error


def test_bench_out_pointing_at_a_file_exits_2_with_usage(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("")
    error = cli_error(["bench", "--data-root", str(tmp_path), "--out", str(out)], capsys)
    assert "is a file, not a folder" in error


def test_cli_late_checks_print_the_subcommand_usage(capsys):
    error = cli_error(["simulate", "--initial", "5000", "--rounds", "0"], capsys)
    assert "usage: python -m alwidget simulate" in error
    assert "5000 labels, but pool 'digits' has only 1258 items" in error


def test_simulate_reports_the_initial_labels_it_gave():
    values = np.array([0] * 27 + [1] * 3)  # class 1 has fewer items than its share of 10
    pool = al.Pool(rows(), targets=values)
    result = simulate(pool, initial=10, rounds=0, train_config=fast())
    assert result["initial"] == result["rounds"][0]["n_labels"] == 8
