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

from .errors import (
    AlwidgetError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    UnsupportedModelError,
)

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
            raise UnsupportedModelError(
                f"images of {height}×{width} are too small for {kernel_size}×{kernel_size} "
                "kernels; use model='small_cnn' or 'mlp'"
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


#: ``small_cnn`` average-pools larger images down to this side first. On 96×96 PNGs the Gal
#: CNN's first dense layer alone had 8 M weights: 300 training steps took 276 s and scoring
#: 4 900 items 65 s; pooled to 32×32, 15 s and 4 s, and it was more accurate on 200 labels
#: (0.40 against 0.30), because 8 M weights overfit a few hundred labels.
SMALL_CNN_MAX_SIDE = 32


def _small_cnn(input_shape, num_classes):
    channels, height, width = _image_geometry(input_shape)
    scale = max(height, width) / SMALL_CNN_MAX_SIDE
    pooled = (height, width)
    if scale > 1:
        pooled = (max(1, round(height / scale)), max(1, round(width / scale)))
    if min(pooled) < 20:
        body = GalCNN(channels, pooled, num_classes, kernel_size=3, padding=1)
    else:
        body = GalCNN(channels, pooled, num_classes)
    if pooled == (height, width):
        return body
    # One stack, so the predictor still splits it at its first dropout and caches the trunk.
    return _Stack(nn.AdaptiveAvgPool2d(pooled), *body)


def _gal_cnn(input_shape, num_classes):
    channels, height, width = _image_geometry(input_shape)
    return GalCNN(channels, (height, width), num_classes)


def _mlp(input_shape, num_classes):
    in_features = 1
    for size in input_shape:
        in_features *= int(size)
    return MLP(in_features, num_classes)


def _head(input_shape, num_classes):
    in_features = 1
    for size in input_shape:
        in_features *= int(size)
    return MLP(in_features, num_classes, hidden=(256,), dropout=0.5)


def _image_geometry(input_shape):
    if len(input_shape) != 3:
        raise UnsupportedModelError(
            f"a CNN needs image inputs C×H×W, but the pool's inputs have shape "
            f"{tuple(input_shape)}; use model='mlp' (or leave model unset)"
        )
    return tuple(int(size) for size in input_shape)


# Each builder takes (input_shape without batch axis, num_classes).
MODELS: dict[str, Callable[[tuple, int], nn.Module]] = {
    "small_cnn": _small_cnn,
    "gal_cnn": _gal_cnn,
    "mlp": _mlp,
    "head": _head,  # a small MC-dropout head over encoder features
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


def last_linear_name(model: nn.Module) -> str | None:
    names = [name for name, layer in model.named_modules() if isinstance(layer, nn.Linear)]
    return names[-1] if names else None


def replace_layer(model: nn.Module, name: str, layer: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if attribute.isdigit() and isinstance(parent, nn.Sequential):
        parent[int(attribute)] = layer
    else:
        setattr(parent, attribute, layer)


def _output_width(model: nn.Module, input_shape: tuple) -> int | None:
    """The width of ``model``'s output for one input, or None when it cannot be probed."""
    probe = torch.zeros((2, *input_shape))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(probe)
    except Exception:  # the session's own output check reports a model that cannot run
        return None
    finally:
        model.train(was_training)
    return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None


class ModelFactory:
    """Builds the model each training run starts from, seeded.

    ``spec`` may be a built-in name (see ``MODELS``), a callable returning an ``nn.Module``
    (called with ``num_classes=`` when it accepts that keyword), or an ``nn.Module``
    instance. An instance is the user's model *with its weights*: every training run
    starts from them (fine-tuning), unless ``reset_weights=True``. When its output width
    differs from the number of classes, its last ``nn.Linear`` is replaced by a freshly
    initialised one of the right width (the only layer that could not have been trained).
    Ensemble members after the first start from the same weights with their own freshly
    initialised output layer, so they disagree where the labels say little.
    """

    def __init__(self, spec, input_shape: tuple, num_classes: int, *, reset_weights=False):
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.reset_weights = bool(reset_weights)
        self.replaced_output: str | None = None
        if isinstance(spec, str):
            if spec not in MODELS:
                raise InvalidArgumentError(
                    f"unknown model {spec!r}; built-ins are {', '.join(sorted(MODELS))}"
                )
            self.name = spec
        elif isinstance(spec, nn.Module):
            self.name = type(spec).__name__
            self._template = copy.deepcopy(spec).cpu()
            self._fit_output_layer()
        elif callable(spec):
            self.name = getattr(spec, "__name__", type(spec).__name__)
        else:
            raise InvalidArgumentTypeError(
                f"model must be a name, an nn.Module or a factory; got {type(spec).__name__}"
            )
        self.spec = spec

    def _fit_output_layer(self) -> None:
        width = _output_width(self._template, self.input_shape)
        name = last_linear_name(self._template)
        if width is None or width == self.num_classes or name is None:
            return
        old = self._template.get_submodule(name)
        if old.out_features != width:
            return  # the last Linear is not the output layer; the output check will say so
        fresh = nn.Linear(old.in_features, self.num_classes, bias=old.bias is not None)
        replace_layer(self._template, name, fresh.to(old.weight.dtype))
        self.replaced_output = f"{name} ({width} → {self.num_classes} outputs)"

    @property
    def keeps_weights(self) -> bool:
        """Whether training starts from the user's weights (a module, not reset)."""
        return isinstance(self.spec, nn.Module) and not self.reset_weights

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

    def build(self, seed: int, member: int = 0) -> nn.Module:
        """The model a training run of ensemble member ``member`` starts from."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if isinstance(self.spec, str):
                model = MODELS[self.spec](self.input_shape, self.num_classes)
            elif isinstance(self.spec, nn.Module):
                model = copy.deepcopy(self._template)
                if self.reset_weights:
                    reset_parameters(model, seed)
                elif member > 0 and (name := last_linear_name(model)) is not None:
                    model.get_submodule(name).reset_parameters()
            else:
                model = self._call_factory()
        if not isinstance(model, nn.Module):
            raise UnsupportedModelError(
                f"the model factory {self.name} returned {type(model).__name__}, not an nn.Module"
            )
        return model

    def _call_factory(self):
        """The user's factory's model; its own failure named as the factory's."""
        try:
            if self.can_change_classes:
                return self.spec(num_classes=self.num_classes)
            return self.spec()
        except AlwidgetError:
            raise
        except Exception as error:
            raise UnsupportedModelError(
                f"the model factory {self.name} raised {type(error).__name__}: {error}"
            ) from error


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
        raise UnsupportedModelError(
            f"{type(model).__name__} has no nn.Linear output layer to widen for a new class"
        )
    name, old = named[-1]
    wider = nn.Linear(old.in_features, old.out_features + 1, bias=old.bias is not None)
    wider = wider.to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[: old.out_features] = old.weight
        if old.bias is not None:
            wider.bias[: old.out_features] = old.bias
            wider.bias[old.out_features] = old.bias.min() - 20.0
    replace_layer(model, name, wider)
    return model
