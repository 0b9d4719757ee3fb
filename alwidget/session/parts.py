"""Building a session's parts, each handed what it needs, in the one order that works.

The store opens before the label book (the book writes through it) and after the model
(classes added to the store widen the model's output before stored weights load).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError, NotEnoughClassesError, UnsupportedModelError
from ..models import ModelFactory
from .acquire import AcquisitionSettings
from .checks import check_class_name, check_device, check_model, check_strategy, mc_samples_for
from .cold_start import ColdStart
from .input_features import InputFeatures
from .labels import LabelBook, SoloLabelBook
from .model_state import ModelState
from .persistence import open_link, restore_session
from .queries import SoloQuery
from .rounds import TrainingRounds
from .team_labels import TeamLabelBook, TeamSettings
from .team_queue import TeamQueue
from .team_view import TeamView

__all__ = ["ClassList", "SessionParts", "assemble", "switch_strategy"]


class ClassList:
    """The session's class names, grown together with the model's output."""

    def __init__(self, names: list[str], model: ModelState) -> None:
        self.names = names
        self.model = model

    def check_can_grow(self, names: list[str]) -> None:
        if names and not self.model.factory.can_change_classes:
            raise UnsupportedModelError(
                f"classes {names} cannot be added: the model {self.model.factory.name} has a "
                "fixed number of outputs; pass a factory taking num_classes= (or a built-in "
                "model name)"
            )

    def add(self, name: str, book: LabelBook, store) -> int:
        """Add one class (see :meth:`alwidget.Session.add_class`); returns its index."""
        name = check_class_name(name, self.names)
        self.check_can_grow([name])
        with book.lock:
            if isinstance(book, TeamLabelBook):
                book.sync_classes()  # classes teammates added come first, in the store's order
                if name in self.names:
                    return self.names.index(name)
            self.grow([name])
            store.set_classes(self.names)
        return len(self.names) - 1

    def grow(self, names: list[str]) -> None:
        self.check_can_grow(names)
        self.names.extend(names)
        self.model.grow_classes(len(names))


@dataclass
class SessionParts:
    """Everything a :class:`alwidget.Session` is made of."""

    classes: ClassList
    model: ModelState
    settings: AcquisitionSettings
    link: object
    book: LabelBook
    querier: SoloQuery | TeamQueue
    rounds: TrainingRounds
    team_view: TeamView
    history: list


def switch_strategy(model: ModelState, settings: AcquisitionSettings, name: str,
                    mc_samples: int | None) -> None:  # fmt: skip
    """Point ``settings`` at strategy ``name`` after checking the model can serve it."""
    spec = check_strategy(name)
    samples = mc_samples_for(
        spec, name, mc_samples, dropout=model.has_dropout, ensemble=model.ensemble,
        model_name=model.factory.name,
    )  # fmt: skip
    settings.strategy, settings.spec, settings.mc_samples = name, spec, samples
    model.forget_predictions()


def assemble(pool, model, *, reset_weights: bool = False, cold_start: bool = True, strategy, mc_samples, ensemble, seed, device, score_subset,
             chunk_size, annotator: str, store, team: TeamSettings | None) -> SessionParts:  # fmt: skip
    """Build and connect the parts; the store is closed again if anything fails."""
    names = list(pool.classes)
    if len(names) < 2:
        raise NotEnoughClassesError(
            f"a classifier needs at least two classes; the pool has {names}: give "
            "classes=[...] with at least two names"
        )
    if model is None:
        model = pool.item_kind.default_model(pool.input_shape)
    # One cached feature space for cold start and for the untrained model's map.
    input_features = InputFeatures(pool, seed)
    state = ModelState(
        ModelFactory(model, pool.input_shape, len(names), reset_weights=reset_weights), pool, ensemble=ensemble, seed=seed,
        device=check_device(device), chunk_size=chunk_size, input_features=input_features,
    )  # fmt: skip
    check_model(state.members[0], pool.inputs(np.array([0])), len(names), state.factory.name)
    settings = AcquisitionSettings(
        strategy, check_strategy(strategy), 1, score_subset, np.random.default_rng(seed)
    )
    switch_strategy(state, settings, strategy, mc_samples)
    classes = ClassList(names, state)
    link = open_link(store, pool, names, annotator)
    try:
        classes.grow([name for name in link.classes if name not in names])
        if team is None:
            book = SoloLabelBook(pool, names, link, annotator)
            querier = SoloQuery(
                pool, book, state, settings, names, ColdStart(input_features, enabled=cold_start)
            )
        else:
            if not link.is_shared:
                raise InvalidArgumentError(
                    "team mode needs a store the other annotators can open: a PostgreSQL URL, "
                    "or a SQLite file for annotators on one machine; this session's store is "
                    "in memory (store=False, ':memory:' or $ALWIDGET_STORE)"
                )
            link.queue_batches = False  # leases keep the batch; the queue keeps priorities
            book = TeamLabelBook(pool, names, link, annotator, team, classes.grow)
            querier = TeamQueue(pool, book, state, settings, names)
        history: list[dict] = []
        restore_session(link, book, state, history)
        if team is None and cold_start and state.version == 0:
            input_features.fit_in_background()  # the first batch's features, while the notebook goes on
    except BaseException:
        link.close()
        raise
    return SessionParts(
        classes, state, settings, link, book, querier,
        TrainingRounds(book, state, link, history, names),
        TeamView(book, querier, link), history,
    )  # fmt: skip
