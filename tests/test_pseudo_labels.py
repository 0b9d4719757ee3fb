"""Pseudo-labels: chosen by confidence and MC agreement, capped per class, trained on, never
stored, recomputed every run, switchable off, and checked against hidden targets."""

from __future__ import annotations

import json

import numpy as np
import pytest

import alwidget as al
from alwidget.cli import _train_config, build_parser
from alwidget.errors import InvalidArgumentError
from alwidget.experiments.simulate import simulate
from alwidget.session.pseudo_labels import select_pseudo_labels
from alwidget.training import TrainConfig

PSEUDO = dict(min_steps=60, max_steps=60, pseudo_labels=True, pseudo_label_confidence=0.9,
              pseudo_label_max_bald=0.1, pseudo_label_per_class=15)  # fmt: skip


def log_probs(*samples_per_item):
    """``log_probs_N_K_C`` from per-item lists of probability rows."""
    return np.log(np.array(samples_per_item, dtype=np.float64))


def entropy(p):
    p = np.asarray(p, dtype=np.float64)
    return float(-(p * np.log(p)).sum())


def test_selection_by_confidence_agreement_and_per_class_cap():
    items = log_probs(
        [[0.99, 0.01], [0.99, 0.01]],  # 0: sure of class 0, samples agree
        [[0.99, 0.01], [0.90, 0.10]],  # 1: mean 0.945 < 0.95
        [[0.999, 0.001], [0.001, 0.999]],  # 2: samples disagree completely
        [[0.02, 0.98], [0.02, 0.98]],  # 3: sure of class 1
        [[0.97, 0.03], [0.97, 0.03]],  # 4: class 0, less sure than item 0
        [[0.999, 0.001], [0.93, 0.07]],  # 5: mean 0.9645, but the samples differ
    )
    mean_5 = np.array([0.9645, 0.0355])
    bald_5 = entropy(mean_5) - (entropy([0.999, 0.001]) + entropy([0.93, 0.07])) / 2
    assert 0.02 < bald_5 < 0.03

    rows, classes, confidence, bald = select_pseudo_labels(
        items, min_confidence=0.95, max_bald=0.01, per_class=10
    )
    assert rows.tolist() == [0, 3, 4] and classes.tolist() == [0, 1, 0]
    assert confidence == pytest.approx([0.99, 0.98, 0.97])
    assert bald == pytest.approx([0, 0, 0], abs=1e-9)

    rows, _, _, bald = select_pseudo_labels(items, min_confidence=0.95, max_bald=0.05, per_class=10)
    assert rows.tolist() == [0, 3, 4, 5] and bald[3] == pytest.approx(bald_5, rel=1e-4)

    # Per class only the most confident: class 0 keeps item 0 (0.99) over 5 (0.9645) and 4.
    rows, classes, _, _ = select_pseudo_labels(
        items, min_confidence=0.95, max_bald=0.05, per_class=1
    )
    assert rows.tolist() == [0, 3] and classes.tolist() == [0, 1]

    rows, *_ = select_pseudo_labels(items, min_confidence=0.95, max_bald=0.05, per_class=0)
    assert rows.tolist() == []


