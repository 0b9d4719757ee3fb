"""The labeling widget (ipywidgets 8 + anywidget). ``alwidget.Widget`` imports it on first use,
so ``import alwidget`` alone never imports ipywidgets."""

from .app import Widget

__all__ = ["Widget"]
