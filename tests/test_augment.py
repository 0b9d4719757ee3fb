"""Mini-batch augmentation: the transform itself and how training uses it."""

import numpy as np
import pytest
import torch

from alwidget import augment as aug
from alwidget.models import GalCNN
from alwidget.training import TrainConfig, train_model


def _bright_square_batch(count=4, size=16):
    images = torch.zeros(count, 1, size, size)
    images[:, :, 6:10, 6:10] = 1.0
    return images


def test_zero_ranges_are_the_identity():
    images = torch.rand(3, 2, 12, 10)
    same = aug.RandomAffine(0.0, 0.0, 0.0)(images, torch.Generator().manual_seed(1))
    assert same.shape == images.shape and same.dtype == images.dtype
    assert torch.allclose(same, images, atol=1e-5)


def test_transforms_are_drawn_per_image_and_seeded():
    images = _bright_square_batch()
    affine = aug.RandomAffine(max_rotation=20, max_shift=0.2, max_scale=0.1)
    first = affine(images, torch.Generator().manual_seed(3))
    again = affine(images, torch.Generator().manual_seed(3))
    other = affine(images, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # Identical inputs, different outputs: each image got its own transform.
    assert not torch.equal(first[0], first[1])


def test_pure_shift_moves_the_centre_of_mass_within_the_range():
    images = _bright_square_batch(count=32, size=20)
    moved = aug.RandomAffine(max_rotation=0, max_shift=0.1, max_scale=0)(
        images, torch.Generator().manual_seed(0)
    )
    coordinates = torch.arange(20, dtype=torch.float32)

    def centre(batch):
        mass = batch[:, 0].sum(dim=(1, 2))
        return (batch[:, 0].sum(dim=1) * coordinates).sum(dim=1) / mass

    displacement = (centre(moved) - centre(images)).abs()
    assert displacement.max() <= 0.1 * 20 + 0.5
    assert displacement.max() > 0.5


def test_border_padding_keeps_a_nonzero_background():
    images = torch.full((2, 1, 10, 10), -0.4)
    moved = aug.RandomAffine(max_rotation=30, max_shift=0.3, max_scale=0.2)(
        images, torch.Generator().manual_seed(0)
    )
    assert torch.allclose(moved, images)


@pytest.mark.parametrize("arguments", [(-1, 0.1, 0.1), (10, -0.1, 0.1), (10, 0.1, 1.0)])
def test_bad_ranges_are_refused(arguments):
    with pytest.raises(ValueError, match="RandomAffine"):
        aug.RandomAffine(*arguments)


def test_resolve_names_callables_and_mistakes():
    assert aug.resolve_augment(None) is None and aug.resolve_augment("none") is None
    assert isinstance(aug.resolve_augment("affine"), aug.RandomAffine)
    assert isinstance(aug.resolve_augment("auto", images=True), aug.RandomAffine)
    assert aug.resolve_augment("auto", images=False) is None

    def flip(batch, generator):
        return batch.flip(-1)

    assert aug.resolve_augment(flip) is flip
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'.*affine.*auto"):
        aug.resolve_augment("rotate")
    with pytest.raises(TypeError, match="augment must be"):
        aug.resolve_augment(3)


def _tiny_images(seed=0, count=40):
    rng = np.random.default_rng(seed)
    inputs = torch.from_numpy(rng.normal(size=(count, 1, 12, 12)).astype(np.float32))
    targets = np.arange(count) % 4
    return inputs, targets


def test_affine_on_tabular_inputs_names_the_problem():
    inputs = torch.zeros(20, 8)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\); got \(2, 8\)"):
        train_model(
            torch.nn.Linear(8, 2),
            inputs,
            np.arange(20) % 2,
            TrainConfig(min_steps=1, max_steps=1, augment="affine"),
            seed=0,
            device=torch.device("cpu"),
        )


def test_auto_augments_images_and_leaves_tabular_inputs_alone(monkeypatch):
    calls = []
    original = aug.RandomAffine.__call__

    def counting(self, batch, generator):
        calls.append(tuple(batch.shape))
        return original(self, batch, generator)

    config = TrainConfig(min_steps=3, max_steps=3)
    assert config.augment == "auto"
    monkeypatch.setattr(aug.RandomAffine, "__call__", counting)
    train_model(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2)),
        torch.zeros(20, 8),
        np.arange(20) % 2,
        config,
        seed=0,
        device=torch.device("cpu"),
    )
    assert calls == []
    inputs, targets = _tiny_images()
    train_model(
        GalCNN(1, 12, 4, kernel_size=3, padding=1),
        inputs,
        targets,
        config,
        seed=0,
        device=torch.device("cpu"),
    )
    assert len(calls) == 1 + 3 and all(len(shape) == 4 for shape in calls)


def test_an_augmentation_that_changes_the_shape_is_refused_before_training():
    inputs, targets = _tiny_images()

    def crop(batch, generator):
        return batch[..., 1:, 1:]

    with pytest.raises(ValueError, match="same shape"):
        train_model(
            GalCNN(1, 12, 4, kernel_size=3, padding=1),
            inputs,
            targets,
            TrainConfig(min_steps=1, max_steps=1, augment=crop),
            seed=0,
            device=torch.device("cpu"),
        )


def test_training_with_augmentation_is_seeded_and_sees_augmented_batches():
    inputs, targets = _tiny_images()
    seen = []

    def recording_affine(batch, generator):
        out = aug.RandomAffine()(batch, generator)
        seen.append(torch.equal(out, batch))
        return out

    config = TrainConfig(min_steps=5, max_steps=5, augment=recording_affine)

    def trained():
        torch.manual_seed(0)
        model = GalCNN(1, 12, 4, kernel_size=3, padding=1)
        train_model(model, inputs, targets, config, seed=7, device=torch.device("cpu"))
        return model.state_dict()

    first, second = trained(), trained()
    assert all(torch.equal(first[key], second[key]) for key in first)
    # One shape probe plus one call per step, and the batches really changed.
    assert len(seen) == 2 * 6 and not any(seen)


def test_rotation_of_a_non_square_image_keeps_pixel_distances():
    # A single bright pixel off-centre in a 21×41 image: after a pure rotation about the centre
    # its distance to the centre (in pixels) must not change, whatever the aspect ratio.
    images = torch.zeros(16, 1, 21, 41)
    images[:, :, 10, 30] = 1.0  # 10 px right of the centre (row 10, column 20)
    rotated = aug.RandomAffine(max_rotation=60, max_shift=0, max_scale=0)(
        images, torch.Generator().manual_seed(0)
    )
    rows = torch.arange(21, dtype=torch.float32)[:, None]
    columns = torch.arange(41, dtype=torch.float32)[None, :]
    mass = rotated[:, 0].sum(dim=(1, 2))
    row = (rotated[:, 0] * rows).sum(dim=(1, 2)) / mass
    column = (rotated[:, 0] * columns).sum(dim=(1, 2)) / mass
    distance = torch.sqrt((row - 10) ** 2 + (column - 20) ** 2)
    assert torch.allclose(distance, torch.full_like(distance, 10.0), atol=0.6), distance
    assert (row - 10).abs().max() > 3  # it really rotated
