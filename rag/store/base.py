"""Picking a store by database URL. The `Store` Protocol lives in `rag.protocols` (re-exported here).

Two implementations: `LocalStore` (SQLite ledger + FAISS/BM25 folders, the
default, no server) and `PgStore` (PostgreSQL ledger + pgvector HNSW +
full-text search). `rag.retrieve` talks only to this shape, so fusion,
filters and reranking run the same code over either.
"""

from __future__ import annotations

from typing import cast

from rag import registry
from rag.config import Settings
from rag.protocols import Ledger, Searcher, SearchIndex, Store

__all__ = ["Ledger", "SearchIndex", "Searcher", "Store", "open_ledger", "open_store", "store_kind"]


def store_kind(url: str) -> str:
    """Registry name of the store for a database URL: `postgresql` for PostgreSQL, else `local`."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    return "postgresql" if scheme in ("postgresql", "postgres") else "local"


def open_store(settings: Settings, *, embedder_id: str, dim: int) -> Store:
    """The store for `settings.database_url` (see `store_kind`), built through the registry."""
    return cast(Store, registry.create("store", store_kind(settings.database_url), settings,
                                       embedder_id=embedder_id, dim=dim))



def open_ledger(settings: Settings) -> Ledger:
    """The ledger of `settings.database_url` alone, built through the registry (kind `ledger`, the
    store's name): records to list or manage with no embedder loaded and no index read."""
    return cast(Ledger, registry.create("ledger", store_kind(settings.database_url), settings))
