"""A linear encoder fitted on the pool itself: principal components of the model inputs.

It needs no training loop and no pretrained weights, so it is the cheap default for text
(TF-IDF vectors → a few hundred components, latent semantic analysis) and tabular rows, and a
baseline for images.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import AlwidgetError
from .cache import atomic_torch_save, default_cache_dir

__all__ = ["svd"]

# Rows the components are fitted on: at most _FIT_SAMPLE, and at most _FIT_VALUES numbers in
# all (so 10 000 MNIST images, 2 000 RGB 96×96 ones), never fewer than _MIN_FIT_ROWS. More rows
# change the top directions very little; the fit's cost grows with rows × width.
_FIT_SAMPLE = 20_000
_FIT_VALUES = 8_000_000
_MIN_FIT_ROWS = 2_000
_POWER_ITERATIONS = 3
# Inputs wider than this (RGB images) get one power iteration: on 2 000 RGB 96×96 PNGs the top
# 128 directions then hold 87.8 % of the pool's variance instead of 88.1 % (88.7 % exactly),
# and the fit takes 1.4 s instead of 2.5 s of the session's start.
_WIDE_INPUT = 4096
_WIDE_POWER_ITERATIONS = 1
_OVERSAMPLING = 10
_FORMAT = "alwidget-svd-encoder/3"


def svd(
    pool, dim: int = 128, *, seed: int = 0, cache_dir: str | os.PathLike | None = None
) -> nn.Module:
    """An encoder projecting model inputs on their top ``dim`` principal directions.

    The projection is saved on disk and found again by the next session on the same pool:
    fitting it took 15 of the 18 s a session on 60 000 MNIST images needed to start.

    Parameters
    ----------
    pool : Pool
        Fitted on ``pool.inputs``: an evenly spaced sample of at most 20 000 items and at most
        8 million input values (10 000 MNIST images, 2 000 RGB 96×96 ones), never fewer than
        2 000 items.
    dim : int
        Feature width (capped at the input width and the sample size).
    seed : int
        Seeds the randomized SVD.
    cache_dir : path-like, optional
        Where the projection is saved (``<cache>/encoders`` by default, see
        :func:`alwidget.encoders.default_cache_dir`); the file name hashes the pool's content
        digest, ``dim`` and ``seed``. A damaged file is fitted again, with a warning.

    Returns
    -------
    nn.Module
        ``Flatten → Linear(in, dim)`` with the centred projection as its weights.
    """
    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise AlwidgetError(f"svd: dim must be a positive integer, got {dim!r}")
    # The format names the fitting procedure (/3: one power iteration for wide inputs), so a
    # projection fitted otherwise is never found; the pool's input width is not asked here,
    # since for image files that reads files a resumed session does not need.
    settings = (_FORMAT, pool.content_digest, int(dim), int(seed), _FIT_SAMPLE, _FIT_VALUES)
    key = hashlib.sha256("\n".join(map(str, settings)).encode()).hexdigest()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "encoders"
    path = directory / f"svd-{key[:32]}.pt"
    if path.exists():
        layer = _load(path)
        if layer is not None:
            return nn.Sequential(nn.Flatten(), layer).eval()
    layer = _fit(pool, int(dim), int(seed))
    _save(path, layer)
    return nn.Sequential(nn.Flatten(), layer).eval()


def _load(path: Path) -> nn.Linear | None:
    """The saved projection, or None (with a warning) when the file cannot be trusted."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError("not an svd encoder file of this version")
        weight, bias = payload["weight"], payload["bias"]
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"weights of shapes {tuple(weight.shape)} and {tuple(bias.shape)}")
        if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
            raise ValueError("it holds NaN/inf weights")
    except Exception as error:  # noqa: BLE001 - any unreadable file is fitted again, never used
        warnings.warn(
            f"the cached svd encoder {path} is damaged ({type(error).__name__}: {error}); "
            "it is fitted again",
            stacklevel=3,
        )
        return None
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _save(path: Path, layer: nn.Linear) -> None:
    payload = {"format": _FORMAT, "weight": layer.weight.detach(), "bias": layer.bias.detach()}
    try:
        atomic_torch_save(path, payload)
    except OSError as error:
        warnings.warn(
            f"the svd encoder could not be saved to {path} ({error}); the next session fits "
            "it again",
            stacklevel=3,
        )


