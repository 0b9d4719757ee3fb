"""The labeling widget (ipywidgets 8 + anywidget). Imported lazily by ``alwidget.Widget``."""
