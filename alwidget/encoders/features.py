"""A pool seen through an encoder: the same items, ids and labels; cached features as inputs.

The session, the strategies and the map take this view like any pool, so a model trained
on it is a small head over the features and a full-pool rescore never runs the backbone.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np
import torch

from ..data import HeldOut
from .cache import EncoderError, FeatureCache, encode_pool

__all__ = ["FeaturePool"]


class FeaturePool:
    """``pool`` with ``inputs`` read from a :class:`FeatureCache` (centred, one common scale).

    Everything else (ids, items, classes, targets, the item kind, the content digest that
    keys label stores) is the wrapped pool's, so labels made with or without an encoder are
    the same labels.

    Parameters
    ----------
    pool : Pool
        The items.
    cache : FeatureCache
        The encoder's features of every item of ``pool``.
    encoder : nn.Module or ItemFunction
        Encodes the held-out split (once, kept in memory: it is small).
    device : torch.device
        Where the encoder runs for the held-out split.
    """

    def __init__(self, pool, cache: FeatureCache, encoder, device=None):
        if cache.shape[0] != len(pool):
            raise ValueError(
                f"the feature cache has {cache.shape[0]} rows for a pool of {len(pool)} items"
            )
        self.pool = pool
        self.cache = cache
        self.encoder = encoder
        self.device = torch.device("cpu") if device is None else device

    def __getattr__(self, name):
        # Only reached for attributes this view does not define: ids, item(), classes, ...
        return getattr(self.__dict__["pool"], name)

    def __len__(self) -> int:
        return len(self.pool)

    def __repr__(self) -> str:
        return f"FeaturePool({self.pool!r}, {self.cache.shape[1]} features)"

    def inputs(self, positions) -> torch.Tensor:
        """Centred and scaled encoder features of ``positions`` (float32, ``(n, D)``)."""
        return torch.from_numpy(self.cache.standardised(positions))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.cache.shape[1],)

    @property
    def features_N_D(self) -> np.ndarray:
        """The raw (unstandardised) features of the whole pool, memory-mapped."""
        return self.cache.features

    @cached_property
    def test(self) -> HeldOut | None:
        """The held-out split through the same encoder, centred and scaled like the pool.

        Its features are cached like the pool's (keyed by both pools' content and the
        encoder), so a second session does not encode a 10 000-image test set again.
        """
        held_out = self.pool.held_out_pool
        if held_out is None:
            return None
        cache = encode_pool(
            _HeldOutInputs(self.pool, held_out), self.encoder,
            cache_dir=self.cache.directory.parent, device=self.device, progress=False,
        )  # fmt: skip
        features = cache.features[:]
        if features.shape[1] != self.cache.shape[1]:
            raise EncoderError(
                f"the encoder gave {features.shape[1]} features for the held-out items but "
                f"{self.cache.shape[1]} for the pool"
            )
        scaled = (np.asarray(features) - self.cache.mean) / self.cache.scale
        return HeldOut(torch.from_numpy(scaled.astype(np.float32)), held_out.targets)


class _HeldOutInputs:
    """The held-out items as the encoder sees them: scaled with the pool's statistics."""

    def __init__(self, pool, held_out):
        self.pool, self.held_out = pool, held_out
        self.ids, self.input_shape = held_out.ids, pool.input_shape
        # The inputs depend on both pools (the scaling comes from the training pool).
        self.exact_digest = hashlib.sha256(
            f"held-out\n{pool.exact_digest}\n{held_out.exact_digest}".encode()
        ).hexdigest()

    def __len__(self) -> int:
        return len(self.held_out)

    def inputs(self, positions) -> torch.Tensor:
        return self.pool._to_model_input(self.held_out, np.asarray(positions, dtype=np.int64))

    def item(self, item_id):
        return self.held_out.item(item_id)
