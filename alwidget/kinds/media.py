"""Strings that name media files: a list of them is not a text corpus.

Without this check a list of ``.wav`` paths would silently become a text pool, and the model
would learn from the file names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .base import ItemKindError

__all__ = ["MEDIA_SUFFIXES", "looks_like_media_path", "first_media_path", "unread_media_error"]

_SUFFIX_GROUPS = {
    "audio": ".wav .mp3 .flac .ogg .oga .opus .m4a .aac .aif .aiff .wma",
    "video": ".mp4 .m4v .mov .avi .mkv .webm .wmv .mpg .mpeg",
    "documents": ".pdf .djvu .epub .doc .docx .odt .rtf .ppt .pptx .xls .xlsx "
    ".txt .md .html .htm .xml .json",
    "medical and scientific": ".dcm .dicom .nii .nii.gz .nrrd .mha .mhd .svs .ndpi .czi "
    ".h5 .hdf5 .npy .npz .mat .csv .tsv .parquet",
    # Image suffixes too: the image kind reads lists of images only, not mixed with others.
    "pictures": ".png .jpg .jpeg .bmp .gif .tif .tiff .webp .heic .heif .svg .psd .exr .dng "
    ".cr2 .nef",
    "3-D": ".ply .stl .obj",
}
MEDIA_SUFFIXES = tuple(suffix for group in _SUFFIX_GROUPS.values() for suffix in group.split())

_LONGEST_PATH = 4096


def looks_like_media_path(value) -> bool:
    """Whether a string (or path) reads as the name of a media file rather than as text.

    It must end in a :data:`MEDIA_SUFFIXES` suffix, be one line, and either contain no
    blank, contain a directory separator or name an existing file, so that a sentence
    ending in "photo.jpg" still counts as text.
    """
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or len(text) > _LONGEST_PATH or "\n" in text:
        return False
    if not text.lower().endswith(MEDIA_SUFFIXES):
        return False
    if not isinstance(value, str) or not any(blank in text for blank in " \t"):
        return True
    return "/" in text or os.sep in text or os.path.isfile(text)


def first_media_path(items) -> tuple[int, str] | None:
    """Position and text of the first item of a list that looks like a media path."""
    if not isinstance(items, (list, tuple)):
        return None
    for position, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)) and looks_like_media_path(item):
            return position, os.fspath(item)
    return None


def unread_media_error(items: Sequence, argument: str, readers: str) -> ItemKindError | None:
    """The error for strings naming media files no registered kind reads, else ``None``."""
    found = first_media_path(items)
    if found is None:
        return None
    position, path = found
    return ItemKindError(
        f"{argument}[{position}] = {path!r} looks like the path of a media file, and no "
        f"registered item kind reads such files ({readers}). Register a kind that does with "
        "alwidget.kinds.register(kind), read the files into arrays or strings yourself, or "
        f"pass kind='text' to al.Pool if these strings really are the texts to label."
    )
