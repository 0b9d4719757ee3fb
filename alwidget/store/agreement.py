"""Inter-annotator agreement: percent agreement, Cohen's kappa and Fleiss' kappa.

Pure functions over ``{item_key: {annotator: label}}`` so they can be checked against
textbook values without a database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations

Ratings = Mapping[str, Mapping[str, str]]


def pairwise_agreement(labels: list[str]) -> float | None:
    """Fraction of annotator pairs on one item that gave the same label (None below 2)."""
    if len(labels) < 2:
        return None
    pairs = list(combinations(labels, 2))
    return sum(a == b for a, b in pairs) / len(pairs)


def cohen_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two annotators over the items both labeled.

    None when undefined: no shared items, or both always gave one and the same label
    (chance agreement 1).
    """
    if len(first) != len(second):
        raise ValueError("both annotators must rate the same items")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_first, count_second = Counter(first), Counter(second)
    expected = sum(count_first[c] * count_second[c] for c in count_first) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(rows: list[Mapping[str, int]]) -> float | None:
    """Fleiss' kappa from per-item category counts, every item rated by the same number.

    Parameters
    ----------
    rows : list of dict
        For each item, category -> number of annotators who chose it.

    Returns
    -------
    float or None
        None when there are no items, fewer than 2 raters, or chance agreement is 1.
    """
    if not rows:
        return None
    raters = sum(rows[0].values())
    if raters < 2 or any(sum(row.values()) != raters for row in rows):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of raters on every item")
    n_items = len(rows)
    per_item = [
        (sum(count * count for count in row.values()) - raters) / (raters * (raters - 1))
        for row in rows
    ]
    observed = sum(per_item) / n_items
    totals: Counter[str] = Counter()
    for row in rows:
        totals.update(row)
    expected = sum((total / (n_items * raters)) ** 2 for total in totals.values())
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


@dataclass
class AgreementReport:
    """Agreement figures of a multiply-labeled pool.

    Attributes
    ----------
    per_item : dict
        item_key -> ``{"n_annotators", "percent_agreement", "majority_label"}`` for items
        with at least two annotators (``majority_label`` is None on a tie).
    per_annotator : dict
        annotator -> ``{"n_labels", "n_shared_items", "percent_agreement"}``, the last being
        the fraction of comparisons with other annotators on shared items that agreed.
    pairwise : dict
        ``(annotator_a, annotator_b)`` -> ``{"n_items", "percent_agreement",
        "cohen_kappa"}`` over the items both labeled.
    overall : dict
        ``{"n_items", "percent_agreement", "fleiss_kappa", "fleiss_raters",
        "fleiss_n_items"}``; Fleiss' kappa uses the items with the most common number of
        annotators.
    """

    per_item: dict[str, dict[str, object]] = field(default_factory=dict)
    per_annotator: dict[str, dict[str, object]] = field(default_factory=dict)
    pairwise: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    overall: dict[str, object] = field(default_factory=dict)


def majority_label(labels: list[str]) -> str | None:
    """The most frequent label, or None when the top count is shared."""
    ranked = Counter(labels).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def agreement_report(ratings: Ratings) -> AgreementReport:
    """Compute every agreement figure for ``{item_key: {annotator: label}}``."""
    report = AgreementReport()
    multi = {key: dict(by) for key, by in ratings.items() if len(by) >= 2}
    for key, by_annotator in multi.items():
        labels = list(by_annotator.values())
        report.per_item[key] = {
            "n_annotators": len(labels),
            "percent_agreement": pairwise_agreement(labels),
            "majority_label": majority_label(labels),
        }
    annotators = sorted({who for by in ratings.values() for who in by})
    for who in annotators:
        agree = compared = shared = 0
        for by_annotator in multi.values():
            if who not in by_annotator:
                continue
            shared += 1
            for other, label in by_annotator.items():
                if other != who:
                    compared += 1
                    agree += label == by_annotator[who]
        report.per_annotator[who] = {
            "n_labels": sum(who in by for by in ratings.values()),
            "n_shared_items": shared,
            "percent_agreement": agree / compared if compared else None,
        }
    for first, second in combinations(annotators, 2):
        both = [by for by in multi.values() if first in by and second in by]
        if not both:
            continue
        a = [by[first] for by in both]
        b = [by[second] for by in both]
        report.pairwise[(first, second)] = {
            "n_items": len(both),
            "percent_agreement": sum(x == y for x, y in zip(a, b, strict=True)) / len(both),
            "cohen_kappa": cohen_kappa(a, b),
        }
    item_agreements = [entry["percent_agreement"] for entry in report.per_item.values()]
    sizes = Counter(len(by) for by in multi.values())
    fleiss_raters = max(sizes, key=lambda size: (sizes[size], size)) if sizes else None
    fleiss_rows = [Counter(by.values()) for by in multi.values() if len(by) == fleiss_raters]
    report.overall = {
        "n_items": len(multi),
        "percent_agreement": (
            sum(item_agreements) / len(item_agreements) if item_agreements else None
        ),
        "fleiss_kappa": fleiss_kappa(fleiss_rows) if fleiss_rows else None,
        "fleiss_raters": fleiss_raters,
        "fleiss_n_items": len(fleiss_rows),
    }
    return report


def conflicting_labels(ratings: Ratings) -> list[dict[str, object]]:
    """Items whose current labels from different annotators disagree, for review.

    Returns
    -------
    list of dict
        ``{"item_key", "labels": {annotator: label}, "majority_label"}`` per item
        (``majority_label`` None on a tie).
    """
    found = []
    for key, by_annotator in ratings.items():
        if len(set(by_annotator.values())) > 1:
            found.append(
                {
                    "item_key": key,
                    "labels": dict(sorted(by_annotator.items())),
                    "majority_label": majority_label(list(by_annotator.values())),
                }
            )
    return found
