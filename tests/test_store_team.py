"""Team queue: annotator processes labeling one pool concurrently through claim()."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from store_worker import CLASSES, POOL_FINGERPRINT, team_label  # noqa: E402

from alwidget.store import open_store  # noqa: E402

WORKER = Path(__file__).parent / "fixtures" / "store_worker.py"
N_ITEMS = 400


def run_team(url: str, n_annotators: int, overlap: int, batch: int = 3) -> dict[str, list[str]]:
    """Enqueue N_ITEMS items, let annotator processes label them all; return what each said."""
    with open_store(url, pool_fingerprint=POOL_FINGERPRINT, classes=CLASSES) as store:
        store.enqueue([(str(i), float(i % 37)) for i in range(N_ITEMS)])
    annotators = [f"a{k}" for k in range(1, n_annotators + 1)]
    workers = {
        who: subprocess.Popen(
            [sys.executable, str(WORKER), "annotate", url, who, str(overlap), str(batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in annotators
    }
    try:
        for who, worker in workers.items():
            line = worker.stdout.readline()
            assert line == "ready\n", f"{who}: {line!r} {worker.stderr.read() if not line else ''}"
        for worker in workers.values():
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reported = {}
        for who, worker in workers.items():
            out, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, f"{who} failed:\n{err}"
            lines = out.splitlines()
            assert lines[-1] == "done"
            reported[who] = [line[2:] for line in lines if line.startswith("L ")]
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
    return reported


def check_team(url: str, reported: dict[str, list[str]], overlap: int) -> None:
    with open_store(url, pool_fingerprint=POOL_FINGERPRINT) as store:
        events = store.history()
        progress = store.team_progress()
    assert all(event.kind == "label" for event in events)
    stored = Counter((event.item_key, event.annotator) for event in events)
    assert max(stored.values()) == 1  # nobody labeled an item twice
    per_item = Counter(key for key, _ in stored)
    assert set(per_item) == {str(i) for i in range(N_ITEMS)}  # every item was labeled ...
    assert set(per_item.values()) == {overlap}  # ... by exactly `overlap` distinct annotators
    for who, keys in reported.items():  # and every label a process saw saved is there
        assert sorted(keys) == sorted(key for key, annotator in stored if annotator == who)
    for event in events:
        assert event.label == team_label(event.item_key, event.annotator)
    assert progress == {
        "items": N_ITEMS,
        "live_leases": 0,
        "unlabeled_items": 0,
        f"items_with_{overlap}_labels": N_ITEMS,
    }
    # All annotators took part (they started together and each claims 3 at a time).
    assert all(len(keys) >= 10 for keys in reported.values()), {
        who: len(keys) for who, keys in reported.items()
    }


def check_agreement(url: str) -> None:
    """Annotator a1 disagrees with the others exactly on keys ending in 0."""
    with open_store(url, pool_fingerprint=POOL_FINGERPRINT) as store:
        by_item: dict[str, dict[str, str]] = {}
        for record in store.label_records():
            by_item.setdefault(record.item_key, {})[record.annotator] = record.label
        conflicts = store.conflicts()
        report = store.agreement()
    expected = sorted(key for key, by in by_item.items() if "a1" in by and key.endswith("0"))
    assert expected, "a1 should have labeled some items ending in 0"
    assert sorted(c["item_key"] for c in conflicts) == expected
    for conflict in conflicts:
        assert conflict["labels"] == by_item[conflict["item_key"]]
        assert conflict["majority_label"] is None  # two annotators, two labels: a tie
    assert all(
        report.per_item[key]["percent_agreement"] == (0.0 if key in expected else 1.0)
        for key in by_item
    )
    for (first, second), pair in report.pairwise.items():
        if "a1" not in (first, second):
            assert pair["percent_agreement"] == 1.0 and pair["cohen_kappa"] == 1.0
        else:
            assert pair["percent_agreement"] < 1.0 and pair["cohen_kappa"] < 1.0
    a1 = report.per_annotator["a1"]
    assert a1["percent_agreement"] == pytest.approx(1 - len(expected) / a1["n_shared_items"])
    assert report.overall["fleiss_raters"] == 2 and report.overall["fleiss_n_items"] == N_ITEMS
    assert 0.5 < report.overall["fleiss_kappa"] < 1.0


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("overlap", [1, 2])
def test_four_annotators_share_a_pool_on_postgresql(postgres_url, overlap):
    reported = run_team(postgres_url, n_annotators=4, overlap=overlap)
    check_team(postgres_url, reported, overlap)
    if overlap == 2:
        check_agreement(postgres_url)


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [1, 2])
def test_two_annotators_share_a_pool_on_sqlite(tmp_path, overlap):
    url = f"sqlite:///{tmp_path / 'team.db'}"
    reported = run_team(url, n_annotators=2, overlap=overlap)
    check_team(url, reported, overlap)
    if overlap == 2:
        check_agreement(url)


def team_store(url, annotator):
    return open_store(url, pool_fingerprint="team", classes=CLASSES, annotator=annotator)


def test_claims_follow_priority_and_leases_expire(store_url):
    alice, bob = team_store(store_url, "alice"), team_store(store_url, "bob")
    try:
        alice.enqueue([("a", 1.0), ("b", 5.0), ("c", 3.0), ("d", 4.0), ("e", 2.0)])
        alice.enqueue([("a", 10.0)])  # re-ranking after a retrain
        assert alice.claim(2, lease_seconds=1.0) == ["a", "b"]
        assert bob.claim(2, lease_seconds=30) == ["d", "c"]
        alice.add_label("a", "cat")
        time.sleep(1.2)  # alice's lease on b runs out
        assert bob.claim(5, lease_seconds=30) == ["d", "c", "b", "e"]  # own leases first
        alice.add_label("b", "dog")  # a late label is still kept, never refused
        assert alice.current_labels(annotator="alice") == {"a": "cat", "b": "dog"}
        assert alice.claim(5) == []
    finally:
        alice.close()
        bob.close()


def test_a_restarted_annotator_gets_its_own_leases_back(store_url):
    with team_store(store_url, "alice") as alice:
        alice.enqueue([(str(i), float(-i)) for i in range(10)])
        assert alice.claim(3) == ["0", "1", "2"]
        alice.add_label("0", "cat")
    with team_store(store_url, "alice") as alice, team_store(store_url, "bob") as bob:
        assert bob.claim(2) == ["3", "4"]
        assert alice.claim(3) == ["1", "2", "5"]


def test_release_and_undo_hand_items_back(store_url):
    with team_store(store_url, "alice") as alice, team_store(store_url, "bob") as bob:
        alice.enqueue([("x", 3.0), ("y", 2.0), ("z", 1.0)])
        assert alice.claim(3) == ["x", "y", "z"]
        alice.add_label("x", "cat")
        assert alice.release() == 2  # y and z; x is labeled, not leased
        alice.undo_label("x")  # x is alice's to relabel again, leased, not free
        assert bob.claim(3) == ["y", "z"]
        assert alice.release(["x"]) == 1
        assert bob.claim(3) == ["y", "z", "x"]
        assert alice.team_progress()["live_leases"] == 3


def test_claim_validates_its_arguments(tmp_path):
    with team_store(tmp_path / "t.db", "alice") as store:
        with pytest.raises(ValueError, match="overlap"):
            store.claim(1, overlap=0)
        with pytest.raises(ValueError, match="lease_seconds"):
            store.claim(1, lease_seconds=0)
        with pytest.raises(ValueError, match="non-negative"):
            store.claim(-1)
        with pytest.raises(TypeError, match="pairs"):
            store.enqueue(["a"])
        with pytest.raises(ValueError, match="finite"):
            store.enqueue([("a", float("nan"))])
        assert store.claim(3) == []
