"""Self-supervised encoder: trains on the pool alone, within its budget, once per pool."""

import math
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import alwidget as al
import alwidget.encoders.self_supervised  # noqa: F401 - the module; the package exports the function
from alwidget.encoders.self_supervised import (
    ImageViews,
    Recipe,
    RowViews,
    SelfSupervisedError,
    input_neighbours,
    nt_xent,
    self_supervised,
)

ss_module = sys.modules["alwidget.encoders.self_supervised"]

# Small enough that an epoch of the 1 258 training digits takes well under a second.
FAST = Recipe(batch_size=128, widths=(16, 32, 64), projection_dim=32, warmup_steps=5)


@pytest.fixture(scope="module")
def digits():
    return al.datasets.load_digits()


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """One run shared by the tests that only look at its result."""
    cache = tmp_path_factory.mktemp("encoders")
    started = time.perf_counter()
    encoder = self_supervised(
        digits, time_budget=2.0, feature_dim=24, cache_dir=cache, progress=False, recipe=FAST
    )
    return encoder, cache, time.perf_counter() - started


def _features(encoder, inputs):
    with torch.inference_mode():
        return encoder(inputs).numpy()


def _probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    probe = LogisticRegression(max_iter=2000).fit((train_x - mean) / std, train_y)
    return float(probe.score((test_x - mean) / std, test_y))


def test_returns_an_eval_mode_encoder_of_feature_rows(digits, trained):
    encoder, _, _ = trained
    assert isinstance(encoder, nn.Module) and not encoder.training
    assert not any(isinstance(m, nn.Dropout) for m in encoder.modules())
    features = _features(encoder, digits.inputs(np.arange(50)))
    assert features.shape == (50, 24) and np.isfinite(features).all()
    # Eval mode: an item's features do not depend on the rest of the batch.
    alone = _features(encoder, digits.inputs(np.arange(1)))
    assert np.allclose(alone, features[:1], atol=1e-5)


def test_time_budget_is_kept_and_reported(trained):
    encoder, _, _ = trained
    report = encoder.report
    assert not report.loaded
    assert 2.0 <= report.seconds < 2.0 + 3.0  # stops at the end of the step that crosses it
    assert report.steps >= 1 and report.items_per_second > 0


def test_a_second_call_loads_the_cached_weights_without_training(digits, trained):
    encoder, cache, _ = trained
    calls = []
    started = time.perf_counter()
    again = self_supervised(
        digits, time_budget=2.0, feature_dim=24, cache_dir=cache, progress=calls.append,
        recipe=FAST,
    )  # fmt: skip
    assert time.perf_counter() - started < 1.0
    assert again.report.loaded and calls == []
    inputs = digits.inputs(np.arange(20))
    assert np.array_equal(_features(again, inputs), _features(encoder, inputs))


def test_other_settings_or_pool_do_not_share_the_cache(digits, trained, tmp_path):
    _, cache, _ = trained
    other_seed = self_supervised(
        digits, time_budget=0.3, feature_dim=24, seed=1, cache_dir=cache, progress=False,
        recipe=FAST,
    )  # fmt: skip
    assert not other_seed.report.loaded
    smaller = al.Pool(np.stack([digits.item(i) for i in digits.ids[:300]]), classes=list("ab"))
    other_pool = self_supervised(
        smaller, time_budget=0.3, feature_dim=24, cache_dir=cache, progress=False, recipe=FAST
    )
    assert not other_pool.report.loaded
    assert len(list(cache.glob("self-supervised-*.pt"))) == 3


def test_a_damaged_cache_file_is_trained_again_with_a_warning(digits, tmp_path):
    settings = dict(
        time_budget=0.5, feature_dim=16, cache_dir=tmp_path, progress=False, recipe=FAST
    )
    first = self_supervised(digits, **settings)
    path = tmp_path / first.report.path.rsplit("/", 1)[-1]
    path.write_bytes(path.read_bytes()[:200])  # a truncated write
    with pytest.warns(UserWarning, match="damaged"):
        rebuilt = self_supervised(digits, **settings)
    assert not rebuilt.report.loaded
    assert self_supervised(digits, **settings).report.loaded  # the rewritten file is good

    # Weights that load but are not finite are never used either.
    state = torch.load(path, weights_only=True)
    next(iter(state["state_dict"].values())).fill_(float("nan"))
    torch.save(state, path)
    with pytest.warns(UserWarning, match="NaN"):
        assert not self_supervised(digits, **settings).report.loaded


def test_features_let_a_linear_probe_read_the_digits(digits, trained):
    encoder, _, _ = trained
    test = digits.test
    train_x = _features(encoder, digits.inputs(np.arange(len(digits))))
    accuracy = _probe_accuracy(
        train_x, digits.targets, _features(encoder, test.inputs), test.targets
    )
    assert accuracy > 0.6  # chance is 0.1


def test_training_is_seeded_step_for_step(digits, tmp_path):
    settings = dict(time_budget=None, max_epochs=1, feature_dim=8, progress=False, recipe=FAST)
    first = self_supervised(digits, cache_dir=tmp_path / "a", seed=3, **settings)
    second = self_supervised(digits, cache_dir=tmp_path / "b", seed=3, **settings)
    other = self_supervised(digits, cache_dir=tmp_path / "c", seed=4, **settings)
    assert first.report.steps == len(digits) // FAST.batch_size
    inputs = digits.inputs(np.arange(10))
    assert np.array_equal(_features(first, inputs), _features(second, inputs))
    assert not np.allclose(_features(first, inputs), _features(other, inputs))


