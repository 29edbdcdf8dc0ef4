"""The store Protocol: ledger + dense + sparse index behind one shape, and picking one by URL.

Two implementations: `LocalStore` (SQLite ledger + FAISS/BM25 folders, the
default, no server) and `PgStore` (PostgreSQL ledger + pgvector HNSW +
full-text search). `rag.retrieve` talks only to this shape, so fusion,
filters and reranking run the same code over either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from rag import registry
from rag.config import Settings
from rag.filters import Filters
from rag.types import Hit


class Searcher(Protocol):
    """One retriever over one collection; `allowed` is whatever the same store's `allowed_chunk_ids` gave."""

    def search(self, query: Any, k: int, allowed: Any = None) -> tuple[np.ndarray, np.ndarray]: ...


class SearchIndex(Protocol):
    """What `store.index(name)` returns: the two retrievers and the ledger revision they reflect."""

    @property
    def dense(self) -> Searcher: ...

    @property
    def sparse(self) -> Searcher: ...

    @property
    def revision(self) -> int: ...


@runtime_checkable
class Store(Protocol):
    """Ledger and indexes of every collection in one database.

    `allowed_chunk_ids` returns None (no filter) or something this store's own
    searchers understand: an id array (embedded store) or SQL predicates (PostgreSQL).
    """

    settings: Settings
    embedder_id: str
    dim: int
    engine: Engine
    sessions: sessionmaker[Session]

    def collection(self, name: str, *, create: bool = False) -> Any: ...

    def collection_names(self) -> list[str]: ...

    def delete_collection(self, name: str) -> None: ...

    def check_embedder(self, coll: Any) -> None: ...

    def document_hashes(self, coll: Any) -> dict[str, str]: ...

    def documents(self, name: str) -> list[Any]: ...

    def cached_vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]: ...

    def write_batch(self, coll: Any, docs: Sequence[Any], *, failed: Sequence[tuple[str, str, str, int]] = (),
                    removed: Sequence[str] = ()) -> int: ...

    def revision(self, coll: Any) -> int: ...

    def rebuild_index(self, name: str) -> dict[str, Any]: ...

    def index(self, name: str) -> Any: ...

    def allowed_chunk_ids(self, name: str, filters: Filters | None) -> Any: ...

    def hits(self, ids: Sequence[int], scores: Sequence[float], ranks: dict[str, dict[int, int]],
             raw: dict[str, dict[int, float]]) -> list[Hit]: ...

    def chunk_count(self, name: str) -> int: ...


def store_kind(url: str) -> str:
    """Registry name of the store for a database URL: `postgresql` for PostgreSQL, else `local`."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    return "postgresql" if scheme in ("postgresql", "postgres") else "local"


def open_store(settings: Settings, *, embedder_id: str, dim: int) -> Store:
    """The store for `settings.database_url` (see `store_kind`), built through the registry."""
    return registry.create("store", store_kind(settings.database_url), settings,  # type: ignore[no-any-return]
                           embedder_id=embedder_id, dim=dim)


def _local(settings: Settings, *, embedder_id: str, dim: int) -> Store:
    from rag.store.local import LocalStore

    return LocalStore(settings, embedder_id=embedder_id, dim=dim)


def _postgres(settings: Settings, *, embedder_id: str, dim: int) -> Store:
    from rag.store.postgres import PgStore

    return PgStore(settings, embedder_id=embedder_id, dim=dim)


registry.register("store", "local", _local)
registry.register("store", "postgresql", _postgres)
