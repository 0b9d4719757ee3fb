"""The session layer: :class:`Session` and the parts it is made of.

``facade`` (the public :class:`Session`) builds its parts in ``parts``: a label book
(``labels``; ``team_labels`` in team mode), the model state (``model_state``), the store link
(``persistence``), a query path (``queries``; ``team_queue`` in team mode) and the training
rounds (``rounds``). Every ranking goes through ``acquire.acquire``.
"""

from __future__ import annotations

from .acquire import Acquisition, AcquisitionSettings, acquire
from .facade import Session
from .team_labels import consensus_label
from .team_queue import PRIORITIZED, TeamQueueEmptyError

__all__ = [
    "PRIORITIZED",
    "Acquisition",
    "AcquisitionSettings",
    "Session",
    "TeamQueueEmptyError",
    "acquire",
    "consensus_label",
]
