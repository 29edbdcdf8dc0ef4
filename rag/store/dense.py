"""FAISS dense index keyed by ledger chunk ids (exact inner product or HNSW)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rag.config import IndexSettings


class DenseIndex:
    """Inner-product search over L2-normalised vectors; ids are ledger chunk ids."""

    FILE = "dense.faiss"

    def __init__(self, index: Any, kind: str, ef_search: int = 64, threads: int = 1) -> None:
        self._index = index
        self.kind = kind
        self.ef_search = ef_search
        self.threads = threads

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, cfg: IndexSettings) -> DenseIndex:
        import faiss

        if cfg.dense == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = cfg.hnsw_ef_construction
        else:
            inner = faiss.IndexFlatIP(dim)
        index = faiss.IndexIDMap2(inner)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
        return cls(index, cfg.dense, cfg.hnsw_ef_search, cfg.search_threads)

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(folder / self.FILE))

    @classmethod
    def load(cls, folder: Path, kind: str, ef_search: int, threads: int = 1) -> DenseIndex:
        import faiss

        return cls(faiss.read_index(str(folder / cls.FILE)), kind, ef_search, threads)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids, scores); `allowed` restricts candidates *before* scoring."""
        import faiss

        if self.size == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, self.size if allowed is None else len(allowed))
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        params: Any = None
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        if allowed is not None:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if params is None:
                params = faiss.SearchParameters(sel=sel)
            else:
                params.sel = sel
            params._keep_sel = sel  # noqa: SLF001 - keep the selector alive during search
        scores, ids = _search_with_threads(self._index, q, k, params, self.threads)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


def _search_with_threads(index: Any, q: np.ndarray, k: int, params: Any, threads: int) -> tuple[Any, Any]:
    """One query gains nothing from OpenMP's team but pays its wake-up (measured 1.6 vs 6.9 ms
    p50 on 2 busy cores over 10k vectors), so single-query searches run on `threads` threads."""
    import faiss

    if threads <= 0:
        return index.search(q, k, params=params)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        return index.search(q, k, params=params)
    finally:
        faiss.omp_set_num_threads(before)
