"""How well a session's labels cover its pool in the model's embedding space.

Kept beside the session (not in :mod:`alwidget.embedding`) so scripts and checks can read
coverage without plotly or umap: it needs only the session's embeddings and the pure-numpy
covering math in :mod:`alwidget.strategies.kcenter`.
"""

from __future__ import annotations

import numpy as np

from .strategies.kcenter import coverage_report

__all__ = ["COVERAGE_HISTORY_KEYS", "session_coverage"]

# The figures copied into the session's history entry of the model they describe.
COVERAGE_HISTORY_KEYS = (
    "radius",
    "k_center_radius",
    "covered_fraction",
    "unlabeled_covered_fraction",
    "n_labeled",
)


def _labeled_mask_and_version(session) -> tuple[np.ndarray, int]:
    with session._lock:
        mask = np.zeros(len(session.pool), dtype=bool)
        mask[list(session._labels)] = True
        return mask, session.model_version


def session_coverage(
    session, radius: float | None = None, *, n_farthest: int = 10
) -> dict:
    """Coverage report for ``session`` (see :meth:`alwidget.Session.coverage`)."""
    for _attempt in range(3):
        mask, version = _labeled_mask_and_version(session)
        features = session.embeddings()
        # A retrain finishing between the two reads would pair old labels with new features.
        if session.model_version == version:
            break
    report = coverage_report(features, mask, radius, n_farthest=n_farthest)
    report["model_version"] = version
    report["farthest_uncovered_ids"] = [
        session.pool.ids[p] for p in report["farthest_uncovered"].tolist()
    ]
    summary = {key: report[key] for key in COVERAGE_HISTORY_KEYS}
    recorded = None
    with session._lock:
        for entry in reversed(session.history):
            if entry.get("model_version") == version:
                entry["coverage"] = summary
                recorded = entry
                break
    if recorded is not None:
        session._persist_history_entry(recorded)  # so a resumed history has it too
    return report
