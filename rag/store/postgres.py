"""The PostgreSQL store: the same ledger (same Alembic migrations) plus pgvector and full-text search.

Use it by pointing the database URL at PostgreSQL, e.g.
`RAG_DB_URL=postgresql+psycopg://user:pw@host:5432/rag`. Reads share the
embedded store's ledger code (`rag.store.sql_reads`, plain SQLAlchemy); writes are PostgreSQL
upserts (`INSERT ... ON CONFLICT`) in one transaction per batch, so several
ingestion workers can write one collection at once. PostgreSQL keeps the
HNSW and GIN indexes current on every insert: there is no index folder to
rebuild, and a reader never sees a half-written batch.

Example:
    >>> store = PgStore(Settings(db_url="postgresql+psycopg://localhost/rag"), embedder_id="m", dim=384)
    >>> store.index("handbook").dense.search(qvec, 10)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from rag.config import Settings
from rag.errors import ConfigError, DependencyMissingError, RagError
from rag.filters import Filters
from rag.store import pg_schema as sch
from rag.store.ledger import Collection
from rag.store.pg_bm25 import Bm25Stats
from rag.store.pg_filters import PgFilter, to_sql
from rag.store.pg_search import PgDense, PgIndex, PgSparse
from rag.store.pg_write import write_batch
from rag.store.sql_reads import SqlReads

HNSW_M = 16  # pgvector's defaults; docs/scaling.md sizes memory from them
HNSW_EF_CONSTRUCTION = 64


def pg_url(url: str) -> str:
    """SQLAlchemy URL with the psycopg 3 driver (plain `postgresql://` would ask for psycopg2)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ConfigError(f"database URL {url!r} is not PostgreSQL: use postgresql+psycopg://USER:PW@HOST/DB")
    return f"postgresql+psycopg://{rest}"


class PgStore(SqlReads):
    """Ledger, pgvector HNSW and full-text index of every collection in one PostgreSQL database."""

    live_index = True  # the database maintains both indexes on write: nothing to rebuild after ingest

    def __init__(self, settings: Settings, *, embedder_id: str, dim: int) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise DependencyMissingError("the PostgreSQL store", "pg", "psycopg") from exc
        # ledger, collections and reads: the same SQLAlchemy code serves both dialects
        super().__init__(settings.model_copy(update={"db_url": pg_url(settings.database_url)}),
                         embedder_id=embedder_id, dim=dim)
        self._indexed: set[int] = set()
        self._bm25 = Bm25Stats()  # N, avgdl and df per (collection, revision): shared by every search
        if not self._has_vector_table():
            raise RagError(f"{self.settings.database_url!r} lacks the {sch.VECTORS_TABLE} table of migration "
                           f"0005: run `rag db upgrade` as a role allowed to CREATE EXTENSION vector")

    def _has_vector_table(self) -> bool:
        with self.sessions() as s:
            return bool(s.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": sch.VECTORS_TABLE}))

    def delete_collection(self, name: str) -> None:
        coll = self.collection(name)
        with self.sessions.begin() as s:
            s.execute(text(f"DROP INDEX IF EXISTS {sch.hnsw_index_name(coll.id)}"))
        self._indexed.discard(coll.id)
        self._delete_collection_rows(coll)  # chunks and vectors go by ON DELETE CASCADE

    # -- writes ------------------------------------------------------------------------
    def write_batch(self, coll: Collection, docs: Sequence[Any], *,
                    failed: Sequence[tuple[str, str, str, int]] = (), removed: Sequence[str] = ()) -> int:
        """Upsert `docs` (with a vector for every chunk), record failures, delete `removed`; one transaction."""
        return write_batch(self, coll, docs, failed=failed, removed=removed)

    # -- index -------------------------------------------------------------------------
    def _ensure_hnsw(self, coll: Collection) -> None:
        """Create the collection's partial HNSW index once (an advisory lock serialises creators)."""
        if coll.id in self._indexed:
            return
        name = sch.hnsw_index_name(coll.id)
        with self.sessions.begin() as s:
            if not s.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}):
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x7261670000 + int(coll.id)})
                s.execute(text(
                    f"CREATE INDEX IF NOT EXISTS {name} ON {sch.VECTORS_TABLE} USING hnsw "
                    f"((embedding::vector({int(self.dim)})) vector_ip_ops) "
                    f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
                    f"WHERE collection_id = {int(coll.id)}"))
        self._indexed.add(coll.id)

    def manifest(self, coll: Collection) -> dict[str, Any]:
        return {"collection": coll.name, "ledger_revision": self.revision(coll), "embedder_id": self.embedder_id,
                "dim": self.dim, "chunks": self.chunk_count(coll.name),
                "dense": {"kind": "pgvector-hnsw", "hnsw_m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                          "ef_search": self._ef_search()},
                "sparse": self._sparse_manifest()}

    def _sparse_manifest(self) -> dict[str, Any]:
        cfg = self.settings.index
        out: dict[str, Any] = {"kind": "postgres-fts", "config": sch.TS_CONFIG, "rank": cfg.pg_sparse}
        if cfg.pg_sparse == "bm25":
            out.update({"k1": cfg.bm25_k1, "b": cfg.bm25_b})
        return out

    def _ef_search(self) -> int:
        return max(40, int(self.settings.index.hnsw_ef_search), int(self.settings.retrieval.fetch_k))

    def rebuild_index(self, name: str) -> dict[str, Any]:
        """Rebuild the HNSW index from scratch (REINDEX) and refresh planner statistics."""
        t0 = time.perf_counter()
        coll = self.collection(name)
        self._ensure_hnsw(coll)
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"REINDEX INDEX {sch.hnsw_index_name(coll.id)}"))
            conn.execute(text(f"ANALYZE {sch.VECTORS_TABLE}"))
        full = self.manifest(coll)
        self._record_build(coll, full, sch.hnsw_index_name(coll.id), time.perf_counter() - t0)
        return full

    def index_manifest(self, name: str) -> dict[str, Any]:
        """What `manifest` says now: the tables are the index, so it is always current."""
        return self.manifest(self.collection(name))

    def index(self, name: str) -> PgIndex:
        """Searchers over the live tables; PostgreSQL keeps them current, so never stale."""
        coll = self.collection(name)
        self.check_embedder(coll)
        self._ensure_hnsw(coll)
        rev, cfg = int(coll.revision or 0), self.settings.index  # the row just read carries it
        return PgIndex(dense=PgDense(self.sessions, coll.id, self.dim, self._ef_search()),
                       sparse=PgSparse(self.sessions, coll.id, rank=cfg.pg_sparse, revision=rev, stats=self._bm25,
                                       k1=cfg.bm25_k1, b=cfg.bm25_b),
                       manifest={"collection": name, "ledger_revision": rev})

    def allowed_chunk_ids(self, name: str, filters: Filters | None) -> PgFilter | None:
        """The filter as SQL predicates for this store's searchers (None: no filter)."""
        self.collection(name)  # a clear error for an unknown collection
        return to_sql(filters)
