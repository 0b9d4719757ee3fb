"""The labeling widget (ipywidgets 8 + anywidget). ``alwidget.Widget`` imports it on first use,
so ``import alwidget`` alone never imports ipywidgets."""

from .app import Widget

__all__ = ["MapView", "Widget"]


def __getattr__(name: str):
    # The map needs plotly and UMAP; import them only when someone asks for the map.
    if name == "MapView":
        from .map_view import MapView

        return MapView
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
