"""``import_worker_modules``: what the panel's worker threads would import, imported first
on the thread that runs the user's cells.

CPython 3.11 (here 3.11.7) can fail when two threads build Python ASTs at once
(gh-106905, ``SystemError: AST constructor recursion depth mismatch``): IPython parses every
cell with :mod:`ast`, and large imports parse or compile source too (torch's operator
registry, plotly's validators). In the browser benchmark a run-all on 60 000 MNIST images
failed 2 times in 4 in the map cell with plotly's ``Please install anywidget`` (its stand-in
for *any* error while importing ``FigureWidget``) while, at the same moment, the first
batch's k-means imported scikit-learn on a worker thread and the optimizer warm-up imported
``torch._dynamo`` on another.

So every module the panel's worker threads would import lazily is imported in its
constructor, on the thread that runs the user's cells, before its job runner exists. This
costs the widget's cell about 2.5 s once per process on a quiet machine, nearly all of it
``torch._dynamo`` (the cold start's k-means is scipy's since session 8: scikit-learn's
``sklearn.cluster`` cost another 1.4–2 s). Deferring the imports to the kernel's loop after the cell was
tried and dropped: the first batch then arrived after the map had drawn,
and a click on the map's batch right after the cell did not focus the item in the browser
test. The map's worker still imports umap-learn itself (importing it in ``MapView``'s
constructor left the lasso's dimming after a redraw in the browser test; not understood yet).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

__all__ = ["BATCH_MODULES", "TRAINING_MODULES", "import_worker_modules"]

# What fetching a batch imports lazily (thumbnails, the cold start's k-means) ...
BATCH_MODULES = ("PIL.Image", "PIL.PngImagePlugin", "scipy.cluster.vq")
# ... and what training adds: torch's optimizers import torch._dynamo on first use, and the
# first training step and snapshot import these (found by the kernel test recording imports).
TRAINING_MODULES = (
    "torch._dynamo",
    "torch.profiler._cupti_monitor",
    "torch.utils.serialization",
)


def import_worker_modules(modules: Sequence[str] = BATCH_MODULES + TRAINING_MODULES) -> None:
    """Import ``modules`` on this thread (the constructor's: the one running the cell), so
    the worker threads started afterwards find them imported. One that fails is skipped:
    the job that needs it reports the error itself. Already imported modules cost nothing.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the job needing it says why
            continue
