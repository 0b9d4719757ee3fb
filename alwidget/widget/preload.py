"""``BackgroundImports``: what the panel's worker threads import, imported first on the
kernel's own thread.

CPython 3.11 (here 3.11.7) can fail when two threads build Python ASTs at once
(gh-106905, ``SystemError: AST constructor recursion depth mismatch``): IPython parses every
cell with :mod:`ast`, and large imports parse or compile source too (torch's operator
registry, plotly's validators). In the browser benchmark a run-all on 60 000 MNIST images
failed 2 times in 4 in the map cell with plotly's ``Please install anywidget`` (its stand-in
for *any* error while importing ``FigureWidget``) while, at the same moment, the first
batch's k-means imported scikit-learn on a worker thread and the optimizer warm-up imported
``torch._dynamo`` on another.

So the panel's jobs wait until the modules they import are in place, and in a kernel these
are imported on the kernel's thread right after the cell that built the panel (the panel
shows first); outside a kernel they are imported at once. Fetching batches needs only the
light first group, so the first batch is scored while the kernel's thread imports
``torch._dynamo`` (2 s on a quiet machine), which only training needs.
"""

from __future__ import annotations

import importlib
import threading

__all__ = ["BATCH_MODULES", "TRAINING_MODULES", "BackgroundImports", "kernel_loop"]

# What fetching a batch imports lazily (cold-start k-means, thumbnails) ...
BATCH_MODULES = ("PIL.Image", "PIL.PngImagePlugin", "sklearn.cluster", "sklearn.exceptions")
# ... and what training adds: torch's optimizers import torch._dynamo on first use, and the
# first training step and snapshot import these (found by the kernel test recording imports).
TRAINING_MODULES = (
    "torch._dynamo",
    "torch.profiler._cupti_monitor",
    "torch.utils.serialization",
)
# Jobs that only fetch batches; every other job waits for both groups.
BATCH_JOBS = frozenset({"refill", "refine"})


def kernel_loop():
    """The running IPython kernel's main-thread event loop, or None outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    return getattr(kernel, "io_loop", None)


class BackgroundImports:
    """Imports :data:`BATCH_MODULES`, then :data:`TRAINING_MODULES`, once, on the thread
    that may run user code (a module that fails to import is skipped: the job needing it
    reports the error itself)."""

    def __init__(self):
        self._groups = ((BATCH_MODULES, threading.Event()), (TRAINING_MODULES, threading.Event()))
        self._lock = threading.Lock()
        self._owner = threading.get_ident()

    @property
    def done(self) -> bool:
        """Whether every group is imported."""
        return all(event.is_set() for _, event in self._groups)

    def start(self) -> None:
        """After the current cell in a kernel (the panel shows first), one group per
        callback so the kernel's loop can serve messages in between; else now."""
        loop = kernel_loop()
        if loop is None:
            self.ensure()
            return
        for index in range(len(self._groups)):
            loop.add_callback(self.ensure, index + 1)

    def ensure(self, groups: int | None = None) -> None:
        """Import the first ``groups`` groups (all by default) now, on this thread."""
        for modules, event in self._groups[:groups]:
            with self._lock:
                if event.is_set():
                    continue
                for name in modules:
                    try:
                        importlib.import_module(name)
                    except Exception:  # noqa: BLE001, S112 - the job needing it says why
                        continue
                event.set()

    def wait(self, kind: str = "") -> None:
        """Block a worker until what a job of ``kind`` imports is in place.

        On the thread that built the panel (a script, or ``ready()`` in the same cell) the
        kernel's loop cannot run the callbacks, so the imports happen here instead.
        """
        groups = 1 if kind in BATCH_JOBS else len(self._groups)
        if threading.get_ident() == self._owner:
            self.ensure(groups)
            return
        for _, event in self._groups[:groups]:
            event.wait()