def _fit(pool, dim: int, seed: int) -> nn.Linear:
    n_items = len(pool)
    width_in = int(np.prod(pool.input_shape))
    n_rows = min(n_items, _FIT_SAMPLE, max(_MIN_FIT_ROWS, _FIT_VALUES // max(width_in, 1)))
    sample = np.unique(np.linspace(0, n_items - 1, n_rows).astype(np.int64))
    rows = pool.inputs(sample).reshape(len(sample), -1).to(torch.float32)
    mean = rows.mean(dim=0)
    rows -= mean
    width = int(min(dim, rows.shape[1], max(1, len(sample) - 1)))
    components = top_right_singular_vectors(
        rows, width, seed=seed, power_iterations=_power_iterations(width_in)
    )
    layer = nn.Linear(rows.shape[1], width)
    with torch.no_grad():
        layer.weight.copy_(components)
        layer.bias.copy_(-(components @ mean))
    return layer


def _power_iterations(width_in: int) -> int:
    return _WIDE_POWER_ITERATIONS if width_in > _WIDE_INPUT else _POWER_ITERATIONS


def top_right_singular_vectors(
    rows_N_D: torch.Tensor, k: int, *, seed: int = 0, power_iterations: int = _POWER_ITERATIONS
) -> torch.Tensor:
    """The top ``k`` right singular vectors of ``rows_N_D`` as a ``(k, D)`` tensor.

    Randomized range finder with power iterations (Halko, Martinsson & Tropp 2011, algorithm
    4.4) in float32: the products use every thread, the QR and SVD factorizations one. On
    this 2-core machine with another process busy, LAPACK's threads spun against each other:
    an SVD of a 138 × 784 matrix took 2.4 s on two threads and 0.017 s on one, and
    scikit-learn's ``randomized_svd`` (float64, 2 s to import) took 3.4-15 s of a session's
    start on 20 000 MNIST images. Each vector's sign is fixed (largest entry positive), so
    a seed always gives the same encoder.
    """
    from threadpoolctl import threadpool_limits

    n_rows, width_in = rows_N_D.shape
    sketch = min(k + _OVERSAMPLING, n_rows, width_in)
    generator = torch.Generator().manual_seed(int(seed))
    test_D_S = torch.randn(width_in, sketch, generator=generator, dtype=rows_N_D.dtype)

    def orthonormal(matrix: torch.Tensor) -> torch.Tensor:
        with threadpool_limits(1):
            return torch.linalg.qr(matrix)[0]

    basis_N_S = orthonormal(rows_N_D @ test_D_S)
    for _ in range(power_iterations):
        # Re-orthonormalized each way: float32 powers lose the small directions otherwise.
        basis_N_S = orthonormal(rows_N_D @ orthonormal(rows_N_D.T @ basis_N_S))
    small_S_D = basis_N_S.T @ rows_N_D
    # small = R^T Q^T with Q R = small^T, and R = U S V^T gives small = V S (Q U)^T: small's
    # right singular vectors are Q U, from an SVD of an S x S matrix instead of S x D (1.3 s
    # of a session's start at D = 27 648, 96 x 96 RGB; a few ms this way).
    with threadpool_limits(1):
        orthonormal_D_S, triangle_S_S = torch.linalg.qr(small_S_D.T)
        left_S_S, _, _ = torch.linalg.svd(triangle_S_S)
    vectors_S_D = (orthonormal_D_S @ left_S_S).T
    vectors_K_D = vectors_S_D[:k]
    largest = vectors_K_D.abs().argmax(dim=1)
    signs = torch.sign(vectors_K_D[torch.arange(len(vectors_K_D)), largest])
    return vectors_K_D * signs[:, None]
