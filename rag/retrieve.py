"""retrieve(): over-fetch from each retriever inside the filter, fuse, attach text last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rag import fusion
from rag.config import RerankSettings, RetrievalSettings
from rag.errors import ConfigError
from rag.filters import Filters
from rag.priority import searching
from rag.protocols import Embedder, Reranker, SearchIndex, Store
from rag.types import Hit

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class RetrievalRequest:
    """One query's knobs; unset fields take the Settings defaults."""

    query: str
    collection: str
    k: int
    mode: Mode
    fusion: Literal["rrf", "convex"]
    fetch_k: int
    rrf_k: int
    dense_weight: float
    filters: Filters | None = None
    normalization: Literal["zero", "minmax"] = "zero"
    rerank: bool = False
    rerank_depth: int = 20

    @classmethod
    def make(cls, query: str, collection: str, cfg: RetrievalSettings, rerank_cfg: RerankSettings | None = None,
             **overrides: Any) -> RetrievalRequest:
        rr = rerank_cfg or RerankSettings()
        fields: dict[str, Any] = {"k": cfg.k, "mode": cfg.mode, "fusion": cfg.fusion, "fetch_k": cfg.fetch_k,
                                  "rrf_k": cfg.rrf_k, "dense_weight": cfg.dense_weight, "filters": None,
                                  "normalization": cfg.normalization, "rerank": rr.enabled, "rerank_depth": rr.depth}
        fields.update({key: v for key, v in overrides.items() if v is not None})
        if fields["mode"] not in ("hybrid", "dense", "bm25"):
            raise ConfigError(f"mode {fields['mode']!r} is not one of hybrid, dense, bm25")
        if fields["fusion"] not in ("rrf", "convex"):
            raise ConfigError(f"fusion {fields['fusion']!r} is not one of rrf, convex")
        if not query.strip():
            raise ConfigError("the query is empty")
        return cls(query=query, collection=collection, **fields)


def run_retrievers(req: RetrievalRequest, index: SearchIndex, embedder: Embedder,
                   allowed: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each retriever's own top `fetch_k` (ids, scores) inside the allowed set.

    The query is embedded and BM25 runs before the dense search: a store may still be resolving
    the filter (the embedded store's SQL runs in another thread), and neither needs it until BM25's
    last step, while the dense search needs it first.
    """
    fetch = max(req.fetch_k, req.k)
    dense = req.mode in ("hybrid", "dense")
    query = embedder.encode_query(req.query) if dense else None
    bm25 = index.sparse.search(req.query, fetch, allowed) if req.mode in ("hybrid", "bm25") else None
    runs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if query is not None:
        runs["dense"] = index.dense.search(query, fetch, allowed)
    if bm25 is not None:
        runs["bm25"] = bm25
    return runs


def fuse(req: RetrievalRequest, runs: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(runs) == 1:
        return next(iter(runs.values()))
    if req.fusion == "convex":
        return fusion.convex(runs, {"dense": req.dense_weight, "bm25": 1.0 - req.dense_weight}, req.normalization)
    return fusion.rrf(runs, k=req.rrf_k)


def retrieve(req: RetrievalRequest, store: Store, embedder: Embedder, reranker: Reranker | None = None) -> list[Hit]:
    """Top k hits with every retriever's rank and score; reranked when asked and available."""
    with searching():  # writes in this process step aside meanwhile (rag.priority)
        return _retrieve(req, store, embedder, reranker)


def _retrieve(req: RetrievalRequest, store: Store, embedder: Embedder, reranker: Reranker | None) -> list[Hit]:
    index = store.index(req.collection)
    allowed = store.allowed_chunk_ids(req.collection, req.filters)
    runs = run_retrievers(req, index, embedder, allowed)
    ids, scores = fuse(req, runs)
    n = max(req.k, req.rerank_depth) if req.rerank and reranker is not None else req.k
    ids, scores = ids[:2 * n], scores[:2 * n]  # spares: chunks deleted after the snapshot are dropped by hits()
    ranks = {name: {int(c): r + 1 for r, c in enumerate(rids)} for name, (rids, _s) in runs.items()}
    raw = {name: {int(c): float(v) for c, v in zip(rids, rs, strict=True)} for name, (rids, rs) in runs.items()}
    hits = store.hits(ids.tolist(), scores.tolist(), ranks, raw)[:n]
    if req.rerank and reranker is not None:
        hits = reranker.rerank(req.query, hits, req.rerank_depth)
    return hits[:req.k]
