"""What the session's model sees when the user hands an encoder: cached features or, when
fine-tuning, the raw inputs through the encoder and a head."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import encoders
from ..errors import AlwidgetError
from ..models import MODELS, ModelFactory
from ..predict import pick_device

__all__ = ["EncoderSetup", "set_up_encoder"]

#: ``encoder=`` names the session resolves itself; anything else must be a module/function.
NAMED_ENCODERS = ("self-supervised", "svd")


@dataclass
class EncoderSetup:
    """The pool the model trains on and the model spec, after applying ``encoder=``.

    Attributes
    ----------
    pool : Pool or FeaturePool
        The user's pool (no encoder, or fine-tuning) or its cached-feature view.
    model : str, nn.Module or callable
        What :class:`alwidget.models.ModelFactory` builds members from.
    encoder : nn.Module, ItemFunction or None
        The resolved encoder.
    cache : FeatureCache or None
        The features, when the session trains a head on them.
    """

    pool: object
    model: object
    encoder: object = None
    cache: encoders.FeatureCache | None = None


def _resolve(encoder, pool, seed: int, cache_dir, progress):
    if isinstance(encoder, str):
        weights_dir = None if cache_dir is None else Path(cache_dir) / "encoders"
        if encoder == "svd":
            return encoders.svd(pool, seed=seed, cache_dir=weights_dir)
        if encoder == "self-supervised":
            return encoders.self_supervised(
                pool, seed=seed, cache_dir=weights_dir, progress=progress
            )
        raise AlwidgetError(
            f"encoder={encoder!r} is not a known encoder; use one of {list(NAMED_ENCODERS)}, "
            "an nn.Module mapping the pool's inputs to feature vectors, or "
            "alwidget.encoders.ItemFunction(function, key=...)"
        )
    encoders.encoder_key(encoder)  # refuses what is neither a module nor an item function
    return encoder


def _feature_width(encoder: nn.Module, pool) -> int:
    probe = pool.inputs(torch.arange(min(2, len(pool))).numpy())
    encoder.eval()
    with torch.inference_mode():
        out = encoder(probe)
    return int(out.reshape(len(probe), -1).shape[1])


def set_up_encoder(pool, model, encoder, *, fine_tune: bool, seed: int, device, cache_dir,
                   progress, n_classes: int) -> EncoderSetup:  # fmt: skip
    """Apply ``encoder=`` (see :class:`alwidget.Session`); without one, change nothing."""
    if encoder is None:
        if fine_tune:
            raise AlwidgetError(
                "fine_tune=True needs an encoder=: it says the encoder's weights train too"
            )
        return EncoderSetup(pool, model)
    # Fitting an encoder reads a sample of the items that encoding the pool reads again.
    with pool.keeping_file_reads():
        encoder = _resolve(encoder, pool, seed, cache_dir, progress)
        cache = None
        if not fine_tune:
            cache = encoders.encode_pool(
                pool, encoder, cache_dir=cache_dir, device=pick_device(device), progress=progress
            )
    head = "head" if model is None else model
    if fine_tune:
        if not isinstance(encoder, nn.Module):
            raise AlwidgetError(
                "fine_tune=True needs an nn.Module encoder (an item function has no weights "
                "to train)"
            )
        width = _feature_width(encoder, pool)
        if isinstance(head, str):
            if head not in MODELS:
                raise AlwidgetError(f"model={head!r} is not a built-in head ({sorted(MODELS)})")
            # Built as the session builds its models, under the seed: the fine-tuned model
            # starts from these weights, and torch's own seed differs per process (the same
            # bench run scored 0.864-0.901 at 20 labels).
            head = ModelFactory(head, (width,), n_classes).build(seed)
        if not isinstance(head, nn.Module):
            raise AlwidgetError(
                "with fine_tune=True, model= must be a built-in head name or an nn.Module "
                f"taking ({width},) features; got {type(head).__name__}"
            )
        # One Sequential, so MC dropout runs the backbone once per item and samples the head.
        layers = list(head) if isinstance(head, nn.Sequential) else [head]
        combined = nn.Sequential(copy.deepcopy(encoder), nn.Flatten(), *layers)
        return EncoderSetup(pool, combined, encoder)
    view = encoders.FeaturePool(pool, cache, encoder, pick_device(device))
    return EncoderSetup(view, head, encoder, cache)
