"""What a query returns: the ranked batch, with the reasons for each pick."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .strategies import Selection, explain

__all__ = ["ItemDetail", "Batch", "build_batch"]


@dataclass(frozen=True)
class ItemDetail:
    """One queried item and why it was picked.

    Attributes
    ----------
    id : object
        The item's stable pool id.
    rank : int
        1-based position in the batch.
    score : float
        The strategy's score (for greedy batch selectors: the gain when it was added).
    pool_rank : int
        1-based rank of the item's score among all scored candidates (1 = highest).
    n_scored : int
        How many candidates were scored.
    predicted : str
        Class the model predicts (mean over MC samples / members).
    probabilities : dict
        Class name → mean predicted probability.
    entropy_of_mean, mean_entropy, bald : float
        Parts of the BALD score: ``bald = entropy_of_mean - mean_entropy`` (nats).
    votes : dict
        Class name → how many of the K samples predicted it (only classes with votes).
    prioritized : bool
        True when the user pushed the item to the front of the queue.
    """

    id: object
    rank: int
    score: float
    pool_rank: int
    n_scored: int
    predicted: str
    probabilities: dict
    entropy_of_mean: float
    mean_entropy: float
    bald: float
    votes: dict
    prioritized: bool = False

    def to_dict(self) -> dict:
        """Plain-Python form (JSON-ready)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Batch:
    """A ranked batch from :meth:`alwidget.Session.query`.

    Attributes
    ----------
    ids : list
        Item ids, most informative first.
    scores : np.ndarray
        Their scores, aligned with ``ids``.
    items : list of ItemDetail
        Per-item explanations, aligned with ``ids``.
    strategy : str
        The strategy that chose them.
    model_version : int
        Which trained model scored them (0 = untrained).
    """

    ids: list
    scores: np.ndarray
    items: list = field(repr=False)
    strategy: str
    model_version: int

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, index) -> ItemDetail:
        return self.items[index]


def build_batch(
    candidate_ids: list,
    log_probs_N_K_C: np.ndarray,
    scores_N: np.ndarray,
    selection: Selection,
    classes: list[str],
    strategy: str,
    model_version: int,
    prioritized_ids: list = (),
) -> Batch:
    """Assemble a :class:`Batch`: prioritized ids first, then the selection, explained."""
    chosen = [int(index) for index in selection.indices]
    gain_of_row = dict(zip(chosen, (float(score) for score in selection.scores)))
    row_of_id = {item_id: row for row, item_id in enumerate(candidate_ids)}
    front = [row_of_id[item_id] for item_id in prioritized_ids if item_id in row_of_id]
    # Prioritized items jump the queue; the batch keeps the size the selector was asked for.
    rows = (front + [row for row in chosen if row not in set(front)])[: len(chosen)]
    parts = explain(log_probs_N_K_C[rows]) if rows else None
    sorted_scores = np.sort(np.asarray(scores_N, dtype=np.float64))[::-1]
    items = []
    for rank, row in enumerate(rows):
        own_score = float(scores_N[row])
        pool_rank = int(np.searchsorted(-sorted_scores, -own_score, side="left")) + 1
        probs = parts["probs_N_C"][rank]
        votes = parts["votes_N_C"][rank]
        items.append(
            ItemDetail(
                id=candidate_ids[row],
                rank=rank + 1,
                score=gain_of_row.get(row, own_score),
                pool_rank=pool_rank,
                n_scored=len(candidate_ids),
                predicted=classes[int(parts["predicted_N"][rank])],
                probabilities={name: float(p) for name, p in zip(classes, probs)},
                entropy_of_mean=float(parts["entropy_of_mean_N"][rank]),
                mean_entropy=float(parts["mean_entropy_N"][rank]),
                bald=float(parts["bald_N"][rank]),
                votes={name: int(count) for name, count in zip(classes, votes) if count},
                prioritized=row in front,
            )
        )
    return Batch(
        ids=[item.id for item in items],
        scores=np.array([item.score for item in items]),
        items=items,
        strategy=strategy,
        model_version=model_version,
    )
