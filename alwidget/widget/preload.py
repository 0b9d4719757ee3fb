"""``BackgroundImports``: what the panel's worker threads would import, imported first on
the thread that runs the user's cells.

CPython 3.11 (here 3.11.7) can fail when two threads build Python ASTs at once
(gh-106905, ``SystemError: AST constructor recursion depth mismatch``): IPython parses every
cell with :mod:`ast`, and large imports parse or compile source too (torch's operator
registry, plotly's validators). In the browser benchmark a run-all on 60 000 MNIST images
failed 2 times in 4 in the map cell with plotly's ``Please install anywidget`` (its stand-in
for *any* error while importing ``FigureWidget``) while, at the same moment, the first
batch's k-means imported scikit-learn on a worker thread and the optimizer warm-up imported
``torch._dynamo`` on another.

So every module the panel's worker threads would import lazily is imported in its
constructor, on the thread that runs the user's cells, before any job starts (the jobs also
wait for it). This costs the widget's cell about 3.5 s once per process on a quiet machine
(scikit-learn 1.4 s, ``torch._dynamo`` 2.2 s). Deferring the imports to the kernel's loop
after the cell was tried and dropped: the first batch then arrived after the map had drawn,
and a click on the map's batch right after the cell did not focus the item in the browser
test. The map's worker still imports umap-learn itself (importing it in ``MapView``'s
constructor left the lasso's dimming after a redraw in the browser test; not understood yet).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence

__all__ = ["BATCH_MODULES", "TRAINING_MODULES", "BackgroundImports"]

# What fetching a batch imports lazily (cold-start k-means, thumbnails) ...
BATCH_MODULES = ("PIL.Image", "PIL.PngImagePlugin", "sklearn.cluster", "sklearn.exceptions")
# ... and what training adds: torch's optimizers import torch._dynamo on first use, and the
# first training step and snapshot import these (found by the kernel test recording imports).
TRAINING_MODULES = (
    "torch._dynamo",
    "torch.profiler._cupti_monitor",
    "torch.utils.serialization",
)


class BackgroundImports:
    """Imports the modules worker threads would import lazily, once, on the user's thread.

    Parameters
    ----------
    modules : sequence
        Module names or callables that import (e.g.
        :func:`alwidget.embedding.umap_loader.import_umap`). One that fails is skipped: the
        job that needs it reports the error itself. By default the panel's,
        :data:`BATCH_MODULES` and :data:`TRAINING_MODULES`.
    """

    def __init__(
        self, modules: Sequence[str | Callable[[], object]] = BATCH_MODULES + TRAINING_MODULES
    ):
        self.modules = tuple(modules)
        self.done = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Import them now, on this thread (the constructor's: the one running the cell)."""
        with self._lock:
            if self.done.is_set():
                return
            try:
                for entry in self.modules:
                    try:
                        entry() if callable(entry) else importlib.import_module(entry)
                    except Exception:  # noqa: BLE001, S112 - the job needing it says why
                        continue
            finally:
                # Even when interrupted: a worker waiting here must never wait forever.
                self.done.set()

    def wait(self, _kind: str = "") -> None:
        """Block a worker until :meth:`start` has finished (``JobRunner``'s
        ``before_each_job``; a no-op once the constructor has returned)."""
        self.done.wait()
