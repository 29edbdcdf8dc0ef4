"""Fusion against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from rag.fusion import convex, minmax, rrf
from rag.store.sparse import top_k


def run(ids: list[int], scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(ids, np.int64), np.array(scores, np.float32)


def test_rrf_hand_computed() -> None:
    ids, scores = rrf({"a": run([1, 2, 3], [9, 8, 7]), "b": run([3, 4], [0.9, 0.1])}, k=60)
    # 3: 1/63 + 1/61; 1: 1/61; 2: 1/62; 4: 1/62
    assert ids[0] == 3 and scores[0] == pytest.approx(1 / 63 + 1 / 61, rel=1e-6)
    assert ids[1] == 1 and scores[1] == pytest.approx(1 / 61, rel=1e-6)
    assert set(ids[2:]) == {2, 4} and scores[2] == pytest.approx(1 / 62, rel=1e-6)


def test_rrf_k_changes_the_weight_of_top_ranks() -> None:
    runs = {"a": run([1, 2], [2, 1]), "b": run([2, 3], [2, 1])}
    ids, scores = rrf(runs, k=1)
    assert ids[0] == 2 and scores[0] == pytest.approx(1 / 3 + 1 / 2)


def test_minmax_and_constant() -> None:
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax(np.array([5.0, 5.0])).tolist() == [1.0, 1.0]


def test_convex_hand_computed() -> None:
    dense = run([1, 2, 3], [0.9, 0.5, 0.1])  # normalised 1, 0.5, 0
    bm25 = run([3, 1], [10.0, 5.0])  # normalised 1, 0
    ids, scores = convex({"dense": dense, "bm25": bm25}, {"dense": 0.3, "bm25": 0.7})
    expect = {1: 0.3 * 1 + 0.7 * 0, 2: 0.3 * 0.5, 3: 0.3 * 0 + 0.7 * 1}
    assert ids.tolist() == [3, 1, 2]
    assert scores.tolist() == pytest.approx([expect[3], expect[1], expect[2]], rel=1e-6)


def test_empty_runs() -> None:
    ids, scores = rrf({"a": run([], [])})
    assert ids.size == 0 and scores.size == 0


def test_top_k_matches_full_sort() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(1000).astype(np.float32)
    assert top_k(x, 10).tolist() == np.argsort(-x)[:10].tolist()
    assert top_k(x, 5000).size == 1000


def test_zero_floor_normalisation_keeps_weak_matches_and_breaks_minmax_ties() -> None:
    import numpy as np

    from rag.fusion import convex, scale_from_zero

    np.testing.assert_allclose(scale_from_zero(np.array([2.0, 1.0, -0.5])), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(scale_from_zero(np.array([0.0, 0.0])), [0.0, 0.0])
    # Three candidates: doc 2 is first for dense and second for BM25, doc 1 first for BM25 only.
    runs = {"dense": (np.array([2, 3, 1]), np.array([0.60, 0.10, -0.03])),
            "bm25": (np.array([1, 2]), np.array([0.46, 0.40]))}
    w = {"dense": 0.5, "bm25": 0.5}
    mm_ids, mm_scores = convex(runs, w, "minmax")
    assert mm_scores[0] == mm_scores[1]  # min-max: 0.5 + 0 vs 0 + 0.5, a tie
    ids, scores = convex(runs, w, "zero")
    assert ids[0] == 2 and scores[0] > scores[1]
    # hand-computed: doc 2 = .5 * 1 + .5 * (.40/.46); doc 1 = .5 * 0 + .5 * 1
    assert abs(scores[0] - (0.5 + 0.5 * 0.40 / 0.46)) < 1e-6
