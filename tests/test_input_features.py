"""The untrained model's feature space (issue 12): pooled, projected inputs, cached.

Before its first training run a model built from scratch has random weights, so the map,
coverage and the cold start use :class:`InputFeatures` instead of a forward pass over the
whole pool. These tests pin down what that promises: the rows are the projection of the
pooled inputs, read once, in bounded chunks, for a pool that may grow, and one map fit never
mixes two feature spaces.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch
from fixtures.widget_sessions import FAST_TRAINING
from torch import nn

import alwidget as al
from alwidget.embedding.projection import MapProjector
from alwidget.embedding.session_map import SessionMap
from alwidget.models import SMALL_CNN_MAX_SIDE, GalCNN, ModelFactory
from alwidget.session.input_features import CHUNK_ROWS, COMPONENTS, FIT_ROWS, InputFeatures


class CountingPool:
    """A pool of image rows that records which positions each ``inputs`` call read."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images
        self.calls: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.images)

    def inputs(self, positions) -> torch.Tensor:
        positions = np.asarray(positions)
        self.calls.append(positions.copy())
        return torch.as_tensor(self.images[positions])


def striped_images(n: int, side: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB images of three kinds: bright top half, bright left half, dark, plus noise."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(3, size=n)
    images = 0.1 * rng.random((n, 3, side, side), dtype=np.float32)
    images[kinds == 0, :, : side // 2, :] += 1.0
    images[kinds == 1, :, :, : side // 2] += 1.0
    return images, kinds


def test_rows_are_the_pooled_inputs_projected_on_their_principal_axes():
    images, kinds = striped_images(300)
    features = InputFeatures(CountingPool(images), seed=0)
    rows = features.rows(np.arange(300))
    assert rows.shape == (300, min(COMPONENTS, 3 * 12 * 12)) and rows.dtype == np.float32
    # Projection keeps distances between kinds: each row is nearest its own kind's centre.
    centres = np.stack([rows[kinds == k].mean(axis=0) for k in range(3)])
    nearest = np.linalg.norm(rows[:, None] - centres[None], axis=2).argmin(axis=1)
    assert (nearest == kinds).all()
    # The axes are orthonormal, so the projection of centred pooled inputs keeps their norms
    # up to what the dropped components held (three kinds: the first two hold nearly all).
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(images), 12)
    flat = pooled.reshape(300, -1).numpy().astype(np.float64)
    centred = flat - flat.mean(axis=0)
    kept = np.linalg.norm(rows, axis=1) / np.linalg.norm(centred, axis=1)
    assert kept.min() > 0.9 and kept.max() < 1.0 + 1e-4


def test_rows_are_read_once_in_bounded_chunks_and_served_from_the_cache():
    images, _ = striped_images(2 * CHUNK_ROWS + 500, side=16)
    pool = CountingPool(images)
    features = InputFeatures(pool, seed=3)
    first = features.all()
    reads = np.concatenate(pool.calls)
    assert max(len(call) for call in pool.calls) <= CHUNK_ROWS
    # The axes are fitted on a seeded sample of FIT_ROWS rows, whose features are kept; every
    # row is read exactly once.
    np.testing.assert_array_equal(np.sort(reads), np.arange(len(images)))
    pool.calls.clear()
    again = features.rows(np.array([5, 5, 2400, 0]))
    assert pool.calls == []
    np.testing.assert_array_equal(again, first[[5, 5, 2400, 0]])


def test_a_subset_first_then_the_rest_reads_only_the_rest():
    images, _ = striped_images(2600, side=8)
    pool = CountingPool(images)
    features = InputFeatures(pool, seed=0)
    subset = features.rows(np.arange(0, 2600, 4))
    known = features.known(np.arange(2600))
    assert known[::4].all() and FIT_ROWS <= known.sum() < 2600  # the fit's sample and the subset
    pool.calls.clear()
    everything = features.all()
    np.testing.assert_array_equal(np.sort(np.concatenate(pool.calls)), np.flatnonzero(~known))
    np.testing.assert_array_equal(everything[::4], subset)


def test_a_query_and_the_map_starting_together_read_every_row_once():
    images, _ = striped_images(4000, side=8)
    pool = CountingPool(images)
    features = InputFeatures(pool, seed=2)
    results = {}
    threads = [
        threading.Thread(target=lambda: results.setdefault("map", features.all())),
        threading.Thread(target=lambda: results.setdefault("query", features.rows(np.arange(1, 4000, 3)))),
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_array_equal(np.sort(np.concatenate(pool.calls)), np.arange(4000))
    np.testing.assert_array_equal(results["map"][1::3], results["query"])


def test_a_grown_pool_projects_new_rows_on_the_same_axes():
    images, _ = striped_images(600)
    pool = CountingPool(images[:400])
    features = InputFeatures(pool, seed=1)
    before = features.all()
    pool.images = images  # 200 more items arrive
    after = features.all()
    assert after.shape == (600, before.shape[1])
    np.testing.assert_array_equal(after[:400], before)
    # The new rows equal what the same axes give them when read from scratch.
    fresh = InputFeatures(CountingPool(images[:400]), seed=1)
    fresh.all()
    fresh.pool.images = images
    np.testing.assert_array_equal(fresh.rows(np.arange(400, 600)), after[400:])


def test_the_same_seed_gives_the_same_features():
    images, _ = striped_images(2500, side=8)
    one = InputFeatures(CountingPool(images), seed=7).rows(np.arange(0, 2500, 50))
    two = InputFeatures(CountingPool(images), seed=7).rows(np.arange(0, 2500, 50))
    np.testing.assert_array_equal(one, two)


class CountingCNN(nn.Module):
    """A small image model with dropout that counts the items it was asked to predict."""

    seen = 0

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(16, 16), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.out = nn.Linear(16, num_classes)

    def forward(self, x):
        CountingCNN.seen += len(x)
        return self.out(self.dropout(self.body(x)))


def image_pool(n: int = 300) -> al.Pool:
    images, kinds = striped_images(n)
    channels_last = np.clip(images, 0, 1).transpose(0, 2, 3, 1)
    return al.Pool(channels_last, targets=kinds, classes=["top", "left", "dark"])


def label_truly(session, batch):
    session.label(
        batch.ids, [int(session.pool.targets[session.pool.position(i)]) for i in batch.ids]
    )


def test_an_untrained_random_model_maps_by_input_features_without_a_forward_pass():
    session = al.Session(
        image_pool(), model=CountingCNN, strategy="bald", seed=0, store=False,
        train_config=FAST_TRAINING, cv_folds=0,
    )  # fmt: skip
    CountingCNN.seen = 0
    features = session.embeddings()
    assert CountingCNN.seen == 0
    np.testing.assert_array_equal(features, session.model.input_features.all())
    label_truly(session, session.query(6))
    session.retrain()
    trained = session.embeddings()
    assert CountingCNN.seen > 0 and trained.shape == (300, 16)


def test_a_users_module_with_its_weights_keeps_its_own_features_before_training():
    torch.manual_seed(0)
    module = CountingCNN()
    session = al.Session(image_pool(), model=module, seed=0, store=False, cv_folds=0)
    CountingCNN.seen = 0
    assert session.embeddings().shape == (300, 16)
    assert CountingCNN.seen >= 300


def test_cold_start_lasts_past_the_cap_while_the_model_is_untrained_and_random():
    session = al.Session(image_pool(), model="small_cnn", seed=0, store=False, cv_folds=0)
    for _ in range(5):  # 50 labels: beyond 10 per class for 3 classes
        label_truly(session, session.query(10))
    session.query(5)
    assert session.last_query_timings["mode"] == "cold start"
    assert "not trained" in session.last_query_timings["reason"]


def test_cold_start_hands_over_at_the_cap_for_a_pretrained_module():
    # The user's weights are not noise: past 10 labels per class the strategy ranks.
    torch.manual_seed(0)
    session = al.Session(image_pool(), model=CountingCNN(), seed=0, store=False, cv_folds=0)
    while session.n_labels < 30:
        label_truly(session, session.query(10))
    session.query(5)
    assert session.last_query_timings["mode"] == "strategy"


def test_one_map_fit_reads_one_feature_space_even_if_a_retrain_ends_midway():
    session = al.Session(
        image_pool(), model=CountingCNN, seed=0, store=False, train_config=FAST_TRAINING,
        cv_folds=0,
    )  # fmt: skip
    label_truly(session, session.query(9))
    session_map = SessionMap(session, projector=MapProjector(fit_sample_size=100, seed=0))
    features_of = session_map._pinned_features_of()
    sample = features_of(np.arange(0, 300, 3))
    session.retrain()  # the model changes between the sample's read and the whole pool's
    assert session.model_version == 1
    everything = features_of(None)
    assert sample.shape[1] == everything.shape[1] == session.model.input_features.width
    np.testing.assert_array_equal(everything[::3], sample)
    # A fit started now reads the trained model's features, sample and all alike.
    after = session_map._pinned_features_of()
    np.testing.assert_allclose(after(np.arange(5)), after(None)[:5], rtol=1e-5, atol=1e-6)
    assert after(None).shape == (300, 16)


def test_small_cnn_pools_large_images_and_leaves_small_ones_alone():
    large = ModelFactory("small_cnn", (3, 96, 96), 4).build(0)
    assert isinstance(large[0], nn.AdaptiveAvgPool2d)
    assert large[0].output_size == (SMALL_CNN_MAX_SIDE, SMALL_CNN_MAX_SIDE)
    assert large(torch.zeros(2, 3, 96, 96)).shape == (2, 4)
    wide = ModelFactory("small_cnn", (1, 40, 160), 3).build(0)
    assert wide[0].output_size == (8, 32)  # 3×3 padded kernels below 20 px a side
    assert wide(torch.zeros(1, 1, 40, 160)).shape == (1, 3)
    mnist = ModelFactory("small_cnn", (1, 28, 28), 10).build(0)
    assert isinstance(mnist, GalCNN)
    assert ModelFactory("gal_cnn", (3, 96, 96), 4).build(0)[0].in_channels == 3


def test_a_new_session_fits_the_cold_start_features_before_the_first_query():
    pool = image_pool()
    session = al.Session(pool, model="small_cnn", seed=0, store=False, cv_folds=0)
    features = session.model.input_features
    deadline = time.monotonic() + 60
    while not features.known(np.arange(len(pool))).any() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert features.known(np.arange(len(pool))).all()  # 300 items: the fit read them all
    assert features.width == COMPONENTS
    quiet = al.Session(pool, model="small_cnn", seed=0, store=False, cold_start=False)
    time.sleep(0.2)
    assert not quiet.model.input_features.known(np.arange(len(pool))).any()
