"""A linear encoder fitted on the pool itself: principal components of the model inputs.

It needs no training loop and no pretrained weights, so it is the cheap default for text
(TF-IDF vectors → a few hundred components, latent semantic analysis) and tabular rows, and a
baseline for images.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.extmath import randomized_svd
from torch import nn

from ..errors import AlwidgetError

__all__ = ["svd"]

_FIT_SAMPLE = 20_000  # rows the components are fitted on; more changes them very little


def svd(pool, dim: int = 128, *, seed: int = 0) -> nn.Module:
    """An encoder projecting model inputs on their top ``dim`` principal directions.

    Parameters
    ----------
    pool : Pool
        Fitted on ``pool.inputs`` (an evenly spaced sample of at most 20 000 items).
    dim : int
        Feature width (capped at the input width and the sample size).
    seed : int
        Seeds the randomized SVD.

    Returns
    -------
    nn.Module
        ``Flatten → Linear(in, dim)`` with the centred projection as its weights.
    """
    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise AlwidgetError(f"svd: dim must be a positive integer, got {dim!r}")
    n_items = len(pool)
    sample = np.unique(np.linspace(0, n_items - 1, min(n_items, _FIT_SAMPLE)).astype(np.int64))
    rows = pool.inputs(sample).reshape(len(sample), -1).numpy().astype(np.float64)
    mean = rows.mean(axis=0)
    width = int(min(dim, rows.shape[1], max(1, len(sample) - 1)))
    _, _, components = randomized_svd(rows - mean, width, random_state=seed)
    layer = nn.Linear(rows.shape[1], width)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(components.astype(np.float32)))
        layer.bias.copy_(torch.from_numpy(-(components @ mean).astype(np.float32)))
    return nn.Sequential(nn.Flatten(), layer).eval()
