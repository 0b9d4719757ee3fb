"""Row-wise strategies scored chunk by chunk: the same scores and batches, flat memory.

A streamed pass (``acquire(stream=True)``, automatic above ``STREAM_ABOVE_BYTES``) keeps
only ``scores_N`` and the best rows' log-probs; these tests compare it with the pass that
holds the whole ``log_probs_N_K_C`` on a small pool split into many chunks.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alwidget as al
from alwidget import strategies

acquire_module = importlib.import_module("alwidget.session.acquire")
model_state = importlib.import_module("alwidget.session.model_state")

ROW_WISE = sorted(name for name, spec in strategies.STRATEGIES.items() if spec.row_wise)
N_ITEMS, N_CLASSES, MC_SAMPLES = 900, 4, 6


def blob_pool(seed: int = 0) -> al.Pool:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLASSES, 12)) * 1.5
    targets = rng.integers(N_CLASSES, size=N_ITEMS)
    items = (centres[targets] + rng.normal(size=(N_ITEMS, 12))).astype(np.float32)
    return al.Pool(items, targets=targets)


def trained_session(pool: al.Pool, strategy: str = "bald") -> al.Session:
    # forward passes of 32 items, scoring chunks of 128: a 900-item pool takes 8 chunks
    session = al.Session(
        pool, model="mlp", strategy=strategy, mc_samples=MC_SAMPLES, store=False, seed=0,
        chunk_size=32, cv_folds=0, score_subset=None,
    )  # fmt: skip
    for index in range(N_CLASSES):
        for position in np.flatnonzero(pool.targets == index)[:5]:
            session.label(pool.ids[position], pool.classes[index])
    session.retrain()
    return session


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(model_state, "SCORING_CHUNK_ROWS", 100)


@pytest.fixture(scope="module")
def session():
    return trained_session(blob_pool())


def fresh_settings(name: str, seed: int = 5):
    spec = strategies.get_strategy(name)
    return acquire_module.AcquisitionSettings(
        name, spec, MC_SAMPLES, None, np.random.default_rng(seed)
    )


def test_the_built_in_per_item_strategies_are_declared_row_wise():
    assert set(ROW_WISE) >= {
        "random", "least_confidence", "margin", "entropy", "bald", "variation_ratios",
        "mean_std", "stochastic_bald",
    }  # fmt: skip
    for batch_aware in ("batchbald", "badge", "coreset", "hybrid", "typicality"):
        assert not strategies.STRATEGIES[batch_aware].row_wise


@pytest.mark.parametrize("name", ROW_WISE)
def test_a_streamed_pass_gives_the_same_scores_and_batch_as_the_whole_one(session, name):
    model = session.model
    positions = session.book.unlabeled_positions()
    model.forget_predictions()
    seen = []
    streamed = acquire_module.acquire(
        model, fresh_settings(name), positions, batch_size=10, stream=True,
        progress=lambda update: seen.append(update.done),
    )  # fmt: skip
    model.forget_predictions()
    whole = acquire_module.acquire(
        model, fresh_settings(name), positions, batch_size=10, stream=False
    )
    assert streamed.timings["streamed"] and not whole.timings["streamed"]
    assert seen == sorted(seen) and seen[-1] == len(positions) and len(seen) == 7  # 880 / 128
    np.testing.assert_array_equal(streamed.scores_N, whole.scores_N)
    np.testing.assert_array_equal(streamed.selection.indices, whole.selection.indices)
    np.testing.assert_array_equal(streamed.selection.scores, whole.selection.scores)
    chosen = streamed.selection.indices
    np.testing.assert_array_equal(streamed.log_probs_N_K_C[chosen], whole.log_probs_N_K_C[chosen])
    # rows the pass did not keep are predicted again in their own forward batch: same numbers
    elsewhere = [0, len(positions) - 1, 333]
    np.testing.assert_array_equal(
        streamed.log_probs_N_K_C[elsewhere], whole.log_probs_N_K_C[elsewhere]
    )


def test_a_streamed_pass_holds_only_the_best_rows_and_refuses_the_whole_array(session):
    positions = session.book.unlabeled_positions()
    result = acquire_module.acquire(
        session.model, fresh_settings("bald"), positions, batch_size=10, stream=True
    )
    kept = result.log_probs_N_K_C
    assert len(kept.rows) == acquire_module.KEEP_AT_LEAST
    assert kept.shape == (len(positions), MC_SAMPLES, N_CLASSES)
    best = np.argsort(-result.scores_N, kind="stable")[: acquire_module.KEEP_AT_LEAST]
    np.testing.assert_array_equal(kept.rows, best)
    with pytest.raises(TypeError, match="stream=False"):
        np.asarray(kept)
    with pytest.raises(IndexError, match="outside"):
        kept[[len(positions)]]


def test_progress_shows_the_best_of_the_scored_part_with_its_log_probs(session):
    positions = session.book.unlabeled_positions()
    model = session.model
    model.forget_predictions()
    whole = acquire_module.acquire(model, fresh_settings("entropy"), positions, stream=False)
    firsts = []

    def first_batch(update):
        if not firsts:
            rows = update.best(5)
            firsts.append((update.done, rows, update.log_probs_N_K_C[rows]))

    acquire_module.acquire(
        model, fresh_settings("entropy"), positions, batch_size=5, stream=True,
        progress=first_batch,
    )  # fmt: skip
    done, rows, log_probs = firsts[0]
    assert done == 128
    expected = np.argsort(-whole.scores_N[:done], kind="stable")[:5]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(log_probs, whole.log_probs_N_K_C[expected])


def test_the_unstreamed_pass_reports_progress_too_and_scores_the_same(session):
    positions = session.book.unlabeled_positions()
    model = session.model
    model.forget_predictions()
    plain = acquire_module.acquire(model, fresh_settings("bald"), positions, batch_size=3)
    model.forget_predictions()
    updates = []
    reported = acquire_module.acquire(
        model, fresh_settings("bald"), positions, batch_size=3, progress=updates.append
    )
    assert [u.done for u in updates] == [min(128 * (i + 1), len(positions)) for i in range(7)]
    np.testing.assert_array_equal(plain.scores_N, reported.scores_N)
    np.testing.assert_array_equal(plain.selection.indices, reported.selection.indices)
    # a second call reuses the cached pass: one report, everything scored
    again = []
    acquire_module.acquire(model, fresh_settings("bald"), positions, progress=again.append)
    assert [(u.done, u.total) for u in again] == [(len(positions), len(positions))]


def test_a_second_query_of_the_same_model_reuses_the_streamed_scores(session):
    model = session.model
    positions = session.book.unlabeled_positions()
    model.forget_predictions()
    first = acquire_module.acquire(
        model, fresh_settings("margin"), positions, batch_size=10, stream=True
    )
    fewer = positions[10:]
    calls = []
    second = acquire_module.acquire(
        model, fresh_settings("margin"), fewer, batch_size=10, stream=True,
        progress=lambda update: calls.append(update.done),
    )  # fmt: skip
    assert second.timings["reused_scores"] and calls == [len(fewer)]
    np.testing.assert_array_equal(second.scores_N, first.scores_N[10:])
    model.forget_predictions()
    fresh = acquire_module.acquire(
        model, fresh_settings("margin"), fewer, batch_size=10, stream=True
    )
    assert not fresh.timings["reused_scores"]
    np.testing.assert_array_equal(second.selection.indices, fresh.selection.indices)
    np.testing.assert_array_equal(
        second.log_probs_N_K_C[second.selection.indices],
        fresh.log_probs_N_K_C[fresh.selection.indices],
    )
    # random scores draw anew each time: never remembered
    acquire_module.acquire(model, fresh_settings("random"), positions, batch_size=5, stream=True)
    again = acquire_module.acquire(
        model, fresh_settings("random", seed=6), positions, batch_size=5, stream=True
    )
    assert not again.timings["reused_scores"]


def test_a_large_pass_streams_by_itself_and_the_session_batch_is_unchanged(monkeypatch):
    pool = blob_pool(seed=1)
    reference = trained_session(pool)
    pushed = pool.ids[reference.book.unlabeled_positions()[-1]]
    reference.prioritize([pushed])
    expected = reference.query(8)
    assert not reference.last_query_timings["streamed"]

    monkeypatch.setattr(acquire_module, "STREAM_ABOVE_BYTES", 1000)
    streamed_session = trained_session(pool)
    streamed_session.prioritize([pushed])
    batch = streamed_session.query(8)
    assert streamed_session.last_query_timings["streamed"]
    assert batch.ids == expected.ids and batch.ids[0] == pushed
    for ours, theirs in zip(batch.items, expected.items):
        assert ours == theirs  # scores, ranks, probabilities, BALD parts, votes
    # labeling leaves the remembered ranking in place until the model changes
    streamed_session.label(batch.ids[0], pool.classes[0])
    assert streamed_session.stale
    streamed_session.query(8)
    assert streamed_session.last_query_timings["reused_scores"]


def test_streaming_is_refused_where_it_cannot_give_the_same_answer(session):
    positions = session.book.unlabeled_positions()
    with pytest.raises(ValueError, match="not row-wise"):
        acquire_module.acquire(
            session.model, fresh_settings("batchbald"), positions, batch_size=4, stream=True
        )
    with pytest.raises(ValueError, match="needs batch_size"):
        acquire_module.acquire(session.model, fresh_settings("bald"), positions, stream=True)
    with pytest.raises(ValueError, match="row-wise"):
        strategies.StrategySpec("entropy", "coreset", "x", needs_embeddings=True, row_wise=True)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(
        st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]) | st.floats(-3, 3), min_size=1, max_size=60
    ),
    chunk=st.integers(1, 25),
    keep=st.integers(1, 12),
)
def test_kept_rows_are_the_top_k_whatever_the_chunking(scores, chunk, keep):
    scores_N = np.array(scores)
    log_probs = np.log(np.full((len(scores_N), 2, 3), 1 / 3, dtype=np.float32))
    log_probs[:, 0, 0] = np.arange(len(scores_N))  # tags each row (not a distribution)
    kept = acquire_module.KeptLogProbs(len(scores_N), lambda rows: log_probs[rows])
    for start in range(0, len(scores_N), chunk):
        rows = np.arange(start, min(start + chunk, len(scores_N)))
        kept.offer(rows, log_probs[rows], scores_N[rows], keep)
    expected = strategies.select_top_k(scores_N, min(keep, len(scores_N))).indices
    np.testing.assert_array_equal(kept.rows, expected)
    np.testing.assert_array_equal(kept[expected][:, 0, 0], expected)
    anywhere = np.arange(len(scores_N))[::-1]
    np.testing.assert_array_equal(kept[anywhere], log_probs[anywhere])