def blobs(n_per_class=80, seed=0, flip=0):
    """Three well-separated 2-D clusters (a tabular pool with a held-out split); ``flip``
    hidden targets are moved to the next class, so a correct model disagrees with them."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])

    def draw(count):
        targets = np.repeat(np.arange(3), count)
        return (centres[targets] + rng.normal(size=(len(targets), 2))).astype(np.float32), targets

    items, targets = draw(n_per_class)
    test_items, test_targets = draw(20)
    if flip:
        moved = rng.choice(len(targets), size=flip, replace=False)
        targets = targets.copy()
        targets[moved] = (targets[moved] + 1) % 3
    return al.Pool(items, targets=targets, classes=["a", "b", "c"], test_items=test_items,
                   test_targets=test_targets, name=f"blobs-{flip}")  # fmt: skip


def test_pseudo_labels_train_but_never_reach_the_store(tmp_path):
    pool = blobs()
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    session = al.Session(pool, model="mlp", strategy="bald", seed=0, store=url, cv_folds=0,
                         track_coverage=False, train_config=TrainConfig(**PSEUDO))  # fmt: skip
    human = [pool.ids[p] for p in (0, 1, 2, 3, 80, 81, 82, 83, 160, 161, 162, 163)]
    session.label(human, [int(pool.targets[pool.position(i)]) for i in human])
    session.retrain()
    assert session.pseudo_labels()["n"] == 0  # the first model had no model before it
    session.query(5)  # scores the pool: the next run picks from these MC samples
    report = session.retrain()

    chosen = session.pseudo_labels(sample=None)
    assert chosen["n"] == report.n_pseudo_labels > 0
    assert chosen["chosen_by_version"] == 1 and chosen["model_version"] == 2
    assert sum(chosen["counts"].values()) == chosen["n"] and max(chosen["counts"].values()) <= 15
    assert len(chosen["sample"]) == chosen["n"]
    pseudo_ids = {item["id"] for item in chosen["sample"]}
    assert not pseudo_ids & set(human)
    assert session.history[-1]["n_pseudo_labels"] == chosen["n"]
    assert len(session.pseudo_labels(sample=3)["sample"]) == 3

    expected = {i: pool.classes[pool.targets[pool.position(i)]] for i in human}
    assert session.labels == expected and session.n_labels == len(human)
    store = session.store
    assert {str(k): v for k, v in expected.items()} == store.current_labels()
    events = store.history()
    assert len(events) == len(human)
    assert not {str(i) for i in pseudo_ids} & {event.item_key for event in events}
    exported = session.export(tmp_path / "labels.json")
    rows = json.loads(exported.read_text())["labels"]
    assert len(rows) == len(human) and not {str(i) for i in pseudo_ids} & {
        row["item_key"] for row in rows
    }
    session.close()

    resumed = al.Session(pool, model="mlp", seed=0, store=url, cv_folds=0, track_coverage=False)
    assert resumed.labels == expected and resumed.pseudo_labels()["n"] == 0
    resumed.close()


def test_pseudo_labels_are_recomputed_every_run_and_switch_off():
    pool = blobs()
    session = al.Session(pool, model="mlp", strategy="bald", seed=1, store=False, cv_folds=0,
                         track_coverage=False, train_config=TrainConfig(**PSEUDO))  # fmt: skip
    human = [pool.ids[p] for p in (0, 1, 80, 81, 160, 161)]
    session.label(human, [int(pool.targets[pool.position(i)]) for i in human])
    session.retrain()
    session.retrain()  # no query in between: candidates come from a prediction pass
    first = session.pseudo_labels(sample=None)
    assert first["n"] > 0 and first["chosen_by_version"] == 1
    assert first["n_candidates"] == len(pool) - len(human)

    newly = [item["id"] for item in first["sample"][:2]]
    session.label(newly, [int(pool.targets[pool.position(i)]) for i in newly])
    session.retrain()
    second = session.pseudo_labels(sample=None)
    assert second["chosen_by_version"] == 2
    assert not {item["id"] for item in second["sample"]} & set(session.labels)

    session.train_config.pseudo_labels = False
    report = session.retrain()
    assert report.n_pseudo_labels == 0 and session.pseudo_labels()["n"] == 0
    assert "n_pseudo_labels" not in session.history[-1]


def test_simulate_reports_pseudo_label_precision_against_hidden_targets():
    config = dict(PSEUDO, pseudo_label_per_class=40)
    clean = simulate(blobs(), strategy="bald", model="mlp", initial=6, batch_size=6, rounds=2,
                     seed=0, train_config=TrainConfig(**config))  # fmt: skip
    json.dumps(clean)
    assert clean["pseudo_labels"] is True and clean["semi_supervised"] is None
    assert clean["rounds"][0]["pseudo_labels"] == {"n": 0, "correct": 0, "precision": None}
    used = [r["pseudo_labels"] for r in clean["rounds"][1:]]
    assert all(entry["n"] > 0 for entry in used)
    for entry in used:
        assert entry["precision"] == entry["correct"] / entry["n"]
    assert clean["pseudo_label_precision"] == pytest.approx(
        sum(e["correct"] for e in used) / sum(e["n"] for e in used)
    )
    assert clean["pseudo_label_precision"] > 0.95  # separable clusters: nearly all right

    # 60 of 240 hidden targets disagree with the clusters: confident predictions of those
    # items count as wrong, so precision must fall.
    noisy = simulate(blobs(flip=60), strategy="bald", model="mlp", initial=6, batch_size=6,
                     rounds=2, seed=0, train_config=TrainConfig(**config))  # fmt: skip
    assert noisy["pseudo_label_precision"] < clean["pseudo_label_precision"]
    assert noisy["pseudo_label_precision"] < 0.9

    off = simulate(blobs(), strategy="bald", model="mlp", initial=6, batch_size=6, rounds=1,
                   seed=0, train_config=TrainConfig(min_steps=30, max_steps=30))  # fmt: skip
    assert off["pseudo_labels"] is False and off["pseudo_label_precision"] is None
    assert all("pseudo_labels" not in r for r in off["rounds"])


def test_command_line_flags_reach_the_training_settings():
    args = build_parser().parse_args(
        ["simulate", "--pseudo-labels", "--semi-supervised", "fixmatch"]
    )
    config = _train_config(args, TrainConfig)
    assert config.pseudo_labels is True and config.semi_supervised == "fixmatch"
    config = _train_config(build_parser().parse_args(["simulate"]), TrainConfig)
    assert config.pseudo_labels is False and config.semi_supervised is None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("pseudo_label_confidence", 1.5, "[0.0, 1.0]"),
        ("pseudo_label_per_class", -1, "≥ 0"),
        ("pseudo_label_weight", -0.5, "pseudo_label_weight"),
        ("pseudo_label_mc_samples", 0, "≥ 1"),
    ],
)
def test_bad_pseudo_label_settings_name_the_field(field, value, words):
    with pytest.raises(InvalidArgumentError, match=field) as error:
        TrainConfig(**{field: value})
    assert words in str(error.value)
