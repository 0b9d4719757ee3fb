"""alwidget: deep active learning in Jupyter.

>>> import alwidget as al
>>> pool = al.datasets.load_digits()
>>> session = al.Session(pool, model="small_cnn", strategy="bald", mc_samples=20, seed=0)
>>> batch = session.query(10)

Importing this package never imports ipywidgets; ``al.Widget`` (and the teaching views
``al.Race``, ``al.ComparePicks``, ``al.ToyView``) load the widget layer on first use.
"""

from __future__ import annotations

from . import datasets, encoders, models, strategies
from .acquisition import Batch, ItemDetail
from .data import Pool
from .errors import AlwidgetError
from .session import Session
from .training import TrainConfig, TrainReport

__version__ = "0.1.0"

__all__ = [
    "Pool",
    "Session",
    "Batch",
    "ItemDetail",
    "TrainConfig",
    "TrainReport",
    "AlwidgetError",
    "datasets",
    "encoders",
    "models",
    "strategies",
    "Widget",
    "Race",
    "ComparePicks",
    "ToyView",
    "__version__",
]


def __getattr__(name: str):
    if name == "Widget":
        from .widget import Widget

        return Widget
    if name in ("Race", "ComparePicks", "ToyView"):
        from . import teaching

        return getattr(teaching, name)
    raise AttributeError(f"module 'alwidget' has no attribute {name!r}")
