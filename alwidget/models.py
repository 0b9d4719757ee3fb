"""Built-in models and how the session builds, copies and resets them.

Built-ins are plain ``nn.Sequential`` stacks so the predictor can split them at their first
dropout layer and run the deterministic trunk only once per MC acquisition.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "GalCNN",
    "MLP",
    "MODELS",
    "ModelFactory",
    "has_dropout",
    "reset_parameters",
    "add_output_unit",
]


class _Stack(nn.Sequential):
    """``nn.Sequential`` whose slices are plain ``nn.Sequential`` (the subclasses' own
    constructors take sizes, not layers, so torch's slicing cannot rebuild them)."""

    def __getitem__(self, index):
        if isinstance(index, slice):
            return nn.Sequential(*list(self._modules.values())[index])
        return super().__getitem__(index)


class GalCNN(_Stack):
    """The MNIST CNN of Gal, Islam & Ghahramani (2017).

    conv(32, k×k)-relu-conv(32, k×k)-relu-maxpool(2)-dropout(.25)-dense(128)-relu-
    dropout(.5)-dense(C). With ``kernel_size=4`` and no padding it is the paper's model;
    for small images (``image_size < 20``) the builder uses 3×3 kernels with padding so the
    feature map does not vanish.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input channels, height (= width, or a ``(H, W)`` pair) and number of classes.
    kernel_size, padding : int
        Convolution geometry.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size=28,
        num_classes: int = 10,
        kernel_size: int = 4,
        padding: int = 0,
    ):
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        out_h = (height + 2 * padding - kernel_size + 1 + 2 * padding - kernel_size + 1) // 2
        out_w = (width + 2 * padding - kernel_size + 1 + 2 * padding - kernel_size + 1) // 2
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"images of {height}×{width} are too small for {kernel_size}×{kernel_size} kernels"
            )
        super().__init__(
            nn.Conv2d(in_channels, 32, kernel_size, padding=padding),
            nn.ReLU(),
            nn.Conv2d(32, 32, kernel_size, padding=padding),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(32 * out_h * out_w, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )


class MLP(_Stack):
    """A two-hidden-layer perceptron with dropout, for tabular rows and feature vectors.

    Parameters
    ----------
    in_features, num_classes : int
        Input width and number of classes.
    hidden : tuple of int
        Widths of the hidden layers.
    dropout : float
        Dropout after each hidden layer (0 disables MC dropout).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.5,
    ):
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


def _small_cnn(input_shape, num_classes):
    channels, height, width = _image_geometry(input_shape)
    if min(height, width) < 20:
        return GalCNN(channels, (height, width), num_classes, kernel_size=3, padding=1)
    return GalCNN(channels, (height, width), num_classes)


def _gal_cnn(input_shape, num_classes):
    channels, height, width = _image_geometry(input_shape)
    return GalCNN(channels, (height, width), num_classes)


def _mlp(input_shape, num_classes):
    in_features = 1
    for size in input_shape:
        in_features *= int(size)
    return MLP(in_features, num_classes)


def _image_geometry(input_shape):
    if len(input_shape) != 3:
        raise ValueError(
            f"a CNN needs image inputs C×H×W, but the pool's inputs have shape {tuple(input_shape)}"
        )
    return tuple(int(size) for size in input_shape)


# Each builder takes (input_shape without batch axis, num_classes).
MODELS: dict[str, Callable[[tuple, int], nn.Module]] = {
    "small_cnn": _small_cnn,
    "gal_cnn": _gal_cnn,
    "mlp": _mlp,
}


def has_dropout(model: nn.Module) -> bool:
    """Whether any submodule is a dropout layer (so MC dropout can sample it)."""
    return any(isinstance(module, nn.modules.dropout._DropoutNd) for module in model.modules())


def reset_parameters(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every submodule that knows how to, under ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
    return model


class ModelFactory:
    """Builds fresh, seeded copies of the user's model for each training run.

    ``spec`` may be a built-in name (see ``MODELS``), a callable returning an ``nn.Module``
    (called with ``num_classes=`` when it accepts that keyword), or an ``nn.Module``
    instance (copied and re-initialised for each ensemble member and training run).
    """

    def __init__(self, spec, input_shape: tuple, num_classes: int):
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        if isinstance(spec, str):
            if spec not in MODELS:
                raise ValueError(
                    f"unknown model {spec!r}; built-ins are {', '.join(sorted(MODELS))}"
                )
            self.name = spec
        elif isinstance(spec, nn.Module):
            self.name = type(spec).__name__
            self._template = copy.deepcopy(spec).cpu()
        elif callable(spec):
            self.name = getattr(spec, "__name__", type(spec).__name__)
        else:
            raise TypeError(
                f"model must be a name, an nn.Module or a factory; got {type(spec).__name__}"
            )
        self.spec = spec

    @property
    def can_change_classes(self) -> bool:
        """Whether a new class can be added (the output layer can be rebuilt)."""
        if isinstance(self.spec, str):
            return True
        if callable(self.spec) and not isinstance(self.spec, nn.Module):
            try:
                return "num_classes" in inspect.signature(self.spec).parameters
            except (TypeError, ValueError):
                return False
        return False

    def build(self, seed: int) -> nn.Module:
        """A new model, initialised under ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if isinstance(self.spec, str):
                model = MODELS[self.spec](self.input_shape, self.num_classes)
            elif isinstance(self.spec, nn.Module):
                model = reset_parameters(copy.deepcopy(self._template), seed)
            elif self.can_change_classes:
                model = self.spec(num_classes=self.num_classes)
            else:
                model = self.spec()
        if not isinstance(model, nn.Module):
            raise TypeError(f"the model factory returned {type(model).__name__}, not an nn.Module")
        return model


def add_output_unit(model: nn.Module) -> nn.Module:
    """Give ``model``'s last linear layer one more output, in place, keeping the others.

    The new class starts with zero weights and a bias far below the others, so predictions
    for the existing classes are unchanged until the next training run teaches it.

    Raises
    ------
    ValueError
        When the model has no ``nn.Linear`` to widen.
    """
    named = [
        (name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)
    ]
    if not named:
        raise ValueError(f"{type(model).__name__} has no nn.Linear output layer to widen")
    name, old = named[-1]
    wider = nn.Linear(old.in_features, old.out_features + 1, bias=old.bias is not None)
    wider = wider.to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[: old.out_features] = old.weight
        if old.bias is not None:
            wider.bias[: old.out_features] = old.bias
            wider.bias[old.out_features] = old.bias.min() - 20.0
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if attribute.isdigit() and isinstance(parent, nn.Sequential):
        parent[int(attribute)] = wider
    else:
        setattr(parent, attribute, wider)
    return model
