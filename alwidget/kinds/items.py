"""How a pool holds its items, whatever their kind: one array, a list, files, or a Dataset.

Each class follows :class:`alwidget.kinds.base.PoolItems`, so a kind reads the user's items
into one of these and the pool stays the same for every kind.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import AlwidgetError
from .base import as_numeric_array, looks_like_dataset
from .checks import read_dataset_item, stack_dataset_rows

__all__ = [
    "ArrayItems",
    "ListItems",
    "FileItems",
    "SkippedFile",
    "UnreadableFileError",
    "DatasetItems",
    "numeric_items",
    "first_part",
    "dataset_item_ndim",
]


class ArrayItems:
    """Items stacked in one numeric array (first axis = items)."""

    model_ready = False

    def __init__(self, array: np.ndarray):
        self.array = array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def get(self, position: int):
        return self.array[position]

    def batch(self, positions: np.ndarray) -> np.ndarray:
        return self.array[positions]

    def path(self, position: int) -> None:
        return None

    def digest(self, hasher: hashlib._Hash) -> None:
        """Feed the items' content to ``hasher`` (shape, dtype and every byte)."""
        array = np.ascontiguousarray(self.array)
        hasher.update(f"array {array.shape} {array.dtype.str}\n".encode())
        hasher.update(memoryview(array.reshape(-1).view(np.uint8)))


def numeric_items(items) -> ArrayItems:
    """Items that form one numeric array, checked for non-numbers and NaN/inf values."""
    return ArrayItems(as_numeric_array(items, "items"))


class ListItems:
    """Items kept as the user gave them, one Python object each (e.g. strings)."""

    model_ready = False

    def __init__(self, values: Sequence):
        self.values = list(values)

    def __len__(self) -> int:
        return len(self.values)

    def get(self, position: int):
        return self.values[position]

    def batch(self, positions: np.ndarray) -> list:
        return [self.values[int(position)] for position in positions]

    def path(self, position: int) -> None:
        return None

    def digest(self, hasher: hashlib._Hash) -> None:
        """Feed each value's type and text to ``hasher``."""
        hasher.update(f"list {len(self.values)}\n".encode())
        for value in self.values:
            hasher.update(f"{type(value).__name__}:{value!s}".encode("utf-8", "surrogatepass"))
            hasher.update(b"\0")


class SkippedFile(NamedTuple):
    """A file left out of a pool (or refused): where it is and why it cannot be read."""

    path: Path
    reason: str


class UnreadableFileError(AlwidgetError, ValueError):
    """A file that cannot be read as an item: missing, corrupt, or in a form not supported.

    Attributes
    ----------
    files : list of SkippedFile
        Every file concerned, with the reason (all bad files of a pool when it is built).
    """

    def __init__(self, message: str, files: Sequence[SkippedFile] = ()):
        super().__init__(message)
        self.files = list(files)


# Decoding an image file releases the GIL (Pillow's decoders, zlib), so batches are read on
# two threads: 3 000 RGB 96×96 PNGs took 1.18 s on one and 0.88 s on two with the machine
# already busy, a part of every session's start on a folder of images.
_READ_IN_PARALLEL_FROM = 16
_READ_THREADS = 2
_readers: ThreadPoolExecutor | None = None
_readers_lock = threading.Lock()


def _file_readers() -> ThreadPoolExecutor:
    global _readers
    with _readers_lock:
        if _readers is None:
            _readers = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="alwidget-read")
        return _readers


def _forget_readers_in_child() -> None:
    # A forked child (a DataLoader worker, say) has none of the parent's threads: work sent to
    # the parent's executor would wait for ever, and the lock may have been held at the fork.
    global _readers, _readers_lock
    _readers, _readers_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_readers_in_child)


