"""Ready-made pools: scikit-learn's digits (shipped, no file needed) and MNIST idx files."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .data import Pool
from .errors import DataFileError, DataFileNotFoundError, InvalidArgumentError
from .session.checks import check_count, check_seed

__all__ = ["blobs", "load_digits", "load_mnist", "read_idx", "repeated", "spiral", "two_moons"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_digits(test_fraction: float = 0.3, seed: int = 0) -> Pool:
    """The 1 797 8×8 handwritten digits that ship with scikit-learn, as a pool.

    Parameters
    ----------
    test_fraction : float
        Share of the images held out (stratified) for :meth:`Session.evaluate`.
    seed : int
        Seed of the split.

    Returns
    -------
    Pool
        ``8×8`` grayscale images (values 0–16), classes ``"0"``–``"9"``, ground truth for a
        simulated oracle, and a held-out split.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if not _is_number(test_fraction) or not 0.0 < test_fraction < 1.0:
        raise InvalidArgumentError(
            f"test_fraction must be a number in (0, 1) (the share held out), got {test_fraction!r}"
        )
    seed = check_seed(seed)
    bunch = sklearn_digits()
    images, targets = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(targets), dtype=bool)
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        chosen = rng.choice(members, size=int(round(len(members) * test_fraction)), replace=False)
        test_mask[chosen] = True
    return Pool(
        images[~test_mask],
        targets=targets[~test_mask],
        classes=[str(label) for label in range(10)],
        test_items=images[test_mask],
        test_targets=targets[test_mask],
        name="digits",
    )


