"""The persistence half of :class:`alwidget.Session`: its label store.

Every session writes through to a store (:mod:`alwidget.store`): each label is committed
before :meth:`label` returns, an undo is recorded as an event, and the history, queue and
model weights are saved as they change, so ``Session(pool, ..., store=same)`` resumes.
The database code is imported only when a session is created, so importing the session
layer still needs no database.

Relies on the session's ``pool``, ``classes``, ``annotator``, ``ensemble``, ``_lock``,
``_labels``, ``_label_meta``, ``_priority``, ``_members``, ``_factory``,
``_member_seed``, ``model_version``, ``history`` and ``_labels_at_last_training``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

__all__ = ["PersistenceMixin"]


class PersistenceMixin:
    """Store-backed persistence shared by every session."""

    _persistence = None  # alwidget.store.session_link.SessionStore once attached

    # ---------------------------------------------------------------------- public
    @property
    def store(self):
        """The session's :class:`alwidget.store.LabelStore`."""
        return self._persistence.store

    def export(self, path: str | Path, *, history: bool = False) -> Path:
        """Write the labels with their metadata to ``.csv``, ``.json`` or ``.jsonl``.

        Parameters
        ----------
        path : str or Path
            The suffix chooses the format.
        history : bool
            Also export undone labels and the undo events.

        Returns
        -------
        Path
            The file written (read it back with :func:`alwidget.store.read_export`).
        """
        return self._persistence.export(path, history=history)

    def to_dataframe(self, *, history: bool = False):
        """The labels with annotator, time, model version, strategy and score (pandas)."""
        return self._persistence.to_dataframe(history=history)

    def close(self) -> None:
        """Close the label store (the session can still be used for reading)."""
        if self._persistence is not None:
            self._persistence.close()

    # ------------------------------------------------------------------ attaching
    def _attach_store(self, store) -> None:
        """Open the store and take over everything it already holds."""
        from .store.session_link import SessionStore

        link = SessionStore(store, self.pool, self.classes, self.annotator)
        try:
            added = [name for name in link.classes if name not in self.classes]
            if added and not self._factory.can_change_classes:
                raise ValueError(
                    f"the store has classes {added} added after the pool's, but the model "
                    f"{self._factory.name} cannot grow its output; pass a factory taking num_classes="
                )
            self._grow_classes(added)
            self._restore(link.restored_state())
        except BaseException:
            link.close()
            raise
        self._persistence = link

    def _restore(self, state) -> None:
        with self._lock:
            for item_id, class_name, meta in state.labels:
                position = self.pool.position(item_id)
                self._labels[position] = self.classes.index(class_name)
                self._label_meta[position] = dict(meta)
            self.history = [dict(entry) for entry in state.history]
            self._priority = list(state.queue)
            if state.checkpoint is not None:
                self._restore_model(*state.checkpoint)

    def _restore_model(self, version: int, state_dicts: list[dict]) -> None:
        try:
            if len(state_dicts) != self.ensemble:
                raise ValueError(
                    f"it has {len(state_dicts)} ensemble members, the session {self.ensemble}"
                )
            members = []
            for index, state in enumerate(state_dicts):
                member = self._factory.build(self._member_seed(index))
                member.load_state_dict(state)
                members.append(member)
        except (RuntimeError, ValueError, KeyError) as error:
            warnings.warn(
                f"the stored model (version {version}) does not fit this session's model, so "
                f"training starts afresh; the labels were restored ({error})",
                stacklevel=4,
            )
            return
        self._members = members
        self.model_version = int(version)
        trained_on = [e["n_labels"] for e in self.history if e.get("model_version") == version]
        self._labels_at_last_training = int(trained_on[-1]) if trained_on else len(self._labels)

    # ---------------------------------------------------------------- write-through
    def _persist_labels(self, resolved: list[tuple[int, int]], annotator: str) -> list:
        """Commit validated (position, class index) pairs before memory shows them.

        Returns the stored :class:`alwidget.store.LabelRecord` list (empty without a store).
        Raises :class:`alwidget.store.StoreUnavailableError` when the store cannot be
        written; nothing is then labeled.
        """
        if self._persistence is None:
            return []
        return self._persistence.record_labels(
            [(self.pool.ids[position], self.classes[index]) for position, index in resolved],
            annotator=annotator,
            model_version=self.model_version,
            strategy=self.strategy,
        )

    def _persist_undo(self, position: int) -> None:
        if self._persistence is None:
            return
        meta = self._label_meta.get(position) or {}
        self._persistence.record_undo(
            self.pool.ids[position], annotator=meta.get("annotator", self.annotator)
        )

    def _persist_classes(self) -> None:
        if self._persistence is not None:
            self._persistence.store.set_classes(self.classes)

    def _persist_queue(self) -> None:
        if self._persistence is not None:
            self._persistence.save_queue(self._priority)

    def _persist_batch(self, batch) -> None:
        if self._persistence is not None:
            with self._lock:
                priority = list(self._priority)
            self._persistence.remember_batch(batch, priority)

    def _persist_round(self, entry: dict, members: list) -> None:
        """Save a finished training run: its history entry and the new weights."""
        if self._persistence is not None:
            if self._team is not None:  # a team shares one history: say whose round it was
                entry.setdefault("annotator", self.annotator)
            self._persistence.record_round(entry)
            self._persistence.save_model(entry["model_version"], members)

    def _persist_history_entry(self, entry: dict) -> None:
        """Save a history entry that changed after its round was recorded."""
        if self._persistence is not None:
            self._persistence.update_round(entry)
