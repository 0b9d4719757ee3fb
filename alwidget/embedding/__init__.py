"""The embedding map: UMAP projection of the pool that stays stable across retrains, and the
plotly figure that shows labels, predictions, scores, the batch and coverage.

umap-learn is imported on the first fit only (see :mod:`alwidget.embedding.umap_loader` for the
numba cache); nothing here imports ipywidgets.
"""

from .alignment import (
    fit_linear_alignment,
    mean_displacement,
    procrustes_align,
    procrustes_disparity,
)
from .figure import (
    COLOR_MODES,
    MapLayers,
    build_map_figure,
    choose_drawn_rows,
    text_hover,
)
from .projection import EXACT_NEIGHBOURS_MAX_ROWS, MIN_ROWS_FOR_UMAP, MapProjector, StagedFeatures

__all__ = [
    "COLOR_MODES",
    "EXACT_NEIGHBOURS_MAX_ROWS",
    "MIN_ROWS_FOR_UMAP",
    "MapLayers",
    "MapProjector",
    "StagedFeatures",
    "build_map_figure",
    "choose_drawn_rows",
    "fit_linear_alignment",
    "mean_displacement",
    "procrustes_align",
    "procrustes_disparity",
    "text_hover",
]