def read_idx(path: str | Path) -> np.ndarray:
    """Read one file in the MNIST idx format (plain or ``.gz``) into a numpy array.

    Raises
    ------
    DataFileNotFoundError
        If the file does not exist.
    DataFileError
        (a ``ValueError``) If it cannot be read, is not gzip data although named ``.gz``,
        has no idx header, or is shorter or longer than its header declares.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataFileNotFoundError(f"idx file {path} not found") from None
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise DataFileError(
            f"{path} cannot be read ({type(error).__name__}: {error}); it is corrupt or not "
            "a (gzipped) idx file: download it again"
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataFileError(f"{path} is not an idx file (bad magic number); download it again")
    n_dims = data[3]
    if len(data) < 4 + 4 * n_dims:
        raise DataFileError(f"{path} is truncated inside its idx header; download it again")
    shape = struct.unpack(f">{n_dims}I", data[4 : 4 + 4 * n_dims])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    body = data[4 + 4 * n_dims :]
    if len(body) != expected:
        raise DataFileError(
            f"{path} is truncated or padded: {len(body)} bytes of data, header says "
            f"{expected}; download it again"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _find_idx(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DataFileNotFoundError(
        f"MNIST file {stem}[.gz] not found under {root} (looked in ., MNIST/raw and raw)"
    )


def _read_mnist_split(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``N×H×W`` and labels ``0..9`` of one split, checked against each other."""
    images_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataFileError(
            f"{images_path} holds an array of shape {images.shape}, not images N×H×W"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFileError(
            f"{labels_path} holds {labels.shape} labels for the {len(images)} images of "
            f"{images_path}; the files do not belong together"
        )
    labels = labels.astype(np.int64)
    if len(labels) and not (0 <= labels.min() and labels.max() <= 9):
        raise DataFileError(f"{labels_path} holds labels outside 0-9; it is not MNIST")
    return images, labels


def load_mnist(
    root: str | Path, *, limit: int | None = None, test_limit: int | None = None, seed: int = 0
) -> Pool:
    """MNIST from its original idx files, read without torchvision.

    Parameters
    ----------
    root : path
        A folder holding ``train-images-idx3-ubyte[.gz]`` and friends, directly or under
        ``MNIST/raw`` (torchvision's layout).
    limit, test_limit : int, optional
        Use a random subset of this many training / test images (seeded).
    seed : int
        Seed for the subsets.

    Returns
    -------
    Pool
        60 000 28×28 uint8 training images as the pool (ground truth attached) and the
        10 000 test images as the held-out split.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFileNotFoundError(f"MNIST root {root} is not a folder")
    for value, argument in ((limit, "limit"), (test_limit, "test_limit")):
        if value is not None:
            check_count(value, argument, 1, "items to keep, or None for all")
    seed = check_seed(seed)
    train_x, train_y = _read_mnist_split(root, "train")
    test_x, test_y = _read_mnist_split(root, "t10k")
    rng = np.random.default_rng(seed)
    if limit is not None and limit < len(train_x):
        keep = np.sort(rng.choice(len(train_x), size=limit, replace=False))
        train_x, train_y = train_x[keep], train_y[keep]
    if test_limit is not None and test_limit < len(test_x):
        keep = np.sort(rng.choice(len(test_x), size=test_limit, replace=False))
        test_x, test_y = test_x[keep], test_y[keep]
    return Pool(
        train_x,
        targets=train_y,
        classes=[str(label) for label in range(10)],
        test_items=test_x,
        test_targets=test_y,
        name="mnist",
    )


def repeated(pool: Pool, repeats: int = 3, noise_std: float = 0.1, seed: int = 0) -> Pool:
    """Repeated MNIST (Kirsch et al. 2019): each item ``repeats`` times plus Gaussian noise.

    Noise is added in the scale of ``[0, 1]`` pixels, so ``noise_std=0.1`` matches the paper
    for uint8 images. The held-out split is kept as it is.
    """
    repeats = check_count(repeats, "repeats", 1, "copies of each item")
    if not _is_number(noise_std) or not 0 <= noise_std < math.inf:
        raise InvalidArgumentError(
            f"noise_std must be a finite number ≥ 0 (e.g. 0.1), got {noise_std!r}"
        )
    seed = check_seed(seed)
    positions = np.arange(len(pool))
    items = np.stack([np.asarray(pool.item(pool.ids[p])) for p in positions]).astype(np.float32)
    peak = 255.0 if items.max() > 1.0 else 1.0
    rng = np.random.default_rng(seed)
    copies = [
        items + rng.normal(0.0, noise_std * peak, size=items.shape).astype(np.float32)
        for _ in range(repeats)
    ]
    test = pool.held_out_pool
    return Pool(
        np.concatenate(copies),
        targets=np.tile(pool.targets, repeats),
        classes=pool.classes,
        test_items=None if test is None else np.stack([test.item(i) for i in test.ids]),
        test_targets=None if test is None else test.targets,
        name=f"repeated-{pool.name}",
    )


# ---------------------------------------------------------------------------- 2-D toy pools
def _check_toy_arguments(n_items, noise, test_fraction, seed, minimum_items: int):
    n_items = check_count(n_items, "n_items", minimum_items, "points in the pool")
    if not _is_number(noise) or not 0 <= noise < math.inf:
        raise InvalidArgumentError(f"noise must be a finite number ≥ 0 (e.g. 0.1), got {noise!r}")
    if not _is_number(test_fraction) or not 0.0 <= test_fraction < 1.0:
        raise InvalidArgumentError(
            f"test_fraction must be a number in [0, 1) (the share held out), got {test_fraction!r}"
        )
    return n_items, float(noise), float(test_fraction), check_seed(seed)


def _check_small_count(value, argument: str, minimum: int, maximum: int, meaning: str) -> int:
    value = check_count(value, argument, minimum, meaning)
    if value > maximum:
        raise InvalidArgumentError(
            f"{argument} must be at most {maximum} ({meaning}; more do not fit the plane "
            f"legibly), got {value}"
        )
    return value


def _toy_pool(points, targets, classes, test_fraction, seed, name) -> Pool:
    """Split ``points`` into a pool and a held-out share (stratified, seeded)."""
    points = np.asarray(points, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.int64)
    rng = np.random.default_rng(seed + 1)
    test_mask = np.zeros(len(targets), dtype=bool)
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        held = int(round(len(members) * test_fraction))
        test_mask[rng.choice(members, size=held, replace=False)] = True
    has_test = bool(test_mask.any())
    return Pool(
        points[~test_mask],
        targets=targets[~test_mask],
        classes=classes,
        test_items=points[test_mask] if has_test else None,
        test_targets=targets[test_mask] if has_test else None,
        name=name,
    )


def two_moons(
    n_items: int = 400, *, noise: float = 0.15, test_fraction: float = 0.25, seed: int = 0
) -> Pool:
    """Two interleaving half circles in 2-D: the classic toy where a boundary must bend.

    Parameters
    ----------
    n_items : int
        Points in all (pool and held-out split together), at least 8.
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate.
    test_fraction : float
        Share of the points held out (stratified) for :meth:`Session.evaluate`; 0 for none.
    seed : int
        Seeds the points and the split.

    Returns
    -------
    Pool
        Tabular ``N×2`` float32 points, classes ``"upper"`` and ``"lower"``, ground truth for
        a simulated oracle, and a held-out split.
    """
    from sklearn.datasets import make_moons

    n_items, noise, test_fraction, seed = _check_toy_arguments(
        n_items, noise, test_fraction, seed, 8
    )
    points, targets = make_moons(n_samples=n_items, noise=noise, random_state=seed)
    return _toy_pool(points, targets, ["upper", "lower"], test_fraction, seed, "two-moons")


def blobs(
    n_items: int = 400,
    *,
    n_classes: int = 4,
    spread: float = 1.0,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Pool:
    """Gaussian blobs in 2-D, one per class, with centres on a circle so neighbours overlap.

    Parameters
    ----------
    n_items : int
        Points in all, at least 4 per class.
    n_classes : int
        Number of blobs (2–10).
    spread : float
        Standard deviation of each blob; the centres are 3 apart, so 1.0 makes neighbouring
        blobs overlap a little (ambiguous points between them).
    test_fraction, seed
        As for :func:`two_moons`.

    Returns
    -------
    Pool
        Tabular ``N×2`` float32 points, classes ``"A"``, ``"B"``, ….
    """
    n_classes = _check_small_count(n_classes, "n_classes", 2, 10, "blobs, one per class")
    n_items, spread, test_fraction, seed = _check_toy_arguments(
        n_items, spread, test_fraction, seed, 4 * n_classes
    )
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    radius = 3.0 / (2 * np.sin(np.pi / n_classes))  # neighbouring centres 3 apart
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    targets = np.arange(n_items) % n_classes
    points = centres[targets] + rng.normal(0.0, spread, size=(n_items, 2))
    classes = [chr(ord("A") + index) for index in range(n_classes)]
    return _toy_pool(points, targets, classes, test_fraction, seed, "blobs")


def spiral(
    n_items: int = 600,
    *,
    n_arms: int = 3,
    noise: float = 0.2,
    turns: float = 1.0,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Pool:
    """Interleaved spiral arms in 2-D, one class per arm: hard for a small model at first.

    Parameters
    ----------
    n_items : int
        Points in all, at least 4 per arm.
    n_arms : int
        Number of arms (2–6), one class each.
    noise : float
        Standard deviation of the noise added to each coordinate (the arms end at radius 4).
    turns : float
        How far each arm winds, in full turns.
    test_fraction, seed
        As for :func:`two_moons`.

    Returns
    -------
    Pool
        Tabular ``N×2`` float32 points, classes ``"arm 1"``, ``"arm 2"``, ….
    """
    n_arms = _check_small_count(n_arms, "n_arms", 2, 6, "spiral arms, one per class")
    if not _is_number(turns) or not 0 < turns <= 5:
        raise InvalidArgumentError(f"turns must be a number in (0, 5] (e.g. 1.0), got {turns!r}")
    n_items, noise, test_fraction, seed = _check_toy_arguments(
        n_items, noise, test_fraction, seed, 4 * n_arms
    )
    rng = np.random.default_rng(seed)
    targets = np.arange(n_items) % n_arms
    # sqrt spacing along the arm keeps the density roughly even in the plane
    along = np.sqrt(rng.uniform(0.02, 1.0, size=n_items))
    angle = along * turns * 2 * np.pi + 2 * np.pi * targets / n_arms
    points = 4.0 * along[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points += rng.normal(0.0, noise, size=points.shape)
    classes = [f"arm {index + 1}" for index in range(n_arms)]
    return _toy_pool(points, targets, classes, test_fraction, seed, "spiral")
