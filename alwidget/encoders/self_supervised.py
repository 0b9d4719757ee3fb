"""An encoder taught by the unlabeled pool itself (SimCLR-style contrastive learning).

When no pretrained model fits the items, the pool can still teach a representation: two
random distortions of the same item should map to nearby features, distortions of different
items to distant ones (the NT-Xent loss of Chen et al. 2020). A small head trained on such
features needs far fewer labels than a network trained from scratch.

Images (``N×C×H×W`` inputs) train a small strided CNN on random affine + elastic warps
and erasing; rows (``N×D`` inputs: tabular, or a text pool's TF-IDF vectors) train an
MLP on SCARF-style corruption (each view replaces a random share of a row's features by the
same features of other rows). The projection head used by the loss is dropped: the returned
encoder ends at the representation.

Pairs are not only two views of one item. Before training, each item's five nearest items in
the top principal components of the inputs are found, and (by default) every pair joins a
view of an item to a view of one of them. Input-space neighbours are mostly of the same
class (97 % for MNIST's nearest neighbour), and this tie across items is what instance
discrimination alone takes many epochs to learn: on MNIST it lifted a linear probe on 100
labels from 0.81 to 0.86 at equal training (see ``docs/notes/issue-11.md``). For pools whose
input-space neighbours mean little (photos: neighbours share colours and layout more than
content) pass ``recipe=Recipe(neighbour_rate=0.0)`` for plain SimCLR.

Training runs once per pool and settings: the weights are saved under the cache directory,
named from :attr:`Pool.content_digest` and the settings, and a later call loads them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..errors import AlwidgetError
from ..models import UnsupportedModelError, _gal_cnn
from .cache import atomic_torch_save, default_cache_dir

__all__ = ["ARCHITECTURES", "SelfSupervisedError", "self_supervised"]

_FORMAT = 1
_PRELOAD_BYTES = 1 << 30  # pools whose inputs fit in this are read once, not per batch
_EXACT_NEIGHBOURS = 8192  # above this many items the neighbour search is approximate

# Networks ``self_supervised(architecture=...)`` can train; None is the default pair (a
# strided CNN for images, an MLP for rows).
ARCHITECTURES = (None, "gal_cnn")


class SelfSupervisedError(AlwidgetError, ValueError):
    """Settings or a pool that self-supervised training cannot work with."""


@dataclass(frozen=True)
class Recipe:
    """How the encoder is trained. The defaults were measured on MNIST (see
    ``docs/notes/issue-11.md``); they are part of the cache key.

    Attributes
    ----------
    batch_size : int
        Items per step (each seen in two views); the other ``2 × batch_size − 2`` views are
        the negatives of NT-Xent.
    temperature : float
        NT-Xent temperature.
    learning_rate, weight_decay : float
        AdamW settings; the rate warms up over ``warmup_steps`` and then follows a cosine to
        zero over the training (see :func:`self_supervised`).
    warmup_steps : int
        Linear warm-up length.
    widths : tuple of int
        Channels of the CNN's convolution stages (images) or hidden widths of the MLP (rows).
    projection_dim : int
        Output width of the projection head the loss sees.
    rotation, shear : float
        Largest rotation and shear in degrees.
    shift : float
        Largest shift as a fraction of the image size.
    zoom_in, zoom_out : float
        Largest relative zoom in (a crop) and out.
    elastic : float
        Amplitude of the smooth random displacement field, as a fraction of the image size.
    erase : float
        Probability of erasing one random rectangle (to the image's background value).
    noise : float
        Standard deviation of Gaussian noise, in units of the standardised inputs.
    mask_rate : float
        Rows only: share of features replaced from other rows in each view.
    neighbours : int
        When positive, each item's ``neighbours`` nearest items in the top principal
        components of the inputs are found once before training, and a share
        ``neighbour_rate`` of the pairs joins an item to one of them instead of to itself.
    neighbour_rate : float
        That share, in [0, 1].
    neighbour_refreshes : int
        How many times, evenly spaced over training, the neighbours are found again by the
        cosine of the encoder's own features.
    """

    batch_size: int = 128
    temperature: float = 0.2
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    widths: tuple[int, ...] = (32, 64, 128)
    projection_dim: int = 128
    rotation: float = 20.0
    shear: float = 15.0
    shift: float = 0.15
    zoom_in: float = 0.3
    zoom_out: float = 0.15
    elastic: float = 0.08
    erase: float = 0.5
    noise: float = 0.0
    mask_rate: float = 0.6
    neighbours: int = 5
    neighbour_rate: float = 1.0
    neighbour_refreshes: int = 0

    def __post_init__(self):
        problems = []
        if isinstance(self.batch_size, bool) or int(self.batch_size) != self.batch_size:
            problems.append(f"batch_size must be an integer, got {self.batch_size!r}")
        elif self.batch_size < 2:
            problems.append(
                f"batch_size must be at least 2 (pairs contrast), got {self.batch_size}"
            )
        for name in ("temperature", "learning_rate"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.widths or any(int(w) != w or w < 1 for w in self.widths):
            problems.append(f"widths must be positive integers, got {self.widths!r}")
        for name in ("weight_decay", "rotation", "shear", "shift", "zoom_out", "elastic", "noise"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(self, name)!r}")
        for name in ("zoom_in", "mask_rate"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if isinstance(self.neighbours, bool) or int(self.neighbours) != self.neighbours:
            problems.append(f"neighbours must be an integer, got {self.neighbours!r}")
        elif self.neighbours < 0:
            problems.append(f"neighbours must be ≥ 0, got {self.neighbours}")
        if not 0 <= self.neighbour_rate <= 1:
            problems.append(f"neighbour_rate is a share in [0, 1], got {self.neighbour_rate!r}")
        if not 0 <= self.erase <= 1:
            problems.append(f"erase is a probability in [0, 1], got {self.erase!r}")
        if problems:
            raise SelfSupervisedError("Recipe: " + "; ".join(problems))


# ------------------------------------------------------------------------------ networks
def _conv_block(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


def _feature_layer(in_features: int, feature_dim: int) -> list[nn.Module]:
    # Ending in a BatchNorm without scale and shift keeps every feature at mean 0 and
    # variance 1 over the pool (running statistics in eval mode): nearest-neighbour searches
    # and heads see no dimension that only looks important because it is large.
    return [
        nn.Linear(in_features, feature_dim, bias=False),
        nn.BatchNorm1d(feature_dim, affine=False),
    ]


def image_encoder(input_shape: tuple[int, ...], feature_dim: int, widths) -> nn.Sequential:
    """A small CNN: 3×3 conv-BN-ReLU stages that halve the size down to about 4×4, then
    global average pooling and a linear map to ``feature_dim``.

    Strided convolutions instead of max-pooling keep every stage at a quarter of the last
    one's cost: on two CPU cores this trains ≈ 5× more images per second than the Gal CNN.
    """
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    size = min(height, width)
    previous = channels
    for stage_width in widths:
        # Halve while the map is larger than 4 pixels; later stages keep that size.
        stride = 2 if size > 4 else 1
        layers += _conv_block(previous, stage_width, stride)
        size = -(-size // stride)
        previous = stage_width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), *_feature_layer(previous, feature_dim)]
    return nn.Sequential(*layers)


def gal_cnn_body(input_shape: tuple[int, ...], feature_dim: int, dropout: bool = True):
    """The Gal CNN (:class:`alwidget.models.GalCNN`) without its output layer: conv-ReLU-
    conv-ReLU-maxpool-dropout(.25)-flatten-dense(``feature_dim``)-ReLU-dropout(.5).

    The network that learns best from few labels in this project, pretrained here so that
    fine-tuning it (``Session(fine_tune=True)``) starts from the pool's structure; its
    dropout layers are kept because they give the MC-dropout samples once it is fine-tuned.
    ``dropout=False`` puts identity layers in their places (same layer indices, so the same
    state dict) for contrastive training, where masking half the features would only add
    noise to the loss.
    """
    try:
        layers = list(_gal_cnn(input_shape, 1))[:-1]
    except UnsupportedModelError as error:
        raise SelfSupervisedError(f"architecture='gal_cnn': {error}") from error
    dense_index = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear))
    layers[dense_index] = nn.Linear(layers[dense_index].in_features, feature_dim)
    if not dropout:
        layers = [
            nn.Identity() if isinstance(layer, nn.modules.dropout._DropoutNd) else layer
            for layer in layers
        ]
    return nn.Sequential(*layers)


def row_encoder(in_features: int, feature_dim: int, widths) -> nn.Sequential:
    """An MLP for rows: Linear-BN-ReLU per hidden width, then a linear map to ``feature_dim``."""
    layers: list[nn.Module] = [nn.Flatten()]
    previous = in_features
    for stage_width in widths:
        layers += [nn.Linear(previous, stage_width), nn.BatchNorm1d(stage_width), nn.ReLU()]
        previous = stage_width
    layers += _feature_layer(previous, feature_dim)
    return nn.Sequential(*layers)


def _projection_head(feature_dim: int, projection_dim: int) -> nn.Sequential:
    hidden = max(feature_dim, projection_dim)
    return nn.Sequential(
        nn.ReLU(),
        nn.Linear(feature_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, projection_dim),
    )


# ------------------------------------------------------------------------- augmentations
class ImageViews:
    """Random views of image batches: one warp (rotation, shear, zoom, shift and a smooth
    elastic field in a single resampling), then an erased rectangle and Gaussian noise.

    Pixels pulled in from outside the frame copy the border, and erasing paints the image's
    own minimum, so the background of standardised images stays background.
    """

    def __init__(self, recipe: Recipe):
        self.recipe = recipe

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r = self.recipe
        count, _, height, width = images.shape

        def uniform(*shape, low=-1.0, high=1.0):
            return torch.rand(*shape, generator=generator) * (high - low) + low

        angle = uniform(count) * math.radians(r.rotation)
        shear = uniform(count) * math.radians(r.shear)
        # affine_grid maps output to input coordinates: a factor below 1 zooms in.
        zoom = torch.exp(uniform(count, low=math.log(1 - r.zoom_in), high=math.log(1 + r.zoom_out)))
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        theta = torch.zeros(count, 2, 3)
        theta[:, 0, 0] = zoom * cos
        theta[:, 0, 1] = zoom * (cos * tan - sin) * height / width
        theta[:, 1, 0] = zoom * sin * width / height
        theta[:, 1, 1] = zoom * (sin * tan + cos)
        theta[:, :, 2] = uniform(count, 2) * 2 * r.shift
        grid = functional.affine_grid(theta, [count, 1, height, width], align_corners=False)
        if r.elastic > 0:
            # A 4×4 field of random offsets, smoothly upsampled: bends strokes as handwriting
            # varies, which no affine map does.
            coarse = uniform(count, 2, 4, 4) * 2 * r.elastic
            field = functional.interpolate(
                coarse, size=(height, width), mode="bicubic", align_corners=True
            )
            grid = grid + field.permute(0, 2, 3, 1)
        grid = grid.to(device=images.device, dtype=images.dtype)
        views = functional.grid_sample(images, grid, padding_mode="border", align_corners=False)
        if r.erase > 0:
            views = self._erase(views, generator)
        if r.noise > 0:
            noise = torch.randn(views.shape, generator=generator).to(views.device, views.dtype)
            views = views + r.noise * noise
        return views

    def _erase(self, views: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        count, _, height, width = views.shape
        r = self.recipe
        chosen = torch.rand(count, generator=generator) < r.erase
        # Rectangles of 10–40 % of each side, anywhere in the frame.
        sides = torch.rand(count, 2, generator=generator) * 0.3 + 0.1
        box_h = (sides[:, 0] * height).long().clamp(min=1)
        box_w = (sides[:, 1] * width).long().clamp(min=1)
        top = (torch.rand(count, generator=generator) * (height - box_h + 1)).long()
        left = (torch.rand(count, generator=generator) * (width - box_w + 1)).long()
        rows = torch.arange(height).view(1, height, 1)
        cols = torch.arange(width).view(1, 1, width)
        inside = (
            (rows >= top.view(-1, 1, 1))
            & (rows < (top + box_h).view(-1, 1, 1))
            & (cols >= left.view(-1, 1, 1))
            & (cols < (left + box_w).view(-1, 1, 1))
            & chosen.view(-1, 1, 1)
        ).unsqueeze(1)
        background = views.amin(dim=(1, 2, 3), keepdim=True)
        return torch.where(inside.to(views.device), background, views)


class RowViews:
    """Random views of rows (SCARF, Bahri et al. 2022): a share of each row's features is
    replaced by the same features of other rows in the batch, plus a little noise."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe

    def __call__(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        count = rows.shape[0]
        flat = rows.reshape(count, -1)
        mask = torch.rand(flat.shape, generator=generator) < self.recipe.mask_rate
        donors = torch.randint(count, flat.shape, generator=generator)
        replaced = torch.gather(flat, 0, donors.to(flat.device))
        views = torch.where(mask.to(flat.device), replaced, flat)
        if self.recipe.noise > 0:
            noise = torch.randn(flat.shape, generator=generator).to(flat.device, flat.dtype)
            views = views + self.recipe.noise * noise
        return views.reshape(rows.shape)


def nt_xent(projections_a: torch.Tensor, projections_b: torch.Tensor, temperature: float):
    """SimCLR's loss: each view must pick its partner among all other views of the batch."""
    count = projections_a.shape[0]
    unit = functional.normalize(torch.cat([projections_a, projections_b]), dim=1)
    logits = unit @ unit.T / temperature
    logits.fill_diagonal_(float("-inf"))
    partners = torch.cat([torch.arange(count, 2 * count), torch.arange(count)])
    return functional.cross_entropy(logits, partners.to(logits.device))


# ------------------------------------------------------------------------------- training
@dataclass
class TrainingReport:
    """What a training run did (or that the encoder came from the cache).

    Attributes
    ----------
    seconds : float
        Wall time of training (0 when loaded).
    epochs : float
        Passes over the pool (fractional when the budget ended one).
    steps : int
        Optimiser steps.
    loss : float
        Mean NT-Xent loss over the last 10 steps.
    items_per_second : float
        Pool items (each in two views) per second of training.
    loaded : bool
        Whether the weights came from the cache file.
    path : str
        The cache file.
    """

    seconds: float = 0.0
    epochs: float = 0.0
    steps: int = 0
    loss: float = float("nan")
    items_per_second: float = 0.0
    loaded: bool = False
    path: str = ""


def _settings_key(pool, settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(f"{pool.content_digest}\n{text}".encode()).hexdigest()


class _Progress:
    """Reports to a callable, a tqdm bar, or nowhere; at most every ``every`` seconds."""

    def __init__(self, progress, total_seconds: float | None, total_steps: int | None):
        self.callback = progress if callable(progress) else None
        self.bar = None
        self.last = -math.inf
        self.every = 0.5
        if progress in (None, True):
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                tqdm = None
            if tqdm is not None:
                by_time = total_seconds is not None
                self.by_time = by_time
                total = round(total_seconds) if by_time else total_steps
                unit = "s" if by_time else "step"
                self.bar = tqdm(
                    total=total, desc="self-supervised", unit=unit, file=sys.stderr, leave=False
                )

    def __call__(self, report: dict, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < self.every:
            return
        self.last = now
        if self.callback is not None:
            self.callback(report)
        elif self.bar is not None:
            done = round(report["seconds"]) if self.by_time else report["step"]
            self.bar.update(max(0, min(done, self.bar.total) - self.bar.n))
            self.bar.set_postfix(epoch=f"{report['epoch']:.2f}", loss=f"{report['loss']:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _InputReader:
    """Batches of model inputs: from memory when the pool's inputs fit, else per batch."""

    def __init__(self, pool):
        self.pool = pool
        shape = tuple(pool.input_shape)
        size = len(pool) * int(np.prod(shape)) * 4
        self.all = None
        if size <= _PRELOAD_BYTES:
            self.all = torch.cat(
                [
                    pool.inputs(np.arange(start, min(start + 8192, len(pool))))
                    for start in range(0, len(pool), 8192)
                ]
            )

    def __call__(self, positions: torch.Tensor) -> torch.Tensor:
        if self.all is not None:
            return self.all[positions]
        # Pools read faster in position order (files, memory maps); rows go back in the
        # caller's order because the views of a pair must line up.
        order = np.argsort(positions.numpy(), kind="stable")
        rows = self.pool.inputs(positions.numpy()[order])
        return rows[torch.from_numpy(np.argsort(order))]


def _exact_nearest(queries: torch.Tensor, candidates: torch.Tensor, count: int, skip_self: bool):
    """Indices into ``candidates`` of each query's ``count`` nearest (Euclidean)."""
    candidate_norms = candidates.pow(2).sum(1)
    found = []
    for start in range(0, len(queries), 512):
        block = queries[start : start + 512]
        # |a|² is the same for every candidate of a row, so it does not change the order.
        distances = torch.addmm(candidate_norms[None], block, candidates.T, alpha=-2)
        if skip_self:
            rows = torch.arange(len(block))
            distances[rows, rows + start] = float("inf")
        found.append(distances.topk(count, largest=False).indices)
    return torch.cat(found)


def _kmeans(points: torch.Tensor, n_cells: int, generator: torch.Generator, rounds: int = 8):
    centres = points[torch.randperm(len(points), generator=generator)[:n_cells]].clone()
    for _ in range(rounds):
        cells = _exact_nearest(points, centres, 1, skip_self=False)[:, 0]
        sums = torch.zeros_like(centres).index_add_(0, cells, points)
        sizes = torch.bincount(cells, minlength=n_cells).clamp(min=1).unsqueeze(1)
        # An emptied cell keeps its old centre rather than collapsing to the origin.
        filled = torch.bincount(cells, minlength=n_cells) > 0
        centres[filled] = (sums / sizes)[filled]
    return centres, _exact_nearest(points, centres, 1, skip_self=False)[:, 0]


def nearest(points: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """The ``count`` nearest other rows (Euclidean) of every row, as an ``(N, count)``
    index tensor.

    Up to 8 192 rows the search is exact. Above, a comparison of every pair would cost
    minutes (60 000 MNIST items: 3.6 billion distances), so the rows are grouped by k-means
    into cells of about 1 000 and each cell's rows are compared only with the rows of its
    three nearest cells (its own included): an inverted-file search whose misses are
    neighbours that are only a little farther than the true ones.
    """
    n_items = len(points)
    count = min(count, max(1, n_items - 1))
    if n_items <= _EXACT_NEIGHBOURS:
        return _exact_nearest(points, points, count, skip_self=n_items > 1)
    n_cells = max(4, n_items // 1000)
    centres, cells = _kmeans(points, n_cells, generator)
    nearby = _exact_nearest(centres, centres, min(2, n_cells - 1), skip_self=True)
    probes = torch.cat([torch.arange(n_cells)[:, None], nearby], 1)
    members = [torch.nonzero(cells == cell)[:, 0] for cell in range(n_cells)]
    neighbours = torch.empty(n_items, count, dtype=torch.long)
    for cell in range(n_cells):
        queries = members[cell]
        if len(queries) == 0:
            continue
        # The own cell first, so a query's own row sits at the same offset as in ``queries``.
        pool = torch.cat([members[int(other)] for other in probes[cell]])
        found = _exact_nearest(points[queries], points[pool], min(count, len(pool) - 1), True)
        if found.shape[1] < count:  # a tiny neighbourhood: repeat its nearest
            found = torch.cat([found, found[:, :1].expand(-1, count - found.shape[1])], 1)
        neighbours[queries] = pool[found]
    return neighbours


def input_neighbours(
    reader: _InputReader, n_items: int, count: int, generator: torch.Generator
) -> torch.Tensor:
    """The ``count`` nearest other items of every item in the top 64 principal components
    of the inputs (directions fitted on up to 20 000 items), as an ``(N, count)`` index
    tensor."""
    width = int(np.prod(reader.pool.input_shape))
    # Wide rows (a text pool's TF-IDF vectors) fit the directions on fewer items, so the
    # sample stays near 256 MB.
    sample_size = min(20_000, max(1_000, (256 << 20) // (4 * width)))
    sample = torch.randperm(n_items, generator=generator)[:sample_size]
    rows = reader(sample).reshape(len(sample), -1)
    centre = rows.mean(0)
    components = min(64, width, len(sample))
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # svd_lowrank draws its random start from the global RNG
        # A randomised SVD costs samples × width × 64, where a full one would cost
        # samples × width × min(samples, width): minutes for 20 000 TF-IDF rows.
        _, _, basis = torch.svd_lowrank(
            rows - centre, q=min(components + 8, width, len(sample)), niter=3
        )
    basis = basis[:, :components]
    projected = torch.cat(
        [
            (reader(torch.arange(start, min(start + 4096, n_items))).reshape(-1, width) - centre)
            @ basis
            for start in range(0, n_items, 4096)
        ]
    )
    return nearest(projected, count, generator)


def feature_neighbours(
    encoder: nn.Module, reader: _InputReader, n_items: int, count: int, generator, device
) -> torch.Tensor:
    """Nearest items by the cosine of the encoder's current features."""
    was_training = encoder.training
    encoder.eval()
    with torch.inference_mode():
        features = torch.cat(
            [
                encoder(reader(torch.arange(start, min(start + 1024, n_items))).to(device)).cpu()
                for start in range(0, n_items, 1024)
            ]
        )
    encoder.train(was_training)
    return nearest(functional.normalize(features, dim=1), count, generator)


def train_encoder(
    pool,
    recipe: Recipe,
    *,
    feature_dim: int,
    time_budget: float | None,
    max_epochs: float | None,
    seed: int,
    device: torch.device,
    progress=None,
    architecture: str | None = None,
) -> tuple[nn.Sequential, TrainingReport]:
    """Train an encoder on ``pool`` with ``recipe``; see :func:`self_supervised`.

    Returns the encoder (eval mode, on the CPU) and what the run did.
    """
    input_shape = tuple(pool.input_shape)
    images = len(input_shape) == 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # Contrasting with dropout on would add noise to both views of every pair.
        encoder = _build(input_shape, recipe, feature_dim, architecture, dropout=False)
        views = ImageViews(recipe) if images else RowViews(recipe)
        head = _projection_head(feature_dim, recipe.projection_dim)
    encoder.to(device).train()
    head.to(device).train()
    if images and device.type == "cpu":
        # oneDNN's channels-last convolutions are ≈ 1.5× faster on CPU for these sizes.
        encoder.to(memory_format=torch.channels_last)
    parameters = list(encoder.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(
        parameters, lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    # The budget counts reading the inputs and training, not the one-off imports above
    # (torch's first optimiser pulls in torch._dynamo: seconds, once per process).
    started = time.perf_counter()
    reader = _InputReader(pool)
    n_items = len(pool)
    neighbours = None
    refreshes: list[float] = []
    if recipe.neighbours > 0 and recipe.neighbour_rate > 0 and n_items > 2:
        neighbours = input_neighbours(reader, n_items, recipe.neighbours, generator)
        # Points in training (0..1) where the encoder's own features, by then better than
        # the inputs at telling classes apart, choose the neighbours again.
        total = recipe.neighbour_refreshes + 1
        refreshes = [index / total for index in range(1, total)]
    batch_size = min(recipe.batch_size, n_items)
    steps_per_epoch = max(1, n_items // batch_size)
    total_steps = None if max_epochs is None else max(1, math.ceil(max_epochs * steps_per_epoch))
    meter = _Progress(progress, time_budget, total_steps)
    losses: list[float] = []
    step = 0
    elapsed = time.perf_counter() - started
    try:
        while True:
            order = torch.randperm(n_items, generator=generator)
            for start in range(0, steps_per_epoch * batch_size, batch_size):
                # The schedule runs on whichever limit is nearer, so the rate reaches zero as
                # the budget ends even when the pace changes mid-run.
                done = 0.0
                if total_steps is not None:
                    done = step / total_steps
                if time_budget is not None:
                    done = max(done, elapsed / time_budget)
                if refreshes and done >= refreshes[0]:
                    refreshes.pop(0)
                    neighbours = feature_neighbours(
                        encoder, reader, n_items, recipe.neighbours, generator, device
                    )
                warmup = min(1.0, (step + 1) / max(1, recipe.warmup_steps))
                rate = recipe.learning_rate * warmup * 0.5 * (1 + math.cos(math.pi * min(done, 1)))
                for group in optimiser.param_groups:
                    group["lr"] = rate
                positions = order[start : start + batch_size]
                batch = reader(positions).to(device)
                view_a = views(batch, generator)
                if neighbours is not None:
                    # Some pairs join an item to one of its nearest neighbours rather than to
                    # itself: near duplicates in input space are mostly the same class, a
                    # tie that instance discrimination alone takes many epochs to find.
                    swap = torch.rand(len(positions), generator=generator) < recipe.neighbour_rate
                    pick = torch.randint(
                        neighbours.shape[1], (len(positions),), generator=generator
                    )
                    partners = torch.where(swap, neighbours[positions, pick], positions)
                    batch = reader(partners).to(device)
                view_b = views(batch, generator)
                if images and device.type == "cpu":
                    view_a = view_a.contiguous(memory_format=torch.channels_last)
                    view_b = view_b.contiguous(memory_format=torch.channels_last)
                # One forward pass over both views: BatchNorm then normalises them together.
                features = encoder(torch.cat([view_a, view_b]))
                projections = head(features)
                loss = nt_xent(
                    projections[:batch_size], projections[batch_size:], recipe.temperature
                )
                if not torch.isfinite(loss):
                    raise SelfSupervisedError(
                        f"self-supervised training diverged at step {step} (loss {loss.item()}); "
                        "lower the learning rate (recipe=Recipe(learning_rate=...))"
                    )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                step += 1
                losses.append(loss.item())
                elapsed = time.perf_counter() - started
                report = {
                    "epoch": step / steps_per_epoch,
                    "step": step,
                    "loss": float(np.mean(losses[-10:])),
                    "seconds": elapsed,
                    "budget": time_budget,
                }
                finished = (total_steps is not None and step >= total_steps) or (
                    time_budget is not None and elapsed >= time_budget
                )
                meter(report, final=finished)
                if finished:
                    raise StopIteration
    except StopIteration:
        pass
    finally:
        meter.close()
    encoder = encoder.to("cpu", memory_format=torch.contiguous_format).eval()
    if architecture == "gal_cnn":  # the dropout layers come back for MC dropout once fine-tuned
        trained = encoder
        encoder = _build(input_shape, recipe, feature_dim, architecture, dropout=True)
        encoder.load_state_dict(trained.state_dict(), strict=True)
        encoder.eval()
    return encoder, TrainingReport(
        seconds=elapsed,
        epochs=step / steps_per_epoch,
        steps=step,
        loss=float(np.mean(losses[-10:])),
        items_per_second=step * batch_size / max(elapsed, 1e-9),
    )


def _build(
    input_shape: tuple[int, ...],
    recipe: Recipe,
    feature_dim: int,
    architecture: str | None,
    *,
    dropout: bool = True,
) -> nn.Sequential:
    """The untrained encoder for ``input_shape``; ``dropout`` matters to the Gal body only
    (identity layers stand in its dropout layers' places, so the same weights load)."""
    if architecture == "gal_cnn":
        return gal_cnn_body(input_shape, feature_dim, dropout=dropout)
    if len(input_shape) == 3:
        return image_encoder(input_shape, feature_dim, recipe.widths)
    return row_encoder(int(np.prod(input_shape)), feature_dim, recipe.widths)


def _load(
    path: Path, pool, recipe: Recipe, feature_dim: int, architecture: str | None
) -> nn.Sequential | None:
    """The cached encoder, or None (with a warning) when the file cannot be trusted."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError("not a self-supervised encoder file of this version")
        state = payload["state_dict"]
        if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
            raise ValueError("it holds NaN/inf weights")
        encoder = _build(tuple(pool.input_shape), recipe, feature_dim, architecture)
        encoder.load_state_dict(state, strict=True)
        report = TrainingReport(**payload["report"])
    except Exception as error:  # noqa: BLE001 - any unreadable file is retrained, never used
        warnings.warn(
            f"the cached self-supervised encoder {path} is damaged "
            f"({type(error).__name__}: {error}); it is trained again",
            stacklevel=3,
        )
        return None
    report.loaded, report.path = True, str(path)
    encoder.report = report
    return encoder.eval()


def _save(path: Path, encoder: nn.Module, report: TrainingReport, settings: dict) -> None:
    payload = {
        "format": _FORMAT,
        "state_dict": encoder.state_dict(),
        "report": {k: v for k, v in asdict(report).items() if k not in ("loaded", "path")},
        "settings": json.dumps(settings, sort_keys=True),
    }
    atomic_torch_save(path, payload)


def self_supervised(
    pool,
    *,
    time_budget: float | None = 300.0,
    max_epochs: float | None = None,
    feature_dim: int = 128,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[dict], None] | bool | None = None,
    device: str | torch.device | None = None,
    recipe: Recipe | None = None,
    architecture: str | None = None,
) -> nn.Module:
    """An encoder trained on the pool's own unlabeled items, or loaded if trained before.

    Contrastive learning (SimCLR's NT-Xent loss) on random views of each item: images get
    a small CNN and random warps, erasing and noise; rows (tabular, text TF-IDF) get an MLP
    and SCARF feature corruption. Labels and the held-out split are never looked at.

    Parameters
    ----------
    pool : Pool
        Trained on ``pool.inputs`` of every item: ``(N, C, H, W)`` images or ``(N, D)`` rows.
    time_budget : float or None
        Seconds of training. The step that crosses it is the last; the learning rate's
        cosine schedule is paced so that it reaches zero at the budget. ``None``: no limit
        (then give ``max_epochs``).
    max_epochs : float or None
        Passes over the pool, if training should stop earlier than the budget. With
        ``time_budget=None`` the run is reproducible step for step; with a budget, how far it
        gets depends on the machine's pace.
    feature_dim : int
        Width of the returned features.
    seed : int
        Seeds the initial weights, the batch order and the random views.
    cache_dir : path-like, optional
        Where the trained weights are kept: ``$ALWIDGET_CACHE/encoders`` or
        ``~/.cache/alwidget/encoders`` by default. The file name hashes the pool's content
        digest and every setting above except ``progress``, ``device`` and ``cache_dir``.
    progress : callable, bool or None
        A callable receiving ``{"epoch", "step", "loss", "seconds", "budget"}`` about twice a
        second and after the last step; ``None`` or ``True`` shows a tqdm bar (a widget in a
        notebook); ``False`` shows nothing.
    device : str or torch.device, optional
        Where training runs (CPU by default). The encoder is returned on the CPU.
    recipe : Recipe, optional
        Training details (batch size, temperature, augmentation strengths); the defaults
        were chosen on MNIST.
    architecture : {None, "gal_cnn"}
        The network trained. ``None``: a small strided CNN (images; ``recipe.widths``) or an
        MLP (rows), ending in an affine-free BatchNorm. ``"gal_cnn"`` (images only): the
        body of :class:`alwidget.models.GalCNN`, every layer before its output layer, ending
        in ``feature_dim`` ReLU features; a slower network (about 5× fewer images per
        second) that learns much better from labels when fine-tuned. Its dropout layers
        are off while it trains here and kept in the returned encoder (they give the
        MC-dropout samples when it is fine-tuned). Part of the cache key.

    Returns
    -------
    nn.Sequential
        In eval mode, mapping a batch of model inputs to ``(batch, feature_dim)`` features;
        no dropout inside, except in the ``"gal_cnn"`` body. Its ``report`` attribute (a :class:`TrainingReport`) tells how
        long it trained, or that it was loaded.

    Raises
    ------
    SelfSupervisedError
        For inputs that are neither images nor rows, ``architecture="gal_cnn"`` with inputs
        that are not images (or images too small for its 4×4 kernels), an unknown
        ``architecture``, a pool of fewer than 2 items, settings
        out of range, or a run whose loss diverged.

    Notes
    -----
    On two CPU cores the default CNN sees about 2 000–2 500 MNIST images per second (two
    views each): an epoch of the 60 000-image pool takes about 30 s. A damaged cache file is
    trained again with a warning, never used.
    """
    recipe = Recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise SelfSupervisedError(
            f"recipe must be an alwidget.encoders.self_supervised.Recipe, got {type(recipe).__name__}"
        )
    if time_budget is None and max_epochs is None:
        raise SelfSupervisedError(
            "self_supervised: give time_budget (seconds) or max_epochs, or both; with neither "
            "training would never stop"
        )
    if time_budget is not None and not (isinstance(time_budget, (int, float)) and time_budget > 0):
        raise SelfSupervisedError(
            f"time_budget must be a positive number of seconds or None, got {time_budget!r}"
        )
    if max_epochs is not None and not (isinstance(max_epochs, (int, float)) and max_epochs > 0):
        raise SelfSupervisedError(
            f"max_epochs must be a positive number or None, got {max_epochs!r}"
        )
    if isinstance(feature_dim, bool) or int(feature_dim) != feature_dim or feature_dim < 1:
        raise SelfSupervisedError(f"feature_dim must be a positive integer, got {feature_dim!r}")
    feature_dim = int(feature_dim)
    if len(pool) < 2:
        raise SelfSupervisedError(
            f"self_supervised needs at least 2 items to contrast; the pool has {len(pool)}"
        )
    input_shape = tuple(pool.input_shape)
    if len(input_shape) not in (1, 3):
        raise SelfSupervisedError(
            f"self_supervised trains on images (inputs shaped (N, C, H, W)) or rows ((N, D)); "
            f"this pool's inputs are shaped (N, {', '.join(map(str, input_shape))}). Pass "
            "Pool(features=...) rows, or an encoder of your own"
        )
    if architecture not in ARCHITECTURES:
        raise SelfSupervisedError(
            f"self_supervised: architecture={architecture!r} is not one of {ARCHITECTURES}; "
            "leave it unset (None) for the default network, or pass 'gal_cnn'"
        )
    if architecture == "gal_cnn" and len(input_shape) != 3:
        raise SelfSupervisedError(
            "self_supervised: architecture='gal_cnn' is a convolutional network for images "
            f"(inputs shaped (N, C, H, W)), but this pool's inputs are rows shaped "
            f"(N, {', '.join(map(str, input_shape))}); leave architecture unset (None) for the "
            "row encoder (an MLP)"
        )
    if architecture == "gal_cnn":
        gal_cnn_body(input_shape, feature_dim)  # images too small for it fail here, not later
    settings = {
        "format": _FORMAT,
        "time_budget": None if time_budget is None else float(time_budget),
        "max_epochs": None if max_epochs is None else float(max_epochs),
        "feature_dim": feature_dim,
        "seed": int(seed),
        "recipe": asdict(recipe),
    }
    if architecture is not None:
        # Only a non-default network enters the key, so encoders cached before this option
        # existed are still found.
        settings["architecture"] = architecture
    key = _settings_key(pool, settings)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "encoders"
    path = directory / f"self-supervised-{key[:32]}.pt"
    if path.exists():
        encoder = _load(path, pool, recipe, feature_dim, architecture)
        if encoder is not None:
            return encoder
    device = torch.device("cpu" if device is None else device)
    encoder, report = train_encoder(
        pool,
        recipe,
        feature_dim=feature_dim,
        time_budget=time_budget,
        max_epochs=max_epochs,
        seed=int(seed),
        device=device,
        progress=progress,
        architecture=architecture,
    )
    _save(path, encoder, report, settings)
    report.path = str(path)
    encoder.report = report
    return encoder
