"""Teaching views: a strategy race, what each strategy would pick, and 2-D toys with the model's
decision boundary and uncertainty drawn under the points.

These are widgets (ipywidgets + plotly); :mod:`alwidget.teaching.race_run` and
:mod:`alwidget.teaching.layout` run headless without them.
"""

from .compare import ComparePicks, StrategyPicks, pick_batches
from .race import Race
from .race_run import RaceRun, area_under_curve
from .toy import ToyView, uncertainty_field

__all__ = [
    "ComparePicks",
    "Race",
    "RaceRun",
    "StrategyPicks",
    "ToyView",
    "area_under_curve",
    "pick_batches",
    "uncertainty_field",
]
