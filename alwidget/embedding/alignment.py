"""Linear and rigid alignment used to keep the map steady, and figures for how steady it is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LinearAlignment",
    "SimilarityTransform",
    "fit_linear_alignment",
    "fit_similarity",
    "mean_displacement",
    "procrustes_align",
    "procrustes_disparity",
]


@dataclass(frozen=True)
class LinearAlignment:
    """An affine map ``x -> (x - source_mean) @ weights + target_mean``.

    Attributes
    ----------
    weights : np.ndarray, shape (D_source, D_target)
    source_mean, target_mean : np.ndarray
    r2 : float
        Share of the target's variance the map reproduces on the rows it was fitted on.
    """

    weights: np.ndarray
    source_mean: np.ndarray
    target_mean: np.ndarray
    r2: float

    def apply(self, source_N_D) -> np.ndarray:
        """Map rows of the source feature space into the target one (float32)."""
        source = np.asarray(source_N_D, dtype=np.float64)
        return ((source - self.source_mean) @ self.weights + self.target_mean).astype(np.float32)


def fit_linear_alignment(source_N_D, target_N_E, ridge: float = 1e-3) -> LinearAlignment:
    """Least-squares affine map from ``source`` rows onto the matching ``target`` rows.

    Parameters
    ----------
    source_N_D, target_N_E : array-like
        The same N items described in two feature spaces (e.g. before and after a retrain).
    ridge : float
        Penalty relative to the mean feature variance; keeps the solve well posed when D >= N.

    Returns
    -------
    LinearAlignment
    """
    source = np.asarray(source_N_D, dtype=np.float64)
    target = np.asarray(target_N_E, dtype=np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[0] != target.shape[0]:
        raise ValueError(
            f"alignment needs two 2-D arrays with the same rows, got {source.shape} and {target.shape}"
        )
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    source_mean = source.mean(axis=0)
    target_mean = target.mean(axis=0)
    x = source - source_mean
    y = target - target_mean
    gram = x.T @ x
    penalty = ridge * max(np.trace(gram) / gram.shape[0], np.finfo(float).tiny)
    weights = np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), x.T @ y)
    total = float((y**2).sum())
    residual = float(((y - x @ weights) ** 2).sum())
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return LinearAlignment(weights, source_mean, target_mean, r2)


@dataclass(frozen=True)
class SimilarityTransform:
    """``x -> scale * x @ rotation + shift`` in the plane (rotation may include a reflection)."""

    rotation: np.ndarray
    scale: float
    shift: np.ndarray

    @classmethod
    def identity(cls, n_dims: int = 2) -> SimilarityTransform:
        return cls(np.eye(n_dims), 1.0, np.zeros(n_dims))

    def apply(self, points_N_2) -> np.ndarray:
        points = np.asarray(points_N_2, dtype=np.float64)
        return (self.scale * points @ self.rotation + self.shift).astype(np.float32)


def fit_similarity(source_N_2, target_N_2, *, allow_scale: bool = True) -> SimilarityTransform:
    """The rotation/reflection, uniform scale and shift taking ``source`` closest to ``target``
    (least squares; orthogonal Procrustes)."""
    source = np.asarray(source_N_2, dtype=np.float64)
    target = np.asarray(target_N_2, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[0] < 1:
        raise ValueError(
            f"procrustes needs two arrays of the same 2-D shape, got {source.shape} and {target.shape}"
        )
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    u, singular_values, vt = np.linalg.svd(centred_source.T @ centred_target)
    rotation = u @ vt
    spread = float((centred_source**2).sum())
    scale = float(singular_values.sum() / spread) if allow_scale and spread > 0 else 1.0
    return SimilarityTransform(rotation, scale, target_mean - scale * source_mean @ rotation)


def procrustes_align(source_N_2, target_N_2, *, allow_scale: bool = True) -> np.ndarray:
    """``source`` rotated (or reflected), scaled and shifted to lie as close as possible to
    ``target``."""
    return fit_similarity(source_N_2, target_N_2, allow_scale=allow_scale).apply(source_N_2)


def procrustes_disparity(first_N_2, second_N_2) -> float:
    """Procrustes disparity (0 = same shape): squared error after the best rotation,
    shift and scale, with both layouts standardised to unit total variance."""
    first = np.asarray(first_N_2, dtype=np.float64)
    second = np.asarray(second_N_2, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 2 or first.shape[0] < 2:
        raise ValueError(
            f"need two layouts of the same shape with >= 2 rows, got {first.shape} and {second.shape}"
        )
    a = first - first.mean(axis=0)
    b = second - second.mean(axis=0)
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0 or norm_b == 0:
        raise ValueError("a layout with every point in one place has no shape to compare")
    a, b = a / norm_a, b / norm_b
    singular_values = np.linalg.svd(a.T @ b, compute_uv=False)
    return float(max(1.0 - singular_values.sum() ** 2, 0.0))


def mean_displacement(first_N_2, second_N_2) -> float:
    """Mean distance each point moved between two layouts, as a fraction of the diagonal of
    the first layout's bounding box (what a user sees as "how far things jumped")."""
    first = np.asarray(first_N_2, dtype=np.float64)
    second = np.asarray(second_N_2, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(
            f"need two layouts of the same shape, got {first.shape} and {second.shape}"
        )
    extent = float(np.linalg.norm(first.max(axis=0) - first.min(axis=0)))
    if extent == 0:
        raise ValueError("the first layout has zero extent")
    return float(np.linalg.norm(second - first, axis=1).mean() / extent)
