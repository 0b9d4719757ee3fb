"""Encoders: pretrained or self-taught feature extractors, their on-disk feature cache, and
the helpers to bring your own weights.

>>> encoder = al.encoders.load_weights(MyBackbone(), "backbone.pt")   # a local checkpoint
>>> session = al.Session(pool, encoder=encoder, strategy="bald")        # a head over features

With ``encoder=`` the encoder runs once over the pool (cached on disk, keyed by the pool's
content and the encoder's weights) and the session trains and scores a small MC-dropout head
on the features, so a retrain and a full-pool rescore cost only the head.
"""

from .cache import (
    EncoderError,
    FeatureCache,
    ItemFunction,
    default_cache_dir,
    encode_pool,
    encoder_key,
)
from .features import FeaturePool
from .linear import svd
from .self_supervised import SelfSupervisedError, self_supervised
from .weights import CheckpointError, load_weights, module_digest, without_classifier

__all__ = [
    "CheckpointError",
    "EncoderError",
    "FeatureCache",
    "FeaturePool",
    "ItemFunction",
    "SelfSupervisedError",
    "default_cache_dir",
    "encode_pool",
    "encoder_key",
    "load_weights",
    "module_digest",
    "self_supervised",
    "svd",
    "without_classifier",
]