class FileItems:
    """Items read from files on demand (never held in memory).

    Parameters
    ----------
    paths : sequence of Path
        One file per item.
    load : callable
        ``load(path) -> item``; raises :class:`UnreadableFileError` naming the file.
    check : callable, optional
        ``check(path) -> info``, run on every file when a pool is built (:meth:`check`);
        raises :class:`UnreadableFileError` for a bad file and returns what the holder needs
        to know of a good one (kept in :attr:`file_info`).
    ids : sequence, optional
        Ids the files suggest (e.g. their paths inside a folder); a pool uses them when
        the user gives none.
    """

    model_ready = False

    def __init__(
        self,
        paths: Sequence[Path],
        load: Callable[[Path], object],
        check: Callable[[Path], object] | None = None,
        ids: Sequence | None = None,
    ):
        self.paths = list(paths)
        self._load = load
        self._check = check
        self.default_ids = None if ids is None else list(ids)
        self.file_info: list | None = None  # one entry per file once checked, None if bad
        self._facts: list | None = None  # see _file_facts
        self._kept: dict | None = None  # see keeping_reads
        self._kept_bytes = 0
        self._kept_limit = 0
        self._kept_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, position: int):
        return self._read(int(position))

    def batch(self, positions: np.ndarray) -> list:
        positions = [int(position) for position in positions]
        if len(positions) < _READ_IN_PARALLEL_FROM or threading.current_thread().name.startswith(
            "alwidget-read"
        ):  # a loader that reads a batch itself must not wait for the threads it runs on
            return [self._read(position) for position in positions]
        # In file order: the first unreadable file raises, as a plain loop would.
        return list(_file_readers().map(self._read, positions))

    def path(self, position: int) -> Path:
        return self.paths[position]

    @contextmanager
    def keeping_reads(self, max_bytes: int = 256 * 2**20) -> Iterator[None]:
        """Keep what is read in this block (the first ``max_bytes`` of it) for later reads in
        the block, then forget it.

        A session's start reads a sample of the files to fit the input scale and the svd
        encoder, then every file to encode the pool: on 5 000 RGB 96×96 PNGs, 2 500 of its
        7 500 file reads read a file a second time.
        """
        with self._kept_lock:
            self._kept, self._kept_bytes, self._kept_limit = {}, 0, int(max_bytes)
        try:
            yield
        finally:
            with self._kept_lock:
                self._kept, self._kept_bytes = None, 0

    def _read(self, position: int):
        kept = self._kept
        if kept is not None and position in kept:
            return kept[position]
        item = self._read_file(position)
        if kept is not None:
            size = item.nbytes if isinstance(item, np.ndarray) else sys.getsizeof(item)
            with self._kept_lock:
                # The first reads are kept, not the latest: a whole-pool pass after the sample
                # would otherwise push out the sample it is about to read again.
                if self._kept is kept and self._kept_bytes + size <= self._kept_limit:
                    if isinstance(item, np.ndarray):
                        item.flags.writeable = False  # handed out again: nobody may change it
                    kept[position] = item
                    self._kept_bytes += size
        return item

    def _read_file(self, position: int):
        try:
            return self._load(self.paths[position])
        except UnreadableFileError as error:
            if self.file_info is None or self.file_info[position] is None:
                raise
            # It passed the check when the pool was built, so it changed since.
            raise UnreadableFileError(
                f"{error}. It was readable when the pool was built: restore the file, or "
                'rebuild the pool (on_error="skip" leaves unreadable files out)',
                error.files,
            ) from None

    def check(self) -> list[tuple[int, str]]:
        """Check every file once; ``(position, reason)`` for each file that cannot be read.

        Nothing is dropped here: the pool decides whether to refuse or skip (see
        :meth:`subset`).
        """
        if self._check is None:
            self.file_info = [None] * len(self.paths)
            return []
        if len(self.paths) >= _READ_IN_PARALLEL_FROM:
            # Checking is reading and CRCs, which release the GIL: 5 001 PNGs took 1.4 s.
            outcomes = list(_file_readers().map(self._check_one, self.paths))
        else:
            outcomes = [self._check_one(path) for path in self.paths]
        self.file_info = [info for info, _ in outcomes]
        return [
            (position, reason)
            for position, (_, reason) in enumerate(outcomes)
            if reason is not None
        ]

    def _check_one(self, path) -> tuple[object, str | None]:
        """``(info, None)`` for a good file, ``(None, reason)`` for a bad one."""
        try:
            return self._check(path), None
        except UnreadableFileError as error:
            return None, error.files[0].reason if error.files else str(error)

    def subset(self, positions: Sequence[int]) -> FileItems:
        """A holder of the files at ``positions`` only (what they were checked to be kept)."""
        kept = copy.copy(self)
        kept.paths = [self.paths[position] for position in positions]
        kept._facts = None
        kept._kept, kept._kept_bytes, kept._kept_lock = None, 0, threading.Lock()
        if self.file_info is not None:
            kept.file_info = [self.file_info[position] for position in positions]
        if self.default_ids is not None:
            kept.default_ids = [self.default_ids[position] for position in positions]
        return kept

    def digest(self, hasher: hashlib._Hash, exact: bool = False) -> None:
        """Feed each file's path (relative to the files' common folder) and size to ``hasher``.

        Reading every file would cost a full pass over a folder of images. Relative paths
        and sizes survive moving or copying the folder, so a label store still recognises
        its pool; ``exact=True`` adds absolute paths and modification times, for caches of
        what was computed from the pixels (a file rewritten in place at the same size).
        """
        hasher.update(f"files {len(self.paths)}\n".encode())
        facts_of_files = self._file_facts()
        resolved = [path for path, _, _ in facts_of_files]
        root = Path(os.path.commonpath(resolved)) if resolved else Path()
        if len(resolved) == 1:
            root = resolved[0].parent
        for path, size, mtime_ns in facts_of_files:
            if size is None:
                facts = f"{path.relative_to(root).as_posix()}|missing"
            else:
                facts = f"{path.relative_to(root).as_posix()}|{size}"
                if exact:
                    facts += f"|{path}|{mtime_ns}"
            hasher.update(facts.encode("utf-8", "surrogateescape"))
            hasher.update(b"\0")

    def _file_facts(self) -> list[tuple[Path, int | None, int | None]]:
        """``(resolved path, size, mtime_ns)`` per file (``None``s if it cannot be stat'ed),
        found once for both digests.

        Each folder is resolved once and a file is resolved on its own only if it is a
        symbolic link or its path has ``..`` (which ``Path.resolve`` applies after following
        links): ``Path.resolve`` on every file took 1 s of a session's start on 5 000 PNGs
        (one ``lstat`` per path component), twice.
        """
        if self._facts is None:
            folders: dict[str, Path] = {}
            facts = []
            for path in self.paths:
                text = os.path.abspath(path)  # drops ".." without following links: see below
                folder, name = os.path.split(text)
                if ".." in Path(path).parts or os.path.islink(text):
                    real = Path(path).resolve()
                else:
                    if folder not in folders:
                        folders[folder] = Path(folder).resolve()
                    real = folders[folder] / name
                try:
                    stat = os.stat(real)
                    facts.append((real, stat.st_size, stat.st_mtime_ns))
                except OSError:
                    facts.append((real, None, None))
            self._facts = facts
        return self._facts


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        return value.detach().cpu().numpy()
    return np.asarray(value)


