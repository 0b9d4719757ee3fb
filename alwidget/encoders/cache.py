"""The feature cache: an encoder's output for every pool item, computed once, kept on disk.

A cache lives in ``<cache_dir>/features-<key>/`` where the key hashes the pool's content
and the encoder's weights, so any change to either gives a new cache and an unchanged pair
finds the old one. Features sit in a raw float32 file opened as a memory map, so a pool
larger than RAM works; ``meta.json`` records the shape, the chunks written so far and a
CRC of each, so an interrupted pass resumes at the first missing chunk and a damaged file
is rebuilt rather than used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import AlwidgetError
from .weights import module_digest

__all__ = [
    "EncoderError",
    "FeatureCache",
    "ItemFunction",
    "default_cache_dir",
    "encode_pool",
    "encoder_key",
]

_FORMAT = 1
_META = "meta.json"
_DATA = "features.f32"
_SAVE_EVERY_S = 1.0  # how often the progress record is rewritten during a pass


class EncoderError(AlwidgetError, ValueError):
    """An encoder that fails on the pool or returns something other than feature rows."""


def default_cache_dir() -> Path:
    """``$ALWIDGET_CACHE`` when set, else ``~/.cache/alwidget``."""
    root = os.environ.get("ALWIDGET_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "alwidget"


@dataclass(frozen=True)
class ItemFunction:
    """An encoder that reads raw items (e.g. a sentence encoder over strings).

    Parameters
    ----------
    function : callable
        Maps a list of raw items (as :meth:`Pool.item` gives them) to an ``(n, D)`` array.
    key : str
        Names the function's version in the cache key: change it when the function changes
        (its code cannot be hashed the way a module's weights are).
    """

    function: Callable[[list], np.ndarray]
    key: str


def encoder_key(encoder) -> str:
    """What identifies an encoder in a cache key: its weights, or an item function's key."""
    if isinstance(encoder, nn.Module):
        return "module:" + module_digest(encoder)
    if isinstance(encoder, ItemFunction):
        return f"items:{encoder.key}"
    raise EncoderError(
        f"encoder: expected an nn.Module mapping model inputs to features, or "
        f"alwidget.encoders.ItemFunction(function, key=...) for raw items; got "
        f"{type(encoder).__name__}"
    )


def _terminal_progress(total: int, description: str):
    """tqdm when it is installed (a widget in a notebook, a bar in a terminal), else None."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=description, unit="item", file=sys.stderr, leave=False)


class FeatureCache:
    """Features of one pool under one encoder, read through a memory map.

    Build one with :func:`encode_pool`. ``features`` is an ``(N, D)`` float32 memory map;
    ``mean`` (per feature) and ``scale`` (one number, the features' RMS spread) standardise it.
    """

    def __init__(self, directory: Path, meta: dict):
        self.directory = directory
        self.meta = meta
        self.features = np.memmap(
            directory / _DATA, dtype=np.float32, mode="r", shape=(meta["n"], meta["d"])
        )
        self.mean = np.asarray(meta["mean"], dtype=np.float32)
        self.scale = np.asarray(meta["scale"], dtype=np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.meta["n"]), int(self.meta["d"])

    @property
    def seconds(self) -> float:
        """Wall time the encoder pass took (summed over resumed parts)."""
        return float(self.meta.get("seconds", 0.0))

    def standardised(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions``, centred and scaled, as a new float32 array."""
        rows = np.asarray(self.features[np.asarray(positions, dtype=np.int64)])
        return (rows - self.mean) / self.scale


def _read_meta(directory: Path) -> dict | None:
    try:
        meta = json.loads((directory / _META).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"broken": "meta.json is unreadable"}
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        return {"broken": "meta.json has another format"}
    return meta


def atomic_torch_save(path: Path, payload: dict) -> None:
    """``torch.save(payload, path)`` through a temporary file renamed into place, so a crash
    mid-write never leaves half a file under ``path`` (the next session would trust it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_meta(directory: Path, meta: dict) -> None:
    temporary = directory / (_META + ".tmp")
    temporary.write_text(json.dumps(meta))
    os.replace(temporary, directory / _META)


def _damage(directory: Path, meta: dict) -> str | None:
    """Why the written chunks cannot be trusted, or None when every CRC matches."""
    if "broken" in meta:
        return meta["broken"]
    try:
        n, d, chunk = int(meta["n"]), int(meta["d"]), int(meta["chunk"])
        crcs = list(meta["crc"])
    except (KeyError, TypeError, ValueError):
        return "meta.json lacks fields"
    data = directory / _DATA
    if not data.exists() or data.stat().st_size != n * d * 4:
        return f"{_DATA} has the wrong size"
    features = np.memmap(data, dtype=np.float32, mode="r", shape=(n, d))
    for index, crc in enumerate(crcs):
        block = np.ascontiguousarray(features[index * chunk : (index + 1) * chunk])
        if zlib.crc32(memoryview(block.reshape(-1).view(np.uint8))) != crc:
            return f"chunk {index} does not match its checksum"
    return None


def _encode_chunk(pool, encoder, positions: np.ndarray, device) -> np.ndarray:
    first, last = int(positions[0]), int(positions[-1])
    try:
        if isinstance(encoder, ItemFunction):
            out = encoder.function([pool.item(pool.ids[p]) for p in positions])
        else:
            with torch.inference_mode():
                out = encoder(pool.inputs(positions).to(device))
    except AlwidgetError:
        raise
    except Exception as error:
        raise EncoderError(
            f"encoder failed on items at positions {first}..{last} (ids {pool.ids[first]!r}.."
            f"{pool.ids[last]!r}): {type(error).__name__}: {error}; check that the encoder "
            f"accepts inputs of shape (batch, {', '.join(map(str, pool.input_shape))})"
        ) from error
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    out = np.asarray(out)
    if out.ndim > 2:
        out = out.reshape(len(out), -1)  # e.g. (N, D, 1, 1) after global pooling
    if out.ndim != 2 or out.shape[0] != len(positions) or not np.issubdtype(out.dtype, np.number):
        raise EncoderError(
            f"encoder must return one feature row per item, shape ({len(positions)}, D); "
            f"it returned {out.dtype} of shape {out.shape} for positions {first}..{last}"
        )
    out = out.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise EncoderError(f"encoder returned NaN/inf features for positions {first}..{last}")
    return out


def encode_pool(
    pool,
    encoder,
    *,
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
    progress: Callable[[dict], None] | bool | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FeatureCache:
    """Run ``encoder`` over every item of ``pool`` once, or find the features already cached.

    Parameters
    ----------
    pool : Pool
        The items; the encoder sees ``pool.inputs(positions)`` (an ``nn.Module``) or the raw
        items (an :class:`ItemFunction`).
    encoder : nn.Module or ItemFunction
        Maps a batch to ``(batch, D)`` features (more axes are flattened). Put in eval mode
        for the pass; its weights are not changed.
    cache_dir : path-like, optional
        Where caches live (:func:`default_cache_dir` by default).
    chunk_size : int
        Items per encoder call; a chunk is also the unit of resumption. Small chunks keep a
        convolutional encoder's activations in cache (on MNIST 256 encoded 1.7x faster than
        1 024).
    device : str or torch.device, optional
        Where the encoder runs (CPU by default).
    progress : callable, bool or None
        A callable receiving ``{"done", "total", "seconds"}`` after each chunk; ``None`` or
        ``True`` shows a tqdm bar (a widget in a notebook); ``False`` shows nothing.
    should_stop : callable, optional
        Checked between chunks; returning True stops the pass (what is written is kept,
        so the next call resumes).

    Returns
    -------
    FeatureCache

    Raises
    ------
    EncoderError
        When the encoder fails on a chunk or returns something that is not feature rows.
    """
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise EncoderError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    device = torch.device("cpu" if device is None else device)
    key = hashlib.sha256(
        f"{_FORMAT}\n{pool.exact_digest}\n{encoder_key(encoder)}\n".encode()
    ).hexdigest()
    directory = Path(cache_dir if cache_dir is not None else default_cache_dir()) / (
        f"features-{key[:24]}"
    )
    meta = _read_meta(directory)
    if meta is not None:
        damage = _damage(directory, meta)
        if damage is not None:
            warnings.warn(
                f"the feature cache {directory} is damaged ({damage}); it is rebuilt",
                stacklevel=2,
            )
            shutil.rmtree(directory, ignore_errors=True)
            meta = None
        elif meta.get("complete"):
            return FeatureCache(directory, meta)
        else:
            chunk_size = int(meta["chunk"])  # resume in the chunks the file was begun with
    n_items = len(pool)
    was_training = isinstance(encoder, nn.Module) and encoder.training
    if isinstance(encoder, nn.Module):
        encoder.to(device).eval()
    bar = _terminal_progress(n_items, "encoding pool") if progress in (None, True) else None
    started = time.perf_counter()
    features = None
    try:
        if meta is None:
            first = _encode_chunk(pool, encoder, np.arange(min(chunk_size, n_items)), device)
            directory.mkdir(parents=True, exist_ok=True)
            features = np.memmap(
                directory / _DATA, dtype=np.float32, mode="w+", shape=(n_items, first.shape[1])
            )
            meta = {
                "format": _FORMAT, "n": n_items, "d": int(first.shape[1]), "chunk": chunk_size,
                "crc": [], "complete": False, "seconds": 0.0, "pool": pool.exact_digest,
                "encoder": encoder_key(encoder)[:80],
            }  # fmt: skip
            pending = first
        else:
            features = np.memmap(
                directory / _DATA, dtype=np.float32, mode="r+", shape=(meta["n"], meta["d"])
            )
            pending = None
        n_chunks = -(-n_items // chunk_size)
        last_saved = time.perf_counter()
        done_before = min(len(meta["crc"]) * chunk_size, n_items)
        if bar is not None:
            bar.update(done_before)
        for index in range(len(meta["crc"]), n_chunks):
            if should_stop is not None and should_stop():
                break
            positions = np.arange(index * chunk_size, min((index + 1) * chunk_size, n_items))
            block = pending if pending is not None else _encode_chunk(
                pool, encoder, positions, device
            )  # fmt: skip
            pending = None
            if block.shape[1] != meta["d"]:
                raise EncoderError(
                    f"encoder returned {block.shape[1]} features for positions "
                    f"{positions[0]}..{positions[-1]} but {meta['d']} before"
                )
            features[positions[0] : positions[-1] + 1] = block
            meta["crc"].append(zlib.crc32(memoryview(block.reshape(-1).view(np.uint8))))
            meta["seconds"] = meta.get("seconds", 0.0) + (time.perf_counter() - started)
            started = time.perf_counter()
            if started - last_saved > _SAVE_EVERY_S:  # an interruption loses at most this
                _save_progress(directory, features, meta)
                last_saved = started
            done = int(positions[-1]) + 1
            if bar is not None:
                bar.update(len(positions))
            elif callable(progress):
                progress({"done": done, "total": n_items, "seconds": meta["seconds"]})
        _save_progress(directory, features, meta)
        if len(meta["crc"]) < n_chunks:
            raise EncoderError(
                f"the encoder pass was stopped after {len(meta['crc']) * chunk_size} of "
                f"{n_items} items; call again to resume from there"
            )
        _finish(features, meta)
        _write_meta(directory, meta)
    except BaseException:
        if features is not None and meta is not None and not meta.get("complete"):
            _save_progress(directory, features, meta)  # Ctrl-C: keep what was encoded
        raise
    finally:
        if bar is not None:
            bar.close()
        if was_training:
            encoder.train()
    return FeatureCache(directory, meta)


def _save_progress(directory: Path, features: np.memmap, meta: dict) -> None:
    """Flush the rows written so far, then record them (never the other way round)."""
    features.flush()
    _write_meta(directory, meta)


def _finish(features: np.ndarray, meta: dict) -> None:
    """Per-feature mean and scale, accumulated in chunks so memory stays flat."""
    n, d = features.shape
    total = np.zeros(d, dtype=np.float64)
    squares = np.zeros(d, dtype=np.float64)
    for start in range(0, n, 65536):
        block = np.asarray(features[start : start + 65536], dtype=np.float64)
        total += block.sum(axis=0)
        squares += (block * block).sum(axis=0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    # One scale for every feature: per-feature scaling would blow up near-constant directions
    # (noise) to the size of the informative ones and distort the distances that core-set,
    # coverage and the map measure.
    overall = float(np.sqrt(np.mean(std * std)))
    meta["mean"] = mean.astype(np.float32).tolist()
    meta["scale"] = overall if overall > 1e-8 else 1.0
    meta["complete"] = True
