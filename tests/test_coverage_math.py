"""Coverage geometry: nearest distances, k-center radius, covered fraction, coverage report."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from alwidget.strategies.kcenter import (
    coverage_report,
    covered_fraction,
    default_coverage_radius,
    greedy_k_center,
    k_center_radius,
    nearest_distances,
)

coordinates = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def point_sets(draw, max_points=25, max_centers=8):
    n_features = draw(st.integers(1, 5))
    points = draw(
        arrays(np.float64, (draw(st.integers(0, max_points)), n_features), elements=coordinates)
    )
    centers = draw(
        arrays(np.float64, (draw(st.integers(1, max_centers)), n_features), elements=coordinates)
    )
    return points, centers


def brute_force_distances(points, centers):
    return np.sqrt(((points[:, None, :] - centers[None, :, :]) ** 2).sum(-1))


@settings(max_examples=60, deadline=None)
@given(point_sets(), st.integers(1, 40))
def test_chunked_distances_equal_unchunked_and_brute_force(data, chunk_elements):
    points, centers = data
    full, full_index = nearest_distances(points, centers, return_indices=True)
    chunked, chunked_index = nearest_distances(
        points, centers, return_indices=True, max_chunk_elements=chunk_elements
    )
    # Chunking changes the matrix-product blocking, so equidistant centers may swap by one
    # rounding step: distances agree to rounding, and each index is a nearest center.
    np.testing.assert_allclose(full, chunked, rtol=1e-12, atol=1e-12)
    if points.shape[0]:
        expected = brute_force_distances(points, centers)
        rows = np.arange(points.shape[0])
        for distances, indices in ((full, full_index), (chunked, chunked_index)):
            np.testing.assert_allclose(distances, expected.min(axis=1), rtol=1e-9, atol=1e-6)
            np.testing.assert_allclose(
                expected[rows, indices], expected.min(axis=1), rtol=1e-9, atol=1e-6
            )


def test_duplicates_of_a_center_are_at_exactly_zero():
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(4, 64)) * 1000
    points = np.vstack([centers, centers + 1.0])
    distances = nearest_distances(points, centers, max_chunk_elements=3)
    assert (distances[:4] == 0.0).all()
    np.testing.assert_allclose(distances[4:], 8.0)  # sqrt(64 * 1^2)


def test_no_centers_means_infinitely_far():
    distances, indices = nearest_distances(np.zeros((3, 2)), np.zeros((0, 2)), return_indices=True)
    assert np.isinf(distances).all() and (indices == -1).all()
    assert k_center_radius(np.zeros((3, 2)), np.zeros((0, 2))) == np.inf
    assert covered_fraction(np.zeros((3, 2)), np.zeros((0, 2)), radius=1e9) == 0.0


def test_feature_mismatch_and_bad_values_are_named():
    with pytest.raises(ValueError, match="centers_M_D has 3 features"):
        nearest_distances(np.zeros((2, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="points_N_D contains NaN"):
        nearest_distances(np.array([[np.nan, 0.0]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="must be 2-D"):
        nearest_distances(np.zeros(3), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="radius"):
        covered_fraction(np.zeros((2, 2)), np.zeros((1, 2)), radius=-1.0)


LINE = np.arange(11, dtype=float)[:, None]  # points 0, 1, ..., 10 on a line


def test_radius_and_covered_fraction_on_a_line():
    labeled = np.array([[0.0], [10.0]])
    assert k_center_radius(LINE, labeled) == 5.0
    # Within 2 of an end: 0, 1, 2, 8, 9, 10.
    assert covered_fraction(LINE, labeled, radius=2.0) == pytest.approx(6 / 11)
    assert covered_fraction(LINE, labeled, radius=5.0) == 1.0
    assert covered_fraction(LINE, labeled, radius=0.0) == pytest.approx(2 / 11)


def test_coverage_report_on_a_line():
    mask = np.zeros(11, dtype=bool)
    mask[[0, 10]] = True
    report = coverage_report(LINE, mask, radius=2.0, n_farthest=3)
    assert report["k_center_radius"] == 5.0
    assert report["radius"] == 2.0
    assert report["covered_fraction"] == pytest.approx(6 / 11)
    assert report["unlabeled_covered_fraction"] == pytest.approx(4 / 9)
    assert report["n_items"] == 11 and report["n_labeled"] == 2
    np.testing.assert_array_equal(report["distances_N"], [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(
        report["nearest_labeled_N"][[0, 1, 4, 6, 9, 10]], [0, 0, 0, 10, 10, 10]
    )
    # Uncovered: 3..7; farthest first, ties in index order.
    np.testing.assert_array_equal(report["farthest_uncovered"], [5, 4, 6])
    assert report["covered_mask_N"].tolist() == [d <= 2 for d in report["distances_N"]]


def test_coverage_report_without_labels_is_explicit():
    report = coverage_report(LINE, np.zeros(11, dtype=bool), radius=2.0)
    assert report["k_center_radius"] == np.inf
    assert report["covered_fraction"] == 0.0
    assert report["unlabeled_covered_fraction"] == 0.0
    assert report["farthest_uncovered"].size == 0
    assert (report["nearest_labeled_N"] == -1).all()


def test_coverage_report_with_everything_labeled():
    report = coverage_report(LINE, np.ones(11, dtype=bool), radius=0.0)
    assert report["k_center_radius"] == 0.0
    assert report["covered_fraction"] == 1.0
    assert report["farthest_uncovered"].size == 0
    np.testing.assert_array_equal(report["nearest_labeled_N"], np.arange(11))


def test_coverage_report_rejects_bad_masks():
    with pytest.raises(ValueError, match="labeled_mask_N must be a boolean array of length 11"):
        coverage_report(LINE, np.zeros(10, dtype=bool))
    with pytest.raises(ValueError, match="labeled_mask_N"):
        coverage_report(LINE, np.zeros(11, dtype=int))


def test_default_radius_on_a_lattice():
    # Interior points of a unit lattice have their 5th nearest neighbour at distance 3
    # (neighbours at 1, 1, 2, 2, 3); k = max(5, 1% of 100) = 5.
    lattice = np.arange(100, dtype=float)[:, None]
    assert default_coverage_radius(lattice) == 3.0
    # 1% of 1000 = 10 neighbours: distance 5.
    big = np.arange(1000, dtype=float)[:, None]
    assert default_coverage_radius(big) == 5.0
    # The subsampled estimate on a 2000-point lattice (k = 20 -> 10) stays exact.
    assert default_coverage_radius(np.arange(2000, dtype=float)[:, None], max_queries=300) == 10.0
    report = coverage_report(lattice, np.arange(100) % 7 == 0)
    assert report["radius"] == 3.0
    # Labels every 7: distances 0..3 are covered, so every point is.
    assert report["covered_fraction"] == 1.0
    assert report["k_center_radius"] == 3.0


def test_default_radius_degenerate_sizes():
    assert default_coverage_radius(np.zeros((1, 3))) == 0.0
    assert default_coverage_radius(np.zeros((0, 3))) == 0.0
    # Three points: k capped at 2; second-nearest distances 3, 2, 3.
    assert default_coverage_radius(np.array([[0.0], [1.0], [3.0]])) == 3.0


@settings(max_examples=40, deadline=None)
@given(point_sets(max_points=20, max_centers=4), st.integers(1, 8))
def test_k_center_radius_never_grows_as_coreset_adds_points(data, count):
    points, labeled = data
    if points.shape[0] == 0:
        return
    picks, radii = greedy_k_center(points, count, labeled)
    assert len(set(picks.tolist())) == len(picks) == min(count, points.shape[0])
    radius_path = [
        k_center_radius(points, np.vstack([labeled, points[picks[:i]]]))
        for i in range(len(picks) + 1)
    ]
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(radius_path))
    # Each pick's score is the radius just before it was added (it was the farthest point).
    np.testing.assert_allclose(radii, radius_path[:-1], rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(2, 8), st.integers(1, 3)), elements=coordinates),
    st.integers(1, 3),
)
def test_greedy_k_center_is_within_twice_the_optimal_radius(points, count):
    count = min(count, points.shape[0])
    picks, _ = greedy_k_center(points, count)
    greedy = k_center_radius(points, points[picks])
    optimal = min(
        k_center_radius(points, points[list(subset)])
        for subset in itertools.combinations(range(points.shape[0]), count)
    )
    assert greedy <= 2 * optimal + 1e-9


def test_greedy_k_center_first_pick_options():
    points = np.array([[0.0, 0.0], [10.0, 0.0], [4.0, 1.0], [9.0, 9.0]])
    picks, radii = greedy_k_center(points, 2, first="mean")  # mean (5.75, 2.5): nearest is (4, 1)
    assert picks[0] == 2
    assert radii[0] == pytest.approx(np.hypot(5, 8))  # farthest from (4, 1) is (9, 9)
    assert picks[1] == 3
    picks, _ = greedy_k_center(points, 1, first=1)
    assert picks.tolist() == [1]
    seen = {
        int(greedy_k_center(points, 1, first="random", rng=np.random.default_rng(s))[0][0])
        for s in range(40)
    }
    assert seen == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="first"):
        greedy_k_center(points, 1, first="middle")
