"""Dense search over a snapshot's segments: exact (FAISS flat) or HNSW per segment, merged by score.

Small segments are searched exactly; a segment at or above `IndexSettings.hnsw_min_rows`
is built as HNSW when `dense="auto"` (`"flat"` / `"hnsw"` force one kind). Deleted rows
and filters become one FAISS bitmap selector per segment; when few rows pass a filter the
segment is scored exactly over just those rows (HNSW under a tight filter loses recall).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.store.allowed import AllowedIds, member_mask, nothing_allowed, sorted_unique
from rag.store.segment import Segment

_local = threading.local()


def set_search_threads(threads: int) -> None:
    """Set OpenMP's team size once per calling thread (0: FAISS's default).

    One query gains nothing from OpenMP's team but pays its wake-up (measured 1.6 vs 6.9 ms
    p50 on 2 busy cores over 10k vectors). OpenMP keeps this setting per thread, so it is set
    once on each thread's first search, never changed and restored around every query as
    before (which let one request's restore undo another's setting under a thread pool).
    """
    if threads <= 0 or getattr(_local, "threads", None) == threads:
        return
    import faiss

    faiss.omp_set_num_threads(threads)
    _local.threads = threads


def dense_kind(rows: int, setting: str, min_rows: int) -> str:
    """The kind a segment of `rows` is built as: the setting, or HNSW from `min_rows` up under auto."""
    if setting == "auto":
        return "hnsw" if rows >= min_rows else "flat"
    return setting


class SegmentDense:
    """One segment's FAISS index (row numbers are FAISS ids)."""

    def __init__(self, seg: Segment) -> None:
        import faiss

        self.seg = seg
        self.kind = seg.dense_kind if seg.faiss_index is not None else "flat"
        if seg.faiss_index is not None:
            self.index = seg.faiss_index
        else:
            self.index = faiss.IndexFlatIP(int(seg.vectors.shape[1]))
            if seg.size:
                self.index.add(np.ascontiguousarray(seg.vectors, dtype=np.float32))
        self.vectors = _held_vectors(self.index, seg)

    def search(self, q: np.ndarray, k: int, mask: np.ndarray | None, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (rows, scores) among rows where `mask` is True (None: all rows)."""
        import faiss

        n = self.seg.size
        allowed = n if mask is None else int(mask.sum())
        if allowed == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, allowed)
        if mask is not None and allowed <= max(4 * k, n // 20):  # few rows pass: score them exactly
            rows = np.flatnonzero(mask)
            scores = np.einsum("ij,j->i", self.vectors[rows], q.reshape(-1))  # no BLAS: its threads spin after
            top = np.argsort(-scores, kind="stable")[:k]
            return rows[top].astype(np.int64), scores[top].astype(np.float32)
        params: Any = None
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))
        if mask is not None:
            bits = np.packbits(mask.astype(np.uint8), bitorder="little")
            sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            if params is None:
                params = faiss.SearchParameters(sel=sel)
            else:
                params.sel = sel
            params._keep = (sel, bits)
        scores, rows = self.index.search(q.reshape(1, -1), k, params=params)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


def _held_vectors(index: Any, seg: Segment) -> np.ndarray:
    """The segment's vectors as FAISS holds them in memory (flat, or an HNSW graph's flat storage), as a view.

    Scoring a few rows exactly gathers them from here, not from the memory-mapped vectors.npy: those
    page faults also slowed the next SQLite scan of the same search 2x (a suffix glob: 22 -> 46 ms).
    """
    import faiss

    flat = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
    n, d = int(seg.size), int(seg.vectors.shape[1])
    if not n or not hasattr(flat, "get_xb") or int(flat.ntotal) != n:
        return np.asarray(seg.vectors, np.float32)
    view: np.ndarray = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)
    return view


class DenseView:
    """Dense retriever over the live rows of every segment of one snapshot."""

    def __init__(self, parts: Sequence[tuple[SegmentDense, np.ndarray | None]], dim: int, ef_search: int,
                 threads: int) -> None:
        self.parts = list(parts)
        self.dim = dim
        self.ef_search = ef_search
        self.threads = threads

    @property
    def size(self) -> int:
        return sum(p.seg.size if live is None else int(live.sum()) for p, live in self.parts)

    def search(self, query: np.ndarray, k: int,
               allowed: AllowedIds | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (chunk ids, scores), best first, ties by chunk id; `allowed` restricts before scoring."""
        if k <= 0 or nothing_allowed(allowed):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        set_search_threads(self.threads)
        q = np.ascontiguousarray(np.asarray(query, np.float32).reshape(1, -1))
        ids, scores = [], []
        for part, live in self.parts:
            mask = restrict(part.seg, live, allowed)
            rows, s = part.search(q, k, mask, self.ef_search)
            ids.append(part.seg.ids[rows])
            scores.append(s)
        return top_by_score(ids, scores, k)


def restrict(seg: Segment, live: np.ndarray | None, allowed: AllowedIds | np.ndarray | None) -> np.ndarray | None:
    """Boolean row mask of live rows inside `allowed` (None: every row); a bare id array works too."""
    if allowed is None:
        return live
    if isinstance(allowed, AllowedIds):
        mask = allowed.mask(seg)
    else:
        mask = member_mask(seg.ids, sorted_unique(np.asarray(allowed, np.int64)))
    return mask if live is None else mask & live


def top_by_score(ids: list[np.ndarray], scores: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-segment results: best score first, ties broken by chunk id (same order as one big segment)."""
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    all_ids = np.concatenate(ids).astype(np.int64)
    all_scores = np.concatenate(scores).astype(np.float32)
    order = np.lexsort((all_ids, -all_scores))[:k]
    return all_ids[order], all_scores[order]
