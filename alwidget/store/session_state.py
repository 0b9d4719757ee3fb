"""What a session keeps besides labels: learning history, queue and model checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from .database import Database
from .records import check_item_key, utc_now
from .schema import checkpoints, queue_items, rounds
from .serialize import dump_round, dump_state_dicts, load_round, load_state_dicts


@dataclass(eq=False)
class SessionState:
    """History, queue and checkpoint of a :class:`~alwidget.store.LabelStore` (which forwards
    its methods here), kept in the store's ``database``; ``choose_annotator`` names whose queue
    an ``annotator`` argument means (None: the store's default annotator)."""

    database: Database
    choose_annotator: Callable[[str | None], str]

    def record_round(self, data: Mapping[str, object]) -> None:
        """Append one entry of the learning history (any JSON-serialisable dict)."""
        encoded = dump_round(data)
        with self.database.transaction(write=True) as conn:
            conn.execute(insert(rounds).values(recorded_at=utc_now(), data=encoded))

    def update_round(self, model_version: int, data: Mapping[str, object]) -> bool:
        """Replace the latest history entry whose ``model_version`` matches.

        For figures computed after the round was recorded (e.g. coverage of that model).

        Returns
        -------
        bool
            False when no entry has that model version (nothing is written then).
        """
        encoded = dump_round(data)
        with self.database.transaction(write=True) as conn:
            for round_id, text in conn.execute(
                select(rounds.c.id, rounds.c.data).order_by(rounds.c.id.desc())
            ):
                if load_round(text, round_id).get("model_version") == model_version:
                    conn.execute(update(rounds).where(rounds.c.id == round_id).values(data=encoded))
                    return True
        return False

    def rounds(self) -> list[dict[str, object]]:
        """The learning history, oldest first, as recorded."""
        with self.database.transaction(write=False) as conn:
            rows = conn.execute(select(rounds.c.id, rounds.c.data).order_by(rounds.c.id)).all()
        return [load_round(text, round_id) for round_id, text in rows]

    def save_queue(self, item_keys: Sequence[str], *, annotator: str | None = None) -> None:
        """Replace the annotator's queue of items still to label."""
        keys = [check_item_key(key) for key in item_keys]
        who = self.choose_annotator(annotator)
        with self.database.transaction(write=True) as conn:
            conn.execute(delete(queue_items).where(queue_items.c.annotator == who))
            if keys:
                conn.execute(
                    insert(queue_items),
                    [{"annotator": who, "position": i, "item_key": k} for i, k in enumerate(keys)],
                )

    def load_queue(self, *, annotator: str | None = None) -> list[str]:
        """The annotator's queue as last saved (empty if never saved)."""
        who = self.choose_annotator(annotator)
        with self.database.transaction(write=False) as conn:
            query = (
                select(queue_items.c.item_key)
                .where(queue_items.c.annotator == who)
                .order_by(queue_items.c.position)
            )
            return list(conn.execute(query).scalars())

    # ------------------------------------------------------------------------- checkpoints

    def save_checkpoint(
        self, model_version: int, state_dicts: Sequence[Mapping[str, object]], *, keep: int = 1
    ) -> None:
        """Store the model's weights (one state dict per ensemble member).

        Parameters
        ----------
        model_version : int
            Version the weights belong to.
        state_dicts : list of dict
            ``module.state_dict()`` of each member; serialised with ``torch.save``.
        keep : int
            How many of the newest checkpoints to keep; older ones are deleted.
        """
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        payload = dump_state_dicts(state_dicts)
        with self.database.transaction(write=True) as conn:
            conn.execute(
                insert(checkpoints).values(
                    model_version=int(model_version),
                    created_at=utc_now(),
                    n_members=len(state_dicts),
                    payload=payload,
                )
            )
            kept = select(checkpoints.c.id).order_by(checkpoints.c.id.desc()).limit(keep)
            kept_ids = list(conn.execute(kept).scalars())
            conn.execute(delete(checkpoints).where(checkpoints.c.id.not_in(kept_ids)))

    def load_checkpoint(self) -> tuple[int, list[dict[str, object]]] | None:
        """The newest checkpoint as ``(model_version, state_dicts)``, or None if there is none.

        Loaded with ``torch.load(weights_only=True)`` onto the CPU.
        """
        with self.database.transaction(write=False) as conn:
            row = conn.execute(
                select(checkpoints.c.model_version, checkpoints.c.payload)
                .order_by(checkpoints.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return row.model_version, load_state_dicts(bytes(row.payload))
