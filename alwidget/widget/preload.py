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

So every module the panel's worker threads would import lazily is imported on the thread
that runs the user's cells, before any job needs it, in two steps:

- What a batch needs (thumbnails, the cold start's k-means: 0.1 s) in the constructor, before
  its job runner exists.
- What training needs (``torch._dynamo``, which torch's optimizers import on their first
  step: 2.3 s quiet, 4–6 s under load) right *after* the widget's cell, from IPython's
  ``post_run_cell`` event, once the first batch is shown (or after at most
  ``FIRST_BATCH_GRACE_S``): the widget is on the page by then, the import no longer competes
  with the first batch for the GIL, and no retrain can start
  before the kernel takes the next message. :meth:`Widget.retrain` imports them on its caller's
  thread too, which costs nothing once done and covers scripts (no IPython) and a retrain in
  the widget's own cell. A session that already has a trained model starts a label check
  with its first batch: the training lane's jobs wait for these imports
  (:func:`wait_for_training_modules`), and :meth:`Widget.wait` imports them first, as it
  blocks the cell the import would follow. (Until session 9 such a widget imported them in
  its constructor: a resumed session's first batch came 2.3 s later.)

(Until session 8 the constructor imported both groups, and scikit-learn for the k-means:
3.5 s quiet, 6–9 s under load, before the widget showed.)

The map's worker still imports umap-learn itself (importing it in ``MapView``'s
constructor left the lasso's dimming after a redraw in the browser test; not understood yet).
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Sequence

__all__ = [
    "BATCH_MODULES",
    "FIRST_BATCH_GRACE_S",
    "TRAINING_MODULES",
    "import_after_this_cell",
    "import_pending_now",
    "import_pending_on_main_thread",
    "import_worker_modules",
    "wait_for_training_modules",
]

#: The longest the kernel waits after the widget's cell for the first batch before it imports
#: training's modules (a cell after the widget's, e.g. the map's, starts at most this late).
FIRST_BATCH_GRACE_S = 3.0

# Modules import_after_this_cell promised to import and has not yet.
_pending: set[str] = set()
# Set once import_worker_modules has tried all of TRAINING_MODULES (a failed one is the
# job's to report).
_training_modules_tried = threading.Event()

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
    if set(TRAINING_MODULES).issubset(modules):  # every caller passes them all at once
        _training_modules_tried.set()


def wait_for_training_modules(timeout: float = 120.0, give_up=None) -> bool:
    """On a worker thread about to train: wait until training's modules were imported on
    the kernel's thread (:func:`import_after_this_cell` runs once the widget's cell ends).

    A widget on a session with a trained model starts a label check at once; this lets its
    first batch show before the 2-5 s import instead of after it. Returns False if
    ``timeout`` passed first (the job then goes on: better a late import than a hang) or
    ``give_up()`` became true (the widget is closing).
    """
    if all(name in sys.modules for name in TRAINING_MODULES):
        return True
    deadline = time.monotonic() + timeout
    while not _training_modules_tried.wait(min(0.25, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or (give_up is not None and give_up()):
            return False
    return True


def import_pending_on_main_thread() -> None:
    """:func:`import_pending_now` when called on the main thread (code about to block on
    the jobs, which may wait for those imports); nothing on any other thread."""
    if threading.current_thread() is threading.main_thread():
        import_pending_now()


def import_after_this_cell(
    modules: Sequence[str] = TRAINING_MODULES, first: Callable[[], object] | None = None
) -> bool:
    """Import ``modules`` on the kernel's thread once the running IPython cell ends.

    ``first``, if given, is called before the imports (on the kernel's thread): the panel
    passes a bounded wait for its first batch. ``torch._dynamo`` holds the GIL for 2-3 s,
    and when its import overlapped the first batch's work (reading and projecting image
    files, thumbnails) a folder of 5 000 PNGs showed its first cards 2.2 s after the panel.

    Returns
    -------
    bool
        False outside IPython (nothing is scheduled: import them yourself).
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "events"):
        return False

    def after_cell(*_args) -> None:
        shell.events.unregister("post_run_cell", after_cell)
        if first is not None:
            try:
                first()
            except Exception:  # noqa: BLE001, S110 - only a wait: the imports must still run
                pass
        import_pending_now()

    _pending.update(modules)
    shell.events.register("post_run_cell", after_cell)
    return True


def import_pending_now() -> None:
    """Import what :func:`import_after_this_cell` still owes, on this thread, now.

    Something about to start its own worker threads in the same cell (the map's UMAP fit
    imports umap-learn on its thread) calls this first, so the two imports do not overlap.
    """
    modules = sorted(_pending)
    _pending.clear()
    import_worker_modules(modules)
