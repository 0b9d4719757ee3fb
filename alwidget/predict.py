"""One chunked predictor: ``log_probs_N_K_C`` from MC dropout, ensembles, or a single pass.

MC dropout here is *consistent*: within one call, sample ``k`` uses the same dropout mask for
every item (as BatchBALD's reference code does), so joint entropies across items mean
something, and a mask costs one row of random numbers instead of one per item. When a model
is an ``nn.Sequential`` whose layers before the first dropout are deterministic, that trunk
runs once per chunk and only the head is sampled ``K`` times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from .cpu_threads import on_free_cores

__all__ = ["Prediction", "predict", "split_at_first_dropout", "consistent_dropout", "pick_device"]

_CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Prediction:
    """Predictor output for ``N`` items.

    Attributes
    ----------
    log_probs_N_K_C : np.ndarray
        float32 log-probabilities: ``K`` = ensemble members × MC samples.
    embeddings_N_D : np.ndarray or None
        Input of the first member's last linear layer, dropout off (penultimate features).
    """

    log_probs_N_K_C: np.ndarray
    embeddings_N_D: np.ndarray | None = None


def _dropout_modules(model: nn.Module) -> list[_DropoutNd]:
    return [module for module in model.modules() if isinstance(module, _DropoutNd)]


def _unnested(model: nn.Sequential):
    """The layers of ``model``, those of plain ``nn.Sequential`` layers in their place (a
    subclass with its own ``forward`` stays whole: its order of calls is its own)."""
    for layer in model:
        plain = type(layer).forward is nn.Sequential.forward and not hasattr(layer, "mc_split")
        if isinstance(layer, nn.Sequential) and plain:
            yield from _unnested(layer)
        else:
            yield layer


def split_at_first_dropout(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """Split a sequential model into (deterministic trunk, stochastic head).

    Plain ``nn.Sequential`` layers inside it are opened, so a fine-tuned
    ``Sequential(encoder, Flatten, *head)`` whose encoder holds dropout still runs the
    encoder's convolutions once per item, not once per MC sample (19 of 23 s of a fine-tuning
    bench step went there). The parts share the model's modules and its parameter names are
    unchanged.

    Returns ``None`` when the split does not exist: the model is not an ``nn.Sequential``,
    its first layer already contains dropout, or it has no dropout at all. A model may also
    offer its own split as a method ``mc_split() -> (trunk, head)``.
    """
    if hasattr(model, "mc_split"):
        return model.mc_split()
    if not isinstance(model, nn.Sequential):
        return None
    layers = list(_unnested(model))
    for index, layer in enumerate(layers):
        if _dropout_modules(layer):
            if index == 0:
                return None
            return nn.Sequential(*layers[:index]), nn.Sequential(*layers[index:])
    return None


def _mask_shape(module: _DropoutNd, features_shape: torch.Size) -> tuple[int, ...]:
    if isinstance(module, _CHANNEL_DROPOUT):
        return (features_shape[0],) + (1,) * (len(features_shape) - 1)
    return tuple(features_shape)


@contextmanager
def consistent_dropout(model: nn.Module, sample_index: int | None, seed: int, cache: dict):
    """Apply dropout mask number ``sample_index`` (same for every item) while in the block.

    ``sample_index=None`` means dropout off. Masks are drawn from a generator seeded by
    ``(seed, sample_index, layer)`` and kept in ``cache`` so every chunk sees the same ones.
    """
    if sample_index is None:
        yield
        return
    handles = []
    for layer_index, module in enumerate(_dropout_modules(model)):

        def hook(module, inputs, output, layer_index=layer_index):
            features = inputs[0]
            if module.p == 0:
                return features
            key = (sample_index, layer_index, tuple(features.shape[1:]))
            mask = cache.get(key)
            if mask is None:
                generator = torch.Generator().manual_seed(
                    int(
                        np.random.SeedSequence([seed, sample_index, layer_index]).generate_state(1)[
                            0
                        ]
                    )
                )
                keep = (
                    torch.rand(_mask_shape(module, features.shape[1:]), generator=generator)
                    >= module.p
                )
                mask = (keep.to(features.dtype) / (1.0 - module.p)).to(features.device)
                cache[key] = mask
            return features * mask

        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    return linears[-1] if linears else None


@on_free_cores
def predict(
    models: Sequence[nn.Module] | nn.Module,
    inputs: Callable[[np.ndarray], torch.Tensor],
    positions: np.ndarray,
    *,
    mc_samples: int = 1,
    chunk_size: int = 512,
    device: torch.device | str | None = None,
    seed: int = 0,
    cache_trunk: bool = True,
    return_embeddings: bool = False,
) -> Prediction:
    """Log-probabilities of the items at ``positions`` under every member and MC sample.

    Parameters
    ----------
    models : nn.Module or sequence of nn.Module
        One model, or ensemble members; each contributes ``mc_samples`` rows on the K axis.
    inputs : callable
        Maps an array of positions to a float tensor of model inputs (``Pool.inputs``).
    positions : np.ndarray
        Which items to predict, in output order.
    mc_samples : int
        Dropout samples per member; 1 means a deterministic pass with dropout off.
    chunk_size : int
        Items per forward pass: memory is bounded by the chunk, not the pool.
    seed : int
        Seeds the dropout masks, so the same call gives the same samples.
    cache_trunk : bool
        Run the deterministic trunk once per chunk when the model can be split.
    return_embeddings : bool
        Also return the first member's penultimate features.

    Returns
    -------
    Prediction
    """
    members = [models] if isinstance(models, nn.Module) else list(models)
    if not members:
        raise ValueError("no model to predict with")
    if int(mc_samples) != mc_samples or mc_samples < 1:
        raise ValueError(f"mc_samples must be a positive integer, got {mc_samples!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if mc_samples > 1:
        for member in members:
            if not _dropout_modules(member):
                raise ValueError(
                    f"mc_samples={mc_samples} needs dropout layers, but {type(member).__name__} has none: "
                    "use mc_samples=1, an ensemble, or a model with dropout"
                )
    device = pick_device(device)
    positions = np.asarray(positions, dtype=np.int64)
    n_items = len(positions)
    n_samples = len(members) * mc_samples
    log_probs = None
    embeddings = None
    mask_caches = [{} for _ in members]
    captured: list[torch.Tensor] = []
    capture_layer = _last_linear(members[0]) if return_embeddings else None
    if return_embeddings and capture_layer is None:
        raise ValueError("return_embeddings needs a model with a final nn.Linear layer")

    for member in members:
        member.to(device).eval()
    splits = [
        split_at_first_dropout(member) if cache_trunk and mc_samples > 1 else None
        for member in members
    ]

    with torch.inference_mode():
        for start in range(0, n_items, chunk_size):
            chunk = positions[start : start + chunk_size]
            batch = inputs(chunk).to(device)
            column = 0
            for member_index, member in enumerate(members):
                split = splits[member_index]
                trunk_out = split[0](batch) if split is not None else None
                stochastic_part = split[1] if split is not None else member
                sample_ids = [None] if mc_samples == 1 else list(range(mc_samples))
                if member_index == 0 and capture_layer is not None and mc_samples > 1:
                    sample_ids = ["features"] + sample_ids  # one dropout-off pass for the features
                for sample_index in sample_ids:
                    wants_features = (
                        member_index == 0
                        and capture_layer is not None
                        and sample_index in (None, "features")
                    )
                    handle = (
                        capture_layer.register_forward_hook(
                            lambda module, args, output: captured.append(args[0])
                        )
                        if wants_features
                        else None
                    )
                    try:
                        mask_index = None if sample_index == "features" else sample_index
                        with consistent_dropout(
                            member,
                            mask_index,
                            seed + 7919 * member_index,
                            mask_caches[member_index],
                        ):
                            logits = (
                                stochastic_part(trunk_out) if split is not None else member(batch)
                            )
                    finally:
                        if handle is not None:
                            handle.remove()
                    if wants_features:
                        features = captured.pop().flatten(1).cpu().numpy()
                        if embeddings is None:
                            embeddings = np.empty((n_items, features.shape[1]), dtype=np.float32)
                        embeddings[start : start + len(chunk)] = features
                        if sample_index == "features":
                            continue
                    block = _check_logits(logits, len(chunk), type(member).__name__)
                    if log_probs is None:
                        log_probs = np.empty((n_items, n_samples, block.shape[1]), dtype=np.float32)
                    log_probs[start : start + len(chunk), column] = block
                    column += 1
    if log_probs is None:
        log_probs = np.empty((0, n_samples, 0), dtype=np.float32)
    return Prediction(log_probs, embeddings)


def _check_logits(logits: torch.Tensor, n_rows: int, model_name: str) -> np.ndarray:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != n_rows:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"{model_name} must return logits of shape (batch, classes); got {shape} for a batch of {n_rows}"
        )
    if not torch.isfinite(logits).all():
        raise ValueError(f"{model_name} returned NaN/inf logits")
    return torch.log_softmax(logits.float(), dim=1).cpu().numpy()
