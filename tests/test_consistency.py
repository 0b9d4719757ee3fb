"""Consistency training (FixMatch-style) and weight averaging: seeded and reproducible, off
means the training of before, the time budget holds, bad settings are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import alwidget as al
from alwidget.errors import InvalidArgumentError
from alwidget.training import FeatureNoise, StrongImageAugment, TrainConfig, train_model

CPU = torch.device("cpu")
STEPS = dict(min_steps=25, max_steps=25, batch_size=16)


@pytest.fixture(scope="module")
def digit_images():
    """Embedded 8x8 digits as ``(N, 1, 8, 8)`` inputs: 40 labeled, 200 unlabeled."""
    pool = al.datasets.load_digits()
    inputs = pool.inputs(np.arange(240))
    return inputs[:40], pool.targets[:40], inputs[40:]


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Dropout(0.25), nn.Linear(8 * 4 * 4, 10),
    )  # fmt: skip


def trained(inputs, targets, config, *, seed=3, **extra):
    model = small_cnn(0) if inputs.ndim == 4 else mlp(0)
    report = train_model(model, inputs, targets, config, seed=seed, device=CPU, **extra)
    return torch.cat([p.detach().flatten() for p in model.parameters()]), report


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def test_consistency_training_is_seeded_and_reproducible(digit_images):
    inputs, targets, unlabeled = digit_images
    config = TrainConfig(**STEPS, semi_supervised="fixmatch", consistency_threshold=0.5,
                         consistency_seconds=None, unlabeled_batch=32)  # fmt: skip
    first, report = trained(inputs, targets, config, unlabeled=unlabeled)
    again, _ = trained(inputs, targets, config, unlabeled=unlabeled)
    assert torch.equal(first, again)
    assert report.consistency_steps == report.steps == 25
    assert 0 <= report.consistency_mask_rate <= 1
    other_seed, _ = trained(inputs, targets, config, seed=4, unlabeled=unlabeled)
    assert not torch.equal(first, other_seed)


def test_switched_off_is_the_training_of_before(digit_images):
    inputs, targets, unlabeled = digit_images
    plain = TrainConfig(**STEPS)
    before, report = trained(inputs, targets, plain)
    assert (report.n_pseudo_labels, report.consistency_steps) == (0, 0)
    assert report.consistency_mask_rate is None
    # Unlabeled items handed over while consistency training is off change nothing...
    ignored, _ = trained(inputs, targets, plain, unlabeled=unlabeled)
    assert torch.equal(before, ignored)
    # ...and a pass with it on does, as do pseudo-labels (so the comparison can fail).
    on = TrainConfig(**STEPS, semi_supervised="fixmatch", consistency_threshold=0.0,
                     consistency_seconds=None)  # fmt: skip
    assert not torch.equal(before, trained(inputs, targets, on, unlabeled=unlabeled)[0])
    pseudo = (unlabeled[:30], np.arange(30) % 10)
    with_pseudo, report = trained(inputs, targets, plain, pseudo=pseudo)
    assert report.n_pseudo_labels == 30 and not torch.equal(before, with_pseudo)
    # An averaging decay of 0 keeps exactly the last weights.
    assert torch.equal(
        before, trained(inputs, targets, TrainConfig(**STEPS, weight_averaging=0.0))[0]
    )
    averaged, _ = trained(inputs, targets, TrainConfig(**STEPS, weight_averaging=0.9))
    assert not torch.equal(before, averaged)


def test_the_time_budget_ends_consistency_steps_not_training(digit_images):
    inputs, targets, unlabeled = digit_images
    config = TrainConfig(**STEPS, semi_supervised="fixmatch", consistency_seconds=1e-9)
    _, report = trained(inputs, targets, config, unlabeled=unlabeled)
    assert report.steps == 25 and report.consistency_steps == 0


def test_feature_vectors_get_feature_space_perturbations():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(3, 6))
    labels = np.repeat(np.arange(3), 5)
    inputs = torch.tensor(centres[labels] + rng.normal(size=(15, 6)), dtype=torch.float32)
    unlabeled = torch.tensor(
        centres[np.arange(90) % 3] + rng.normal(size=(90, 6)), dtype=torch.float32
    )
    config = TrainConfig(**STEPS, augment=None, semi_supervised="fixmatch",
                         consistency_threshold=0.6, consistency_seconds=None)  # fmt: skip
    first, report = trained(inputs, labels, config, unlabeled=unlabeled)
    assert torch.equal(first, trained(inputs, labels, config, unlabeled=unlabeled)[0])
    assert report.consistency_steps == 25 and report.consistency_mask_rate > 0
    plain, _ = trained(inputs, labels, TrainConfig(**STEPS, augment=None))
    assert not torch.equal(first, plain)


def test_strong_views_are_seeded_and_keep_the_shape():
    images = torch.linspace(0, 1, 2 * 1 * 10 * 12).reshape(2, 1, 10, 12)
    strong = StrongImageAugment()
    one = strong(images, torch.Generator().manual_seed(5))
    assert one.shape == images.shape
    assert torch.equal(one, strong(images, torch.Generator().manual_seed(5)))
    assert not torch.allclose(one, images)
    features = torch.ones(4, 50)
    dropped = FeatureNoise(dropout=0.5, noise=0.0)(features, torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and rescaled


def test_session_retrain_records_consistency_steps():
    pool = al.datasets.load_digits()
    config = TrainConfig(min_steps=15, max_steps=15, semi_supervised="fixmatch",
                         unlabeled_sample=100, consistency_seconds=None)  # fmt: skip
    session = al.Session(pool, seed=0, store=False, cv_folds=0, track_coverage=False,
                         train_config=config)  # fmt: skip
    ids = [pool.ids[p] for p in range(30)]
    session.label(ids, [int(pool.targets[p]) for p in range(30)])
    report = session.retrain()
    assert report.consistency_steps == 15 == session.history[-1]["consistency_steps"]
    assert session.labels == {i: pool.classes[pool.targets[pool.position(i)]] for i in ids}


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"semi_supervised": "mixmatch"}, "'fixmatch'"),
        ({"weight_averaging": 1.0}, "weight_averaging"),
        ({"consistency_threshold": -0.1}, "consistency_threshold"),
        ({"consistency_seconds": 0}, "consistency_seconds"),
        ({"unlabeled_batch": 0}, "unlabeled_batch"),
    ],
)
def test_bad_consistency_settings_name_the_field(settings, words):
    with pytest.raises(InvalidArgumentError) as error:
        TrainConfig(**settings)
    assert words in str(error.value)
