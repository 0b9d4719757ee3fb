"""``WidthProbe``: reports the pixel width of the box it sits in, so Python can size a plot.

plotly 7's ``FigureWidget`` (an anywidget) draws at plotly's 700 px default when it is
rendered before its container has a width, and does not resize afterwards (plotly.py issue
5208). Beside the labeling panel that overflows the notebook. The probe, an invisible
full-width element next to the figure, watches its own width with a ``ResizeObserver`` and
sends it; :class:`alwidget.widget.map_view.MapView` then sets the figure's width.
"""

from __future__ import annotations

import anywidget
import traitlets

__all__ = ["WidthProbe"]

_ESM = """
function render({ model, el }) {
  el.style.width = "100%";
  el.style.height = "0px";
  const report = () => {
    const width = Math.floor(el.getBoundingClientRect().width);
    if (width > 0 && width !== model.get("width")) {
      model.set("width", width);
      model.save_changes();
    }
  };
  const observer = new ResizeObserver(report);
  observer.observe(el);
  report();
  return () => observer.disconnect();
}
export default { render };
"""


class WidthProbe(anywidget.AnyWidget):
    """An empty, full-width element whose ``width`` trait follows its width in the page
    (0 until a browser has shown it)."""

    _esm = _ESM
    width = traitlets.Int(0).tag(sync=True)
