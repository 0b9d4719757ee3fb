"""Your own weights: loading a local checkpoint, fingerprinting a module, dropping a classifier.

Nothing here downloads anything: checkpoints are files the user already has, read with
``torch.load(..., weights_only=True)`` so a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import AlwidgetError
from ..models import last_linear_name, replace_layer

__all__ = ["CheckpointError", "load_weights", "module_digest", "without_classifier"]

# Keys under which training scripts commonly nest the weights in a checkpoint dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


class CheckpointError(AlwidgetError, ValueError):
    """A checkpoint file that cannot be read or does not fit the module."""


def module_digest(module: nn.Module) -> str:
    """A hex digest of a module's class and every parameter and buffer (names, shapes, bytes).

    Two modules with equal weights share it; changing any weight changes it. Feature caches
    are keyed by it, so features from other weights are never reused.
    """
    hasher = hashlib.sha256(f"alwidget-module/1\n{type(module).__qualname__}\n".encode())
    for name, tensor in module.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            hasher.update(f"{name}={tensor!r}\n".encode())
            continue
        data = tensor.detach().cpu().contiguous()
        hasher.update(f"{name} {tuple(data.shape)} {data.dtype}\n".encode())
        if data.numel():
            hasher.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
    return hasher.hexdigest()


def _state_dict_of(payload, path) -> Mapping[str, torch.Tensor]:
    if isinstance(payload, Mapping):
        for key in _NESTED_KEYS:
            nested = payload.get(key)
            if isinstance(nested, Mapping) and nested:
                payload = nested
                break
    if not isinstance(payload, Mapping) or not payload:
        raise CheckpointError(
            f"checkpoint {path}: expected a state dict (parameter name -> tensor), got "
            f"{type(payload).__name__}{' (empty)' if isinstance(payload, Mapping) else ''}; "
            "save one with torch.save(model.state_dict(), path)"
        )
    tensors = {str(k): v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"checkpoint {path}: it holds no tensors")
    # Weights saved from nn.DataParallel / DistributedDataParallel carry a "module." prefix.
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    return tensors


def load_weights(
    module: nn.Module, path: str | os.PathLike, *, strict: bool = True, ignore: tuple = ()
) -> nn.Module:
    """Load a local checkpoint into ``module`` (in place) and return it.

    Parameters
    ----------
    module : nn.Module
        The architecture the weights were saved from (e.g. a torchvision ``resnet18()``
        built without ``weights=``).
    path : path-like
        A file written by ``torch.save(model.state_dict(), path)``; a dict nesting the
        weights under ``"state_dict"``, ``"model"`` or similar works too.
    strict : bool
        Refuse a checkpoint whose parameter names differ from the module's. With
        ``strict=False`` the names that match load and the rest keep their values.
    ignore : tuple of str
        Name prefixes to skip, e.g. ``("fc.",)`` to keep a freshly made classifier.

    Returns
    -------
    nn.Module
        ``module`` with the checkpoint's weights.

    Raises
    ------
    CheckpointError
        The file is missing or unreadable, or its tensors do not fit the module.
    """
    path = os.fspath(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    except Exception as error:  # torch raises many types for a damaged or unsafe file
        raise CheckpointError(
            f"checkpoint {path} cannot be read as weights ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); it must be a file saved "
            "with torch.save(model.state_dict(), path)"
        ) from None
    tensors = _state_dict_of(payload, path)
    tensors = {k: v for k, v in tensors.items() if not any(k.startswith(p) for p in ignore)}
    own = module.state_dict()
    mismatched = [
        f"{name}: checkpoint {tuple(value.shape)}, module {tuple(own[name].shape)}"
        for name, value in tensors.items()
        if name in own and tuple(own[name].shape) != tuple(value.shape)
    ]
    if mismatched:
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(module).__name__}: "
            + "; ".join(mismatched[:5])
            + (f" (and {len(mismatched) - 5} more)" if len(mismatched) > 5 else "")
            + "; build the module with the same sizes, or skip those with ignore=(prefix,)"
        )
    missing = [name for name in own if name not in tensors and not name.startswith(ignore)]
    unexpected = [name for name in tensors if name not in own]
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"checkpoint {path} does not match {type(module).__name__}: missing "
            f"{missing[:5]}{'…' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'…' if len(unexpected) > 5 else ''}; pass strict=False to load "
            "the names that match"
        )
    module.load_state_dict({k: v for k, v in tensors.items() if k in own}, strict=False)
    return module


def without_classifier(module: nn.Module) -> nn.Module:
    """``module`` with its last ``nn.Linear`` replaced by ``nn.Identity`` (in place).

    Turns a classifier (a torchvision ResNet, a model trained on another task) into an
    encoder whose output is the feature vector the classifier read.

    Raises
    ------
    CheckpointError
        When the module has no ``nn.Linear`` layer.
    """
    name = last_linear_name(module)
    if name is None:
        raise CheckpointError(f"{type(module).__name__} has no nn.Linear classifier to remove")
    replace_layer(module, name, nn.Identity())
    return module
