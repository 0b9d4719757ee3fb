"""Images: ``N×H×W`` / ``N×H×W×C`` arrays, image files, or torch Datasets of pictures.

Shown as PNGs (nearest-neighbour upscaling keeps 8×8 digits crisp); trained with one mean
and standard deviation over all pixels; the small CNN is their default model.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .base import (
    FOCUS_PX,
    THUMBNAIL_PX,
    InputEncoder,
    PoolItems,
    RenderedItem,
    ids_hover,
    numeric_shape,
    png_pane_html,
    whole_input_scaling,
    wrong_items,
)
from .items import DatasetItems, FileItems, dataset_item_ndim, numeric_items

__all__ = [
    "ImageKind",
    "IMAGE_SUFFIXES",
    "load_image_file",
    "image_to_uint8",
    "png_bytes",
    "images_to_model_input",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_CHANNEL_COUNTS = (1, 3, 4)


def load_image_file(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a ``H×W`` (grayscale) or ``H×W×3`` uint8 array.

    Raises
    ------
    ValueError
        If the file is missing or is not a readable image; the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in ("1", "L", "I;16", "I", "F") else "RGB"
            return np.asarray(image.convert(mode))
    except FileNotFoundError:
        raise ValueError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"corrupt or unreadable image file {path}: {error}") from None


def image_to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an image array to ``uint8`` ``H×W`` or ``H×W×3/4`` for display.

    Floats in ``[0, 1]`` are read as intensities; any other range is stretched min–max per
    image (digits are 0–16, standardised features are around 0).

    Raises
    ------
    ValueError
        For shapes that are not an image, or NaN/inf pixels.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in _CHANNEL_COUNTS and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # C×H×W tensors from torch datasets
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            f"cannot show an array of shape {array.shape} as an image (want H×W or H×W×3/4)"
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("image contains NaN or inf pixels")
    low, high = float(values.min()), float(values.max())
    if 0.0 <= low and high <= 1.0 and np.issubdtype(array.dtype, np.floating):
        low, high = 0.0, 1.0
    elif np.issubdtype(array.dtype, np.integer) and low >= 0 and high <= 255 and high > 16:
        low, high = 0.0, 255.0
    span = high - low
    scaled = np.zeros_like(values) if span == 0 else (values - low) / span
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray, max_px: int) -> bytes:
    """PNG of ``image`` with its longer side ``max_px`` (nearest neighbour when enlarging)."""
    from PIL import Image

    picture = Image.fromarray(image_to_uint8(image))
    width, height = picture.size
    factor = max_px / max(width, height)
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resample = Image.Resampling.NEAREST if factor >= 1 else Image.Resampling.LANCZOS
    buffer = io.BytesIO()
    picture.resize(new_size, resample).save(buffer, format="PNG")
    return buffer.getvalue()


def images_to_model_input(images) -> np.ndarray:
    """Images ``N×H×W[×C]`` (one array or a list of equal-sized ones) → ``N×C×H×W`` float32."""
    if isinstance(images, list):
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            raise ValueError(
                f"images differ in size {sorted(shapes)}; resize them or pass features="
            )
        images = np.stack(images)
    if images.ndim == 3:
        images = images[:, None, :, :]
    else:
        images = np.moveaxis(images, -1, 1)
    return images.astype(np.float32, copy=False)


def _is_image_shape(shape: tuple[int, ...] | None) -> bool:
    if shape is None:
        return False
    return len(shape) == 3 or (len(shape) == 4 and shape[-1] in _CHANNEL_COUNTS)


def _are_image_paths(items) -> bool:
    return (
        isinstance(items, (list, tuple))
        and len(items) > 0
        and all(isinstance(item, (str, os.PathLike)) for item in items)
        and all(Path(item).suffix.lower() in IMAGE_SUFFIXES for item in items)
    )


def _read_files(items) -> FileItems:
    paths = [Path(item) for item in items]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} image files not found, e.g. {missing[0]}")
    return FileItems(paths, load_image_file)


def _reader(items) -> Callable[[object], PoolItems] | None:
    if _are_image_paths(items):
        return _read_files
    if _is_image_shape(numeric_shape(items)):
        return numeric_items
    ndim = dataset_item_ndim(items)
    if ndim is not None and ndim != 1:
        return DatasetItems
    return None


class ImageKind:
    """Pictures: arrays ``N×H×W`` or ``N×H×W×C`` (C in 1/3/4), image file paths, Datasets."""

    name = "image"
    description = (
        "N×H×W or N×H×W×C arrays (C in 1/3/4), lists of image file paths "
        f"({', '.join(sorted(IMAGE_SUFFIXES))}) and torch Datasets of pictures"
    )

    def detect(self, items) -> bool:
        return _reader(items) is not None

    def read(self, items) -> PoolItems:
        reader = _reader(items)
        if reader is None:
            raise wrong_items(self, items)
        return reader(items)

    def input_encoder(self, items: PoolItems) -> InputEncoder:
        return InputEncoder(images_to_model_input, whole_input_scaling)

    def default_model(self, input_shape: tuple[int, ...]) -> str:
        return "small_cnn" if len(input_shape) == 3 else "mlp"

    def render(self, item) -> RenderedItem:
        return RenderedItem(self.name, png_bytes(item, THUMBNAIL_PX), png_bytes(item, FOCUS_PX))

    def pane_html(self, item) -> str:
        return png_pane_html(png_bytes(item, FOCUS_PX))

    def hover_texts(self, pool) -> list[str]:
        return ids_hover(pool.ids)
