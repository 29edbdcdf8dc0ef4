"""Paired bootstrap confidence intervals for per-question metrics.

Every arm answers the same questions, so the honest comparison resamples
*questions* (the same resample for every arm) and looks at the per-question
differences: a difference whose 95% interval excludes 0 is significant. The
generator is seeded, so a report reproduces exactly.

Example:
    >>> scores = {"rag": [1, 1, 0, 1], "closed": [0, 0, 0, 1]}
    >>> summary = paired_bootstrap(scores)
    >>> summary.arms["rag"].mean, summary.pairs[0].significant
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean and its percentile bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0


@dataclass(frozen=True)
class PairDiff:
    """`a` minus `b` over the questions both answered."""

    a: str
    b: str
    diff: Interval
    significant: bool


@dataclass(frozen=True)
class BootstrapSummary:
    metric: str
    arms: dict[str, Interval] = field(default_factory=dict)
    pairs: list[PairDiff] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _resample_means(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return values[idx].mean(axis=1)  # type: ignore[no-any-return]


def interval(values: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of `values` and its percentile bootstrap interval (NaN-free input expected)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    idx = np.random.default_rng(seed).integers(0, arr.size, size=(resamples, arr.size))
    means = _resample_means(arr, idx)
    tail = (1.0 - level) / 2 * 100
    return Interval(float(arr.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)),
                    int(arr.size))


def paired_bootstrap(per_arm: Mapping[str, Sequence[float | None]], *, metric: str = "", resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> BootstrapSummary:
    """Per-arm intervals and, for each pair of arms, the interval of the paired difference.

    `per_arm[arm][i]` is the score of question i (the same question order in
    every arm); `None` marks a question that arm has no score for (it is left
    out of that arm and of the pairs that include it). One resampling of the
    question indices is shared by all arms and pairs.
    """
    arms = list(per_arm)
    n = max((len(v) for v in per_arm.values()), default=0)
    table = np.full((len(arms), n), np.nan)
    for i, arm in enumerate(arms):
        vals = [np.nan if v is None else float(v) for v in per_arm[arm]]
        table[i, : len(vals)] = vals
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), dtype=int)
    tail = (1.0 - level) / 2 * 100

    def summarise(values: np.ndarray) -> Interval:
        ok = ~np.isnan(values)
        if not ok.any():
            return Interval(float("nan"), float("nan"), float("nan"), 0)
        if not ok.all():  # some questions missing: resample the ones present, still seeded
            kept = values[ok]
            sub_idx = np.random.default_rng(seed).integers(0, kept.size, size=(resamples, kept.size))
            means = _resample_means(kept, sub_idx)
            return Interval(float(kept.mean()), float(np.percentile(means, tail)),
                            float(np.percentile(means, 100 - tail)), int(kept.size))
        means = _resample_means(values, idx)
        return Interval(float(values.mean()), float(np.percentile(means, tail)),
                        float(np.percentile(means, 100 - tail)), int(values.size))

    out = BootstrapSummary(metric=metric)
    for i, arm in enumerate(arms):
        out.arms[arm] = summarise(table[i])
    for i, j in combinations(range(len(arms)), 2):
        diff = summarise(table[i] - table[j])
        out.pairs.append(PairDiff(arms[i], arms[j], diff, bool(diff.n and diff.excludes_zero())))
    return out
