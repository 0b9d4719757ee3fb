"""The map's ``FigureWidget`` imports plotly without ``nbformat``, and plotly's own
``fig.show()`` still finds ``nbformat`` when it needs it.

Each check runs in a fresh interpreter: the test process has imported ``nbformat`` already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run_fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_figure_widget_import_defers_nbformat_until_plotly_needs_it():
    pytest.importorskip("nbformat")
    out = run_fresh(
        """
        import sys
        from alwidget.widget.plotly_widget import FigureWidget
        import plotly.graph_objects as go
        import plotly.io._renderers as renderers
        assert issubclass(FigureWidget, go.FigureWidget)
        print(sorted(name for name in ("nbformat", "jsonschema") if name in sys.modules))
        assert renderers.nbformat, "plotly would say nbformat is not installed"
        import nbformat
        assert renderers.nbformat.__version__ == nbformat.__version__
        print("ok")
        """
    )
    assert out.split() == ["[]", "ok"]


def test_the_stand_in_is_false_for_a_module_that_is_not_installed():
    from alwidget.widget.plotly_widget import _ImportedOnUse

    assert not _ImportedOnUse("alwidget_no_such_module")
    assert _ImportedOnUse("json")
    assert _ImportedOnUse("json").dumps([1]) == "[1]"


def test_an_already_imported_nbformat_is_used_as_is():
    pytest.importorskip("nbformat")
    out = run_fresh(
        """
        import nbformat
        import alwidget.widget.plotly_widget
        import plotly.io._renderers as renderers
        print(renderers.nbformat is nbformat)
        """
    )
    assert out.strip() == "True"
