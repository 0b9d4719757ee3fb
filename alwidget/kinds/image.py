"""Images: ``N×H×W`` / ``N×H×W×C`` arrays, image files (a list of paths or a folder), or
torch Datasets of pictures.

Shown as PNGs (nearest-neighbour upscaling keeps 8×8 digits crisp); trained with one mean
and standard deviation over all pixels; the small CNN is their default model.

Image files are read by their Pillow mode, without clipping to 8 bits:

- values: 8-bit modes stay ``uint8``, 16-bit greyscale (``I;16``) stays ``uint16``, 32-bit
  integer (``I``) ``int32`` and float (``F``) ``float32``, as stored. Model inputs divide
  ``uint8`` by 255 and ``uint16`` by 65 535 (so 8- and 16-bit files mix) and keep ``I`` and
  ``F`` values as stored; the pool's standardisation then sets the scale. A 12-bit image
  stored as 16 bits is therefore not stretched for the model (the standardisation absorbs
  a common scale); it is shown stretched to its own range, as is any image beyond 0–255.
- channels, one policy per pool: greyscale files stay ``H×W`` unless any file of the pool
  (or its held-out split) is in colour, then every file is read as ``H×W×3`` RGB, grey ones
  with three equal channels. Palette (``P``) files count as colour; CMYK, YCbCr, LAB and HSV
  are converted to RGB.
- transparency (``LA``, ``RGBA``, ``PA``, a PNG transparent colour) is composited on white,
  as a browser shows it on a white page, with a warning when the pool is built; to keep
  alpha as a channel, read the files into an ``N×H×W×4`` array yourself.
- other modes are refused with a message naming the mode. Pillow itself reads PNGs with 16
  bits per colour channel (RGB, or grey with alpha) as 8-bit RGB / RGBA.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import (
    FOCUS_PX,
    THUMBNAIL_PX,
    InputEncoder,
    ItemKindError,
    PoolItems,
    RenderedItem,
    ids_hover,
    numeric_shape,
    png_pane_html,
    whole_input_scaling,
    wrong_items,
)
from .items import (
    DatasetItems,
    FileItems,
    SkippedFile,
    UnreadableFileError,
    dataset_item_ndim,
    numeric_items,
)

__all__ = [
    "ImageKind",
    "ImageFiles",
    "ImageFileInfo",
    "IMAGE_SUFFIXES",
    "check_image_file",
    "load_image_file",
    "image_files_in",
    "image_to_uint8",
    "png_bytes",
    "images_to_model_input",
    "file_images_to_model_input",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_CHANNEL_COUNTS = (1, 3, 4)

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_COLOUR_MODES = frozenset({"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_INTENSITY_RANGE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_BACKGROUND = 255  # transparent pixels become white


@dataclass(frozen=True)
class ImageFileInfo:
    """What the header of a readable image file says (no pixels are kept).

    Attributes
    ----------
    mode : str
        Pillow's mode (``"L"``, ``"RGB"``, ``"I;16"``, ``"F"``, ...).
    size : tuple of int
        ``(height, width)``, as the array will have it.
    alpha : bool
        Whether the file has transparency (an alpha channel or a transparent colour).
    """

    mode: str
    size: tuple[int, int]
    alpha: bool

    @property
    def colour(self) -> bool:
        return self.mode in _COLOUR_MODES


class _UnsupportedMode(Exception):
    """A Pillow mode with no documented conversion."""


def _has_alpha(image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _file_info(image) -> ImageFileInfo:
    if image.mode not in _GREY_MODES | _COLOUR_MODES:
        raise _UnsupportedMode(
            f"Pillow mode {image.mode!r} is not supported (alwidget reads "
            f"{', '.join(sorted(_GREY_MODES | _COLOUR_MODES))}); convert the file, e.g. to PNG"
        )
    return ImageFileInfo(image.mode, (image.height, image.width), _has_alpha(image))


def _reason(error: Exception) -> str:
    """Why a file cannot be read, in words (Pillow's messages name a BytesIO or nothing)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow can identify (empty, cut short, or another format)"
    if isinstance(error, Image.DecompressionBombError):
        return (
            f"larger than Pillow's decompression-bomb limit ({error}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        )
    if isinstance(error, _UnsupportedMode):
        return str(error)
    if "truncated" in str(error).lower():
        return f"truncated ({error})"
    return f"corrupt ({type(error).__name__}: {error})"


def _unreadable(path, error: Exception, what: str) -> UnreadableFileError:
    reason = _reason(error)
    return UnreadableFileError(f"{what} {path}: {reason}", [SkippedFile(Path(path), reason)])


def _on_background(array: np.ndarray) -> np.ndarray:
    """``…×(C+1)`` uint8 pixels with alpha last → ``…×C`` (or ``H×W``) composited on white."""
    alpha = array[..., -1:].astype(np.float32) / 255.0
    colour = array[..., :-1].astype(np.float32)
    blended = np.rint(colour * alpha + _BACKGROUND * (1.0 - alpha)).astype(np.uint8)
    return blended[..., 0] if blended.shape[-1] == 1 else blended


def _pixels(image, colour: bool | None) -> np.ndarray:
    """The pixels of an opened image by the module's policy (see the module docstring)."""
    _file_info(image)
    mode = image.mode
    if mode in ("P", "PA"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    elif mode in ("La", "RGBa"):
        image = image.convert(mode[:-1] + "A")  # premultiplied → straight alpha
    elif mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("LA" if mode == "L" else "RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    array = np.asarray(image)
    if image.mode in ("LA", "RGBA"):
        array = _on_background(array)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))  # I;16B files
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{int((~np.isfinite(array)).sum())} NaN/inf pixels")
    if colour and array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    elif colour is False and array.ndim == 3:
        # Only a file turned colour after its pool was built as greyscale gets here.
        from PIL import Image

        array = np.asarray(Image.fromarray(array).convert("L"))
    return np.ascontiguousarray(array)


def load_image_file(path: str | os.PathLike, colour: bool | None = None) -> np.ndarray:
    """Read an image file into an ``H×W`` (greyscale) or ``H×W×3`` (colour) array.

    Values are not rescaled or clipped: ``uint8`` for 8-bit modes, ``uint16`` for 16-bit
    greyscale, ``int32`` for mode ``I``, ``float32`` for mode ``F``. Transparency is
    composited on white; palette, CMYK and other colour modes become RGB (see the module
    docstring for the whole policy).

    Parameters
    ----------
    path : str or PathLike
        The image file.
    colour : bool, optional
        ``True`` gives ``H×W×3`` even for a greyscale file (three equal channels),
        ``False`` gives ``H×W`` even for a colour file (luma); ``None`` keeps the file's own.

    Raises
    ------
    UnreadableFileError
        (a ``ValueError``) if the file is missing, corrupt, has NaN/inf pixels or a mode
        with no documented conversion; the message names the file and the reason.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return _pixels(image, colour)
    except Exception as error:  # Pillow raises many types on broken files; name the file
        raise _unreadable(path, error, "corrupt or unreadable image file") from None


def check_image_file(path: str | os.PathLike) -> ImageFileInfo:
    """Check that ``path`` is a readable image file, cheaply, and return its header facts.

    PNG files are verified chunk by chunk (every CRC, without decompressing: a cut-short
    file fails); JPEG files are decoded at 1/8 scale (a cut-short one fails); other formats
    are decoded and converted as :func:`load_image_file` would.

    Raises
    ------
    UnreadableFileError
        Naming the file and the reason.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            info = _file_info(image)
            if image.format == "PNG":
                image.verify()
            elif image.format == "JPEG":
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
            else:
                image.load()
                _pixels(image, None)
            return info
    except Exception as error:  # Pillow raises many types on broken files; name the file
        raise _unreadable(path, error, "cannot read image file") from None


class ImageFiles(FileItems):
    """Image files read on demand, in one channel layout for the whole pool.

    Every file is checked once (:meth:`check`, which a pool runs when it is built); the
    checks' header facts fix the layout: ``H×W×3`` if any file is in colour, else ``H×W``.
    """

    def __init__(self, paths: Sequence[Path], ids: Sequence | None = None):
        super().__init__(paths, self._load_file, check_image_file, ids)
        self._colour: bool | None = None

    def _infos(self) -> list[ImageFileInfo]:
        if self.file_info is None:
            self.check()  # a holder made outside a pool: bad files fail when read
        return [info for info in self.file_info if info is not None]

    @property
    def colour(self) -> bool:
        """Whether items are read as ``H×W×3`` (some file is in colour) or ``H×W``."""
        if self._colour is None:
            self._colour = any(info.colour for info in self._infos())
        return self._colour

    def read_in_colour(self, colour: bool) -> None:
        """Fix the layout (a held-out split follows its pool's: colour if either has it)."""
        self._colour = colour

    def _load_file(self, path: Path) -> np.ndarray:
        return load_image_file(path, colour=self.colour)

    def check(self) -> list[tuple[int, str]]:
        bad = super().check()
        transparent = [
            path for path, info in zip(self.paths, self.file_info) if info and info.alpha
        ]
        if transparent:
            warnings.warn(
                f"{len(transparent)} of {len(self.paths)} image files have transparency "
                f"(e.g. {transparent[0]}); alwidget composites them on white. Read them into "
                "an N×H×W×4 array yourself to keep alpha as a channel",
                stacklevel=4,
            )
        return bad

    def subset(self, positions: Sequence[int]) -> ImageFiles:
        kept = super().subset(positions)
        kept._colour = None  # the layout follows the files kept
        return kept

    def require_one_size(self) -> None:
        """Refuse files of different sizes, naming one of each, before any model sees them."""
        if self.file_info is None:
            self.check()
        examples: dict[tuple[int, int], list[Path]] = {}
        for path, info in zip(self.paths, self.file_info):
            if info is not None:
                examples.setdefault(info.size, []).append(path)
        if len(examples) > 1:
            sizes = sorted(examples.items(), key=lambda entry: -len(entry[1]))
            listing = "; ".join(
                f"{len(paths)} are {height}×{width} (e.g. {paths[0]})"
                for (height, width), paths in sizes[:4]
            )
            raise ItemKindError(
                f"image files differ in size: {listing}. Resize them to one size, or pass "
                "features= (an array or a function of one image) to al.Pool"
            )


def image_files_in(folder: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """The image files under ``folder`` (recursively, hidden ones left out), sorted, and
    their paths relative to it (``/``-separated) as ids."""
    root = os.fspath(folder)
    found = []
    for directory, subfolders, names in os.walk(root):
        # .DS_Store, ._photo.jpg resource forks, .ipynb_checkpoints are not the user's images
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative_folder = os.path.relpath(directory, root)
        for name in names:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            relative = name if relative_folder == "." else f"{relative_folder}/{name}"
            found.append((relative.replace(os.sep, "/"), os.path.join(directory, name)))
    found.sort()
    return [Path(path) for _, path in found], [relative for relative, _ in found]


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
    # Laid out N×C×H×W in memory: the svd encoder and linear layers flatten it, which copied
    # a channels-last view once more.
    return np.ascontiguousarray(images, dtype=np.float32)


def file_images_to_model_input(images: list[np.ndarray]) -> np.ndarray:
    """Images read from files → ``N×C×H×W`` float32, each scaled by its type's range.

    ``uint8`` is divided by 255 and ``uint16`` by 65 535, so a pool mixing 8- and 16-bit
    files puts them on one intensity scale; ``int32`` and ``float32`` pixels stay as stored.
    """
    if len({(image.dtype, image.shape) for image in images}) == 1:
        # One stack (a copy, so dividing in place is safe), one cast, one division, the same
        # float32 values: 2 000 RGB 96×96 images converted and flattened in 0.11 s, against
        # 0.44 s image by image into a channels-last view.
        model_input = images_to_model_input(np.stack(images))
        intensity_range = _INTENSITY_RANGE.get(images[0].dtype)
        if intensity_range:
            model_input /= np.float32(intensity_range)
        return model_input
    scaled = []
    for image in images:
        intensity_range = _INTENSITY_RANGE.get(image.dtype)
        values = image.astype(np.float32)
        scaled.append(values / np.float32(intensity_range) if intensity_range else values)
    return images_to_model_input(scaled)


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


def _is_folder(items) -> bool:
    return isinstance(items, (str, os.PathLike)) and Path(items).is_dir()


def _read_files(items) -> ImageFiles:
    # Missing files are found by the pool's check, with every other bad file.
    return ImageFiles([Path(item) for item in items])


def _read_folder(folder) -> ImageFiles:
    paths, ids = image_files_in(folder)
    if not paths:
        raise ItemKindError(
            f"items: the folder {folder} holds no image files "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}, hidden files left out); "
            "check the path or pass a list of file paths"
        )
    return ImageFiles(paths, ids=ids)


def _reader(items) -> Callable[[object], PoolItems] | None:
    if _is_folder(items):
        return _read_folder
    if _are_image_paths(items):
        return _read_files
    if _is_image_shape(numeric_shape(items)):
        return numeric_items
    ndim = dataset_item_ndim(items)
    if ndim is not None and ndim != 1:
        return DatasetItems
    return None


class ImageKind:
    """Pictures: arrays ``N×H×W`` or ``N×H×W×C`` (C in 1/3/4), image file paths or a folder
    of image files, torch Datasets. How files are read: see :mod:`alwidget.kinds.image`."""

    name = "image"
    description = (
        "N×H×W or N×H×W×C arrays (C in 1/3/4), lists of image file paths "
        f"({', '.join(sorted(IMAGE_SUFFIXES))}), a folder of such files and torch Datasets "
        "of pictures"
    )

    def detect(self, items) -> bool:
        return _reader(items) is not None

    def read(self, items) -> PoolItems:
        reader = _reader(items)
        if reader is None:
            raise wrong_items(self, items)
        return reader(items)

    def input_encoder(self, items: PoolItems) -> InputEncoder:
        if isinstance(items, ImageFiles):
            items.require_one_size()
            return InputEncoder(file_images_to_model_input, whole_input_scaling)
        return InputEncoder(images_to_model_input, whole_input_scaling)

    def default_model(self, input_shape: tuple[int, ...]) -> str:
        return "small_cnn" if len(input_shape) == 3 else "mlp"

    def render(self, item) -> RenderedItem:
        return RenderedItem(self.name, png_bytes(item, THUMBNAIL_PX), png_bytes(item, FOCUS_PX))

    def pane_html(self, item) -> str:
        return png_pane_html(png_bytes(item, FOCUS_PX))

    def hover_texts(self, pool) -> list[str]:
        return ids_hover(pool.ids)
