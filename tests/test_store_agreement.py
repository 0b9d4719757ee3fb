"""Agreement figures against published values and scikit-learn."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sklearn.metrics import cohen_kappa_score

from alwidget.store import cohen_kappa, fleiss_kappa
from alwidget.store.agreement import agreement_report, majority_label


def test_fleiss_kappa_matches_the_published_example():
    # Fleiss (1971) as tabulated on Wikipedia: 10 subjects, 14 raters, 5 categories.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    rows = [{str(c): n for c, n in enumerate(counts) if n} for counts in table]
    assert fleiss_kappa(rows) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_kappa_needs_equal_rater_counts():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([{"a": 2}, {"a": 1, "b": 2}])
    assert fleiss_kappa([{"a": 3}, {"a": 3}]) is None  # everyone always says "a"


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_scikit_learn(seed):
    rng = random.Random(seed)
    first = [rng.choice("abc") for _ in range(60)]
    second = [x if rng.random() < 0.6 else rng.choice("abc") for x in first]
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))


def test_cohen_kappa_is_undefined_without_variation():
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)


def test_report_on_a_small_team():
    ratings = {
        "1": {"ann": "cat", "bob": "cat", "cid": "cat"},
        "2": {"ann": "cat", "bob": "dog", "cid": "dog"},
        "3": {"ann": "dog", "bob": "dog"},
        "4": {"ann": "dog"},  # one annotator: no agreement figure
    }
    report = agreement_report(ratings)
    assert set(report.per_item) == {"1", "2", "3"}
    assert report.per_item["2"] == {
        "n_annotators": 3,
        "percent_agreement": pytest.approx(1 / 3),
        "majority_label": "dog",
    }
    assert report.per_annotator["ann"] == {
        "n_labels": 4,
        "n_shared_items": 3,
        "percent_agreement": pytest.approx(3 / 5),
    }
    assert report.pairwise[("bob", "cid")]["percent_agreement"] == 1.0
    assert report.pairwise[("ann", "bob")] == {
        "n_items": 3,
        "percent_agreement": pytest.approx(2 / 3),
        "cohen_kappa": pytest.approx(
            cohen_kappa_score(["cat", "cat", "dog"], ["cat", "dog", "dog"])
        ),  # noqa: E501
    }
    # Fleiss uses the most common rater count: items 1 and 2 (3 raters) vs item 3 (2 raters)
    assert report.overall["fleiss_raters"] == 3 and report.overall["fleiss_n_items"] == 2
    expected = fleiss_kappa([Counter(ratings["1"].values()), Counter(ratings["2"].values())])
    assert report.overall["fleiss_kappa"] == pytest.approx(expected)
    assert majority_label(["a", "b"]) is None and majority_label(["a", "b", "a"]) == "a"
