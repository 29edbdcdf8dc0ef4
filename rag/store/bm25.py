"""BM25 over a snapshot's segments with collection-wide statistics, weighted at query time.

Each segment keeps raw term frequencies (CSC postings); a query computes document
frequency, document count and average length over the *live* rows of all segments,
so a collection written in a hundred batches with deletions scores exactly like one
built in one go. The formula is bm25s's Lucene variant (the engine the index used
before segments): idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
tf part = tf / (tf + k1 * (1 - b + b * len / avg_len)), summed over query tokens
(a repeated query token counts twice, as in bm25s). Pure numpy: the work is the
postings of the query's terms, never the whole collection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from rag.store.allowed import AllowedIds, nothing_allowed
from rag.store.dense import restrict, top_by_score
from rag.store.segment import Segment
from rag.store.sparse import analyze


class SparseView:
    """BM25 retriever over the live rows of every segment of one snapshot."""

    def __init__(self, parts: Sequence[tuple[Segment, np.ndarray | None]], *, k1: float, b: float,
                 language: str) -> None:
        self.parts = list(parts)
        self.k1, self.b, self.language = k1, b, language
        self.n_docs = 0
        total = 0
        for seg, live in self.parts:
            self.n_docs += seg.size if live is None else int(live.sum())
            total += int(seg.doclen.sum() if live is None else seg.doclen[live].sum())
        self.avg_len = total / self.n_docs if self.n_docs else 1.0

    @property
    def size(self) -> int:
        return self.n_docs

    @property
    def ids(self) -> np.ndarray:
        """Live chunk ids, ascending within each segment."""
        out = [seg.ids if live is None else seg.ids[live] for seg, live in self.parts]
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def _postings(self, term: str) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for seg, live in self.parts:
            rows, tf = seg.postings(term)
            if live is not None and len(rows):
                keep = live[rows]
                rows, tf = rows[keep], tf[keep]
            out.append((rows, tf))
        return out

    def search(self, query: str, k: int,
               allowed: AllowedIds | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (chunk ids, scores) among rows with a positive score, ties by chunk id; `allowed` filters first."""
        if k <= 0 or not self.n_docs or nothing_allowed(allowed, wait=False):  # a pending filter: waited for last
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        counts = Counter(analyze(query, self.language))
        seg_rows: list[list[np.ndarray]] = [[] for _ in self.parts]
        seg_vals: list[list[np.ndarray]] = [[] for _ in self.parts]
        n = self.n_docs
        for term, times in counts.items():
            plist = self._postings(term)
            df = sum(len(r) for r, _ in plist)
            if df == 0:
                continue
            idf = np.float32(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
            for i, ((rows, tf), (seg, _live)) in enumerate(zip(plist, self.parts, strict=True)):
                if not len(rows):
                    continue
                tf32 = tf.astype(np.float32)
                norm = np.float32(self.k1) * (np.float32(1 - self.b) + np.float32(self.b) * seg.doclen[rows]
                                              .astype(np.float32) / np.float32(self.avg_len))
                seg_rows[i].append(rows)
                seg_vals[i].append(np.float32(times) * idf * (tf32 / (norm + tf32)))
        ids, scores = [], []
        for (seg, live), rows_l, vals_l in zip(self.parts, seg_rows, seg_vals, strict=True):
            if not rows_l:
                continue
            rows, sums = _accumulate(np.concatenate(rows_l), np.concatenate(vals_l), seg.size)
            if allowed is not None:
                mask = restrict(seg, None, allowed)
                assert mask is not None
                keep = mask[rows]
                rows, sums = rows[keep], sums[keep]
            keep = sums > 0
            rows, sums = rows[keep], sums[keep]
            if len(rows) > k:
                part = np.argpartition(-sums, k - 1)[:k]
                rows, sums = rows[part], sums[part]
            ids.append(seg.ids[rows])
            scores.append(sums)
        return top_by_score(ids, scores, k)


def _accumulate(rows: np.ndarray, vals: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum `vals` per row: (distinct rows ascending, float32 sums).

    Many postings against the segment (common terms in a big segment): one dense bincount over the
    segment, O(rows + size); few: sort them (np.unique), O(rows log rows). Same sums either way
    (float64, in posting order). At 1M chunks the sort was most of a hybrid search's BM25 time.
    """
    if len(rows) * 8 >= size:
        dense = np.bincount(rows, weights=vals, minlength=size)
        hit = np.flatnonzero(dense)
        return hit, dense[hit].astype(np.float32)
    uniq, inv = np.unique(rows, return_inverse=True)
    return uniq, np.bincount(inv, weights=vals).astype(np.float32)
