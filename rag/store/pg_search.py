"""Dense (pgvector HNSW) and sparse (PostgreSQL full-text) retrievers over one collection.

Both return `(ids, scores)` arrays like the FAISS and BM25 indexes, so fusion
and reranking above them are unchanged.

Sparse query: `websearch_to_tsquery` ANDs every term, so a natural-language
question matches only passages holding all its words and recall collapses.
We analyse the question with the same `to_tsvector('english', ...)` as the
column (stemming, stopwords) and OR the resulting lexemes (`'a' | 'b' | ...`,
cast straight to tsquery so stems are not re-stemmed); the GIN index picks
the passages holding any of them. By default those candidates are ranked by
BM25 computed in SQL (`rag.store.pg_bm25`); `ts_rank_cd`, which has no IDF
and ranks clearly worse on its own, stays selectable (`index.pg_sparse`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from rag.store.pg_bm25 import Bm25Stats, bm25_search
from rag.store.pg_filters import PgFilter
from rag.store.pg_schema import TS_CONFIG, VECTORS_TABLE, vector_literal

_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32))

_OR_QUERY = (f"(SELECT string_agg(quote_literal(l), ' | ') FROM unnest(tsvector_to_array("
             f"to_tsvector('{TS_CONFIG}', CAST(:q AS text)))) AS l)::tsquery")


def _where(allowed: Any, params: dict[str, Any], chunk_col: str) -> tuple[str, str]:
    """JOIN and WHERE text for `allowed`: None, a PgFilter, or an array of chunk ids."""
    if allowed is None:
        return "", ""
    if isinstance(allowed, PgFilter):
        params.update(allowed.params)
        return (f" JOIN chunks fc ON fc.id = {chunk_col} JOIN documents d ON d.id = fc.document_id",
                f" AND {allowed.sql}")
    params["allowed_ids"] = [int(i) for i in np.asarray(allowed).ravel()]
    return "", f" AND {chunk_col} = ANY(:allowed_ids)"


def _arrays(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return _EMPTY
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float32))


def _empty_allowed(allowed: Any) -> bool:
    return allowed is not None and not isinstance(allowed, PgFilter) and len(allowed) == 0


@dataclass(frozen=True)
class PgDense:
    """Inner product over normalised vectors: HNSW when unfiltered, exact inside a filter.

    pgvector 0.6 applies a WHERE after the HNSW scan, so a selective filter
    would return fewer than k hits; a filtered search therefore ranks every
    vector that passes the filter (exact), as FAISS does with its id selector.
    """

    sessions: sessionmaker[Session]
    collection_id: int
    dim: int
    ef_search: int = 100

    def search(self, query: np.ndarray, k: int, allowed: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0 or _empty_allowed(allowed):
            return _EMPTY
        params: dict[str, Any] = {"qv": vector_literal(query), "k": int(k)}
        join, where = _where(allowed, params, "v.chunk_id")
        dist = f"(v.embedding::vector({self.dim}) <#> CAST(:qv AS vector({self.dim})))"
        order = dist if allowed is None else f"{dist} + 0"  # `+ 0`: not the indexed expression, so exact
        sql = (f"SELECT v.chunk_id, -{dist} FROM {VECTORS_TABLE} v{join}"
               f" WHERE v.collection_id = {int(self.collection_id)}{where} ORDER BY {order} LIMIT :k")
        with self.sessions.begin() as s:
            if allowed is None:
                # HNSW returns at most ef_search rows; and force the index on a not-yet-analysed table.
                s.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(self.ef_search), int(k))}"))
                s.execute(text("SET LOCAL enable_seqscan = off"))
            rows = s.execute(text(sql), params).all()
        return _arrays(rows)


@dataclass(frozen=True)
class PgSparse:
    """Full-text search: GIN candidates (any analysed query term), ranked by BM25 or `ts_rank_cd`.

    `revision` is the ledger revision `PgStore.index` read; BM25's collection
    statistics are cached under it in `stats` (one object per store, shared
    by every PgSparse it hands out).
    """

    sessions: sessionmaker[Session]
    collection_id: int
    rank: Literal["bm25", "ts_rank_cd"] = "bm25"
    revision: int = 0
    stats: Bm25Stats = field(default_factory=Bm25Stats)
    k1: float = 1.2
    b: float = 0.75
    normalization: int = 0

    def search(self, query: str, k: int, allowed: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0 or _empty_allowed(allowed):
            return _EMPTY
        params: dict[str, Any] = {}
        join, where = _where(allowed, params, "c.id")
        with self.sessions() as s:
            rows: Sequence[Any]
            if self.rank == "bm25":
                rows = bm25_search(s, self.stats, collection_id=self.collection_id, revision=self.revision,
                                   query=query, k=k, k1=self.k1, b=self.b, join=join, where=where, params=params)
            else:
                rows = s.execute(text(self._ts_rank_sql(join, where)), {**params, "q": query, "k": int(k)}).all()
        return _arrays(rows)

    def _ts_rank_sql(self, join: str, where: str) -> str:
        return (f"WITH q AS (SELECT {_OR_QUERY} AS tq)"
                f" SELECT c.id, ts_rank_cd(c.tsv, q.tq, {int(self.normalization)}) AS s FROM chunks c CROSS JOIN q"
                f"{join} WHERE c.collection_id = {int(self.collection_id)} AND c.tsv @@ q.tq{where}"
                f" ORDER BY s DESC, c.id LIMIT :k")


@dataclass(frozen=True)
class PgIndex:
    """What `PgStore.index` returns: the same shape as the embedded store's LoadedIndex."""

    dense: PgDense
    sparse: PgSparse
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def revision(self) -> int:
        return int(self.manifest.get("ledger_revision", 0))