def test_pools_too_large_to_preload_train_the_same_batch_by_batch(digits, tmp_path, monkeypatch):
    settings = dict(time_budget=None, max_epochs=1, feature_dim=8, progress=False, recipe=FAST)
    preloaded = self_supervised(digits, cache_dir=tmp_path / "a", **settings)
    monkeypatch.setattr(ss_module, "_PRELOAD_BYTES", 0)
    read_per_batch = self_supervised(digits, cache_dir=tmp_path / "b", **settings)
    inputs = digits.inputs(np.arange(10))
    # Same pairs in the same order: the reader hands rows back in the order asked for.
    assert np.allclose(_features(preloaded, inputs), _features(read_per_batch, inputs), atol=1e-5)


def test_progress_callable_gets_the_documented_fields(digits, tmp_path):
    reports = []
    self_supervised(
        # A budget the 2 epochs never reach, even on a loaded machine: max_epochs ends it.
        digits, time_budget=600.0, max_epochs=2, feature_dim=8, cache_dir=tmp_path,
        progress=reports.append, recipe=FAST,
    )  # fmt: skip
    assert reports
    assert set(reports[-1]) == {"epoch", "step", "loss", "seconds", "budget"}
    assert reports[-1]["epoch"] == pytest.approx(2.0) and reports[-1]["budget"] == 600.0
    assert [r["step"] for r in reports] == sorted(r["step"] for r in reports)
    # NT-Xent starts at log(2B − 1), the loss of features that tell nothing apart.
    assert reports[0]["step"] <= 3
    assert reports[0]["loss"] > math.log(2 * FAST.batch_size - 1) - 0.3
    assert reports[-1]["loss"] < reports[0]["loss"] - 0.3


def test_rows_train_an_mlp_on_corrupted_views(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 12)) * 3
    rows = centres[np.repeat(np.arange(3), 100)] + rng.normal(size=(300, 12))
    pool = al.Pool(rows.astype(np.float32), targets=np.repeat(np.arange(3), 100))
    encoder = self_supervised(
        pool, time_budget=None, max_epochs=3, feature_dim=6, cache_dir=tmp_path,
        progress=False, recipe=Recipe(batch_size=64, widths=(32,), projection_dim=16),
    )  # fmt: skip
    features = _features(encoder, pool.inputs(np.arange(300)))
    assert features.shape == (300, 6) and np.isfinite(features).all()


def test_views_keep_shape_and_differ_between_draws():
    images = torch.zeros(6, 1, 12, 12)
    images[:, :, 3:9, 5:7] = 1.0
    views = ImageViews(Recipe())
    first = views(images, torch.Generator().manual_seed(0))
    assert first.shape == images.shape
    assert not torch.equal(first[0], first[1])
    assert torch.equal(first, views(images, torch.Generator().manual_seed(0)))
    rows = torch.arange(40, dtype=torch.float32).reshape(8, 5)
    corrupted = RowViews(Recipe(noise=0.0, mask_rate=0.5))(rows, torch.Generator().manual_seed(0))
    # Every value comes from the same column of some row: the marginals are kept.
    assert all(set(corrupted[:, c].tolist()) <= set(rows[:, c].tolist()) for c in range(5))
    assert not torch.equal(corrupted, rows)


@pytest.mark.parametrize("exact_up_to", [10_000, 40])
def test_neighbours_are_other_items_of_the_same_cluster(monkeypatch, exact_up_to):
    # Above ``_EXACT_NEIGHBOURS`` items the search runs in k-means cells.
    monkeypatch.setattr(ss_module, "_EXACT_NEIGHBOURS", exact_up_to)
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(3), 40)
    rows = rng.normal(size=(3, 10))[cluster] * 10 + rng.normal(size=(120, 10))
    pool = al.Pool(rows.astype(np.float32), targets=cluster)
    neighbours = input_neighbours(
        ss_module._InputReader(pool), len(pool), 4, torch.Generator().manual_seed(0)
    ).numpy()
    assert neighbours.shape == (120, 4)
    assert (neighbours != np.arange(120)[:, None]).all()
    assert (cluster[neighbours] == cluster[:, None]).mean() > 0.95


def test_nt_xent_rewards_matching_pairs():
    a = torch.eye(4) * 5
    assert nt_xent(a, a, 0.5) < nt_xent(a, a.roll(1, 0), 0.5)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"time_budget": None}, "time_budget"),
        ({"time_budget": -1}, "time_budget"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"feature_dim": 0}, "feature_dim"),
        ({"recipe": {"batch_size": 256}}, "Recipe"),
    ],
)
def test_bad_settings_name_the_argument(digits, tmp_path, settings, message):
    with pytest.raises(SelfSupervisedError, match=message):
        self_supervised(digits, cache_dir=tmp_path, progress=False, **settings)


def test_recipe_values_are_checked():
    with pytest.raises(SelfSupervisedError, match="batch_size must be at least 2"):
        Recipe(batch_size=1)
    with pytest.raises(SelfSupervisedError, match="zoom_in"):
        Recipe(zoom_in=1.0)


def test_inputs_that_are_neither_images_nor_rows_are_refused(tmp_path):
    # 4-D inputs (a volume per item) come from a Dataset of model-ready tensors.
    volumes = [torch.zeros(1, 2, 4, 4) for _ in range(4)]

    class Volumes(torch.utils.data.Dataset):
        def __len__(self):
            return len(volumes)

        def __getitem__(self, index):
            return volumes[index]

    pool = al.Pool(Volumes(), classes=["a", "b"])
    with pytest.raises(SelfSupervisedError, match="images .* or rows"):
        self_supervised(pool, cache_dir=tmp_path, progress=False)