def first_part(sample):
    """A torch Dataset item may be ``x`` or ``(x, y, ...)``; models see only ``x``."""
    return sample[0] if isinstance(sample, (tuple, list)) else sample


class DatasetItems:
    """A torch ``Dataset`` (duck typed); its tensors are model inputs exactly as made."""

    model_ready = True

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, position: int) -> np.ndarray:
        return _as_numpy(first_part(read_dataset_item(self.dataset, int(position))))

    def digest(self, hasher: hashlib._Hash, samples: int = 256) -> None:
        """Feed the length and up to ``samples`` evenly spaced items to ``hasher``.

        A Dataset may compute items on the fly (decoding, augmenting), so hashing every one
        would cost a full pass; a sample catches a different or reordered dataset.
        """
        n_items = len(self.dataset)
        hasher.update(f"dataset {type(self.dataset).__name__} {n_items}\n".encode())
        for position in np.unique(np.linspace(0, n_items - 1, min(samples, n_items)).astype(int)):
            ArrayItems(np.asarray(self.get(int(position)))).digest(hasher)

    def batch(self, positions: np.ndarray) -> np.ndarray:
        rows = [self.get(position).astype(np.float32, copy=False) for position in positions]
        return stack_dataset_rows(rows, positions)

    def path(self, position: int) -> None:
        return None


def dataset_item_ndim(items) -> int | None:
    """How many axes a torch Dataset's first input has, or ``None`` for other items."""
    if not looks_like_dataset(items) or len(items) == 0:
        return None
    return _as_numpy(first_part(read_dataset_item(items, 0))).ndim
