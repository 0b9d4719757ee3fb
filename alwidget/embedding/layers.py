"""What the map draws, aligned on the pool: coordinates, labels, predictions, scores, the
batch and the least covered items; and which rows to draw when there are too many."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kinds.text import text_hover  # re-exported: the text kind writes hover labels

__all__ = ["MapLayers", "choose_drawn_rows", "text_hover"]


@dataclass
class MapLayers:
    """Everything drawn on the map, aligned on the N pool items.

    Attributes
    ----------
    coordinates_N_2 : np.ndarray
        Map positions.
    class_names : list of str
        Class names, indexed by the integers below.
    labels_N : np.ndarray of int
        Assigned (or true) class per item, -1 where unlabeled.
    predicted_N : np.ndarray of int, optional
        The model's predicted class per item, -1 where not predicted.
    scores_N : np.ndarray of float, optional
        Acquisition score per item (NaN where not scored).
    batch_rows : np.ndarray of int
        Positions of the current batch.
    uncovered_rows : np.ndarray of int
        Positions to ring as least covered (e.g. ``coverage_report(...)["farthest_uncovered"]``).
    hover_N : list of str, optional
        Hover text per item (already HTML-safe); defaults to ``"item <position>"``.
    score_name : str
        Shown on the colour bar, e.g. the strategy name.
    title : str
        Figure title (e.g. the coverage figures).
    """

    coordinates_N_2: np.ndarray
    class_names: list
    labels_N: np.ndarray
    predicted_N: np.ndarray | None = None
    scores_N: np.ndarray | None = None
    batch_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    uncovered_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hover_N: list | None = None
    score_name: str = "score"
    title: str = ""

    def __post_init__(self):
        self.coordinates_N_2 = np.asarray(self.coordinates_N_2, dtype=np.float32)
        n = self.coordinates_N_2.shape[0]
        if self.coordinates_N_2.ndim != 2 or self.coordinates_N_2.shape[1] != 2:
            raise ValueError(
                f"coordinates_N_2 must have shape (N, 2), got {self.coordinates_N_2.shape}"
            )
        self.labels_N = self._class_indices(self.labels_N, "labels_N", "unlabeled")
        if self.predicted_N is not None:
            self.predicted_N = self._class_indices(self.predicted_N, "predicted_N", "not predicted")
        if self.scores_N is not None:
            self.scores_N = self._per_item(self.scores_N, "scores_N", float)
        self.batch_rows = self._rows(self.batch_rows, "batch_rows", n)
        self.uncovered_rows = self._rows(self.uncovered_rows, "uncovered_rows", n)
        if self.hover_N is not None and len(self.hover_N) != n:
            raise ValueError(f"hover_N has {len(self.hover_N)} entries for {n} items")

    @property
    def n_items(self) -> int:
        return int(self.coordinates_N_2.shape[0])

    def _per_item(self, values, name, kind) -> np.ndarray:
        array = np.asarray(values, dtype=np.int64 if kind is int else np.float64).reshape(-1)
        if array.shape[0] != self.n_items:
            raise ValueError(f"{name} has {array.shape[0]} entries for {self.n_items} items")
        return array

    def _class_indices(self, values, name, missing) -> np.ndarray:
        """Per-item class indices, -1 meaning ``missing``."""
        array = self._per_item(values, name, int)
        n_classes = len(self.class_names)
        if array.size and (array.min() < -1 or array.max() >= n_classes):
            raise ValueError(f"{name} must be -1 ({missing}) or a class index below {n_classes}")
        return array

    @staticmethod
    def _rows(values, name, n) -> np.ndarray:
        array = np.asarray(values, dtype=np.int64).reshape(-1)
        if array.size and (array.min() < 0 or array.max() >= n):
            raise ValueError(f"{name} has positions outside 0..{n - 1}")
        return np.unique(array)


def choose_drawn_rows(layers: MapLayers, max_points: int | None, seed: int = 0) -> np.ndarray:
    """Rows to draw: all when they fit, else every labeled, batch and uncovered row plus a
    seeded random sample of the others up to ``max_points`` (sorted positions)."""
    n = layers.n_items
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 1:
        raise ValueError(f"max_points must be positive or None, got {max_points}")
    must = np.union1d(
        np.flatnonzero(layers.labels_N >= 0),
        np.union1d(layers.batch_rows, layers.uncovered_rows),
    )
    others = np.setdiff1d(np.arange(n), must, assume_unique=True)
    n_others = max(max_points - must.size, 0)
    sample = np.random.default_rng(seed).choice(
        others, size=min(n_others, others.size), replace=False
    )
    return np.union1d(must, sample)
