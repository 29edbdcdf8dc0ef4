"""Pure numpy fusion of ranked lists: reciprocal rank fusion and convex combination.

Each input is `(ids, scores)` sorted best first. Outputs are the same shape.
"""

from __future__ import annotations

import numpy as np

from rag.vectors import top_k


def rrf(runs: dict[str, tuple[np.ndarray, np.ndarray]], k: int = 60,
        weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion: score(d) = sum_r w_r / (k + rank_r(d)), ranks from 1."""
    ids, contrib = _stack(runs, lambda name, n: (weights or {}).get(name, 1.0) / (k + np.arange(1, n + 1)))
    return _sum_and_sort(ids, contrib)


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant list becomes all ones (every hit equally good)."""
    if scores.size == 0:
        return scores.astype(np.float32)
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo < 1e-12:
        return np.ones_like(scores, dtype=np.float32)
    return ((scores - lo) / (hi - lo)).astype(np.float32)


def scale_from_zero(scores: np.ndarray) -> np.ndarray:
    """Divide by the list's best score, negatives clipped to 0 (theoretical-minimum normalisation).

    Unlike min-max it keeps what a score means: with three candidates, min-max turns a weak
    second-best BM25 match into 0, the same as no match at all, and can tie a document that
    only one retriever likes with one that both like (Bruch et al. 2023 found this variant
    more robust). Cosine and BM25 both have 0 as their natural floor.
    """
    if scores.size == 0:
        return scores.astype(np.float32)
    hi = float(scores.max())
    if hi <= 1e-12:
        return np.zeros_like(scores, dtype=np.float32)
    return np.clip(scores / hi, 0.0, None).astype(np.float32)


def convex(runs: dict[str, tuple[np.ndarray, np.ndarray]], weights: dict[str, float],
           normalization: str = "minmax") -> tuple[np.ndarray, np.ndarray]:
    """Weighted sum of normalised scores (`minmax` or `zero`); a list missing a hit contributes 0."""
    ids, contrib = _stack(runs, None, weights, scale_from_zero if normalization == "zero" else minmax)
    return _sum_and_sort(ids, contrib)


def _stack(runs: dict[str, tuple[np.ndarray, np.ndarray]], by_rank: object,
           weights: dict[str, float] | None = None, scale: object = minmax) -> tuple[np.ndarray, np.ndarray]:
    all_ids, all_contrib = [], []
    for name, (ids, scores) in runs.items():
        if len(ids) == 0:
            continue
        if callable(by_rank):
            c = by_rank(name, len(ids))
        else:
            c = (weights or {}).get(name, 0.0) * scale(np.asarray(scores, np.float32))  # type: ignore[operator]
        all_ids.append(np.asarray(ids, np.int64))
        all_contrib.append(np.asarray(c, np.float64))
    if not all_ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    return np.concatenate(all_ids), np.concatenate(all_contrib)


def _sum_and_sort(ids: np.ndarray, contrib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if ids.size == 0:
        return ids, contrib.astype(np.float32)
    uniq, inv = np.unique(ids, return_inverse=True)
    total = np.zeros(uniq.size, np.float64)
    np.add.at(total, inv, contrib)
    order = top_k(total, uniq.size)
    return uniq[order], total[order].astype(np.float32)
