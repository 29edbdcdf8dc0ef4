"""The store boundary: picking a store by database URL, and the names every store and its users share.

The `Store` and `Ledger` Protocols live in `rag.protocols` (re-exported here). Two
implementations: `LocalStore` (SQLite ledger + FAISS/BM25 folders, the default, no server)
and `PgStore` (PostgreSQL ledger + pgvector HNSW + full-text search). `rag.retrieve` talks
only to this shape, so fusion, filters and reranking run the same code over either.
Ingest, eval and the apps import from `rag.store` only the names in `__all__` here (a test
checks it), so a third store is one new module plus one registry line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from rag import registry
from rag.config import Settings
from rag.errors import ConfigError
from rag.protocols import Ledger, Searcher, SearchIndex, Store

__all__ = ["DocumentWrite", "Ledger", "SearchIndex", "Searcher", "Store", "check_collection_name", "manifest_hash",
           "open_ledger", "open_store", "store_kind", "text_hash"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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


def text_hash(text: str) -> str:
    """The key of a chunk's vector: stores cache vectors by it, so unchanged text is never embedded twice."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_hash(manifest: dict[str, Any]) -> str:
    """A stable hash of an index manifest (JSON with sorted keys): what eval runs and index builds record."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def embedder_env(embedder_id: str) -> str:
    """The settings that select the embedder with this id (`model#backend` for other backends)."""
    model, _, backend = embedder_id.partition("#")
    return f"RAG_EMBEDDER__MODEL={model} RAG_EMBEDDER__BACKEND={backend or 'sentence-transformers'}"


def check_collection_name(name: str) -> str:
    """`name` if every store can hold it (it becomes a folder name and a URL segment), else ConfigError."""
    if not _NAME.match(name):
        raise ConfigError(
            f"collection name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit"
        )
    return name


@dataclass
class DocumentWrite:
    """A document's new version, ready to replace the old one in one transaction (`Store.write_batch`)."""

    source: str
    content_hash: str
    media_type: str
    size_bytes: int
    title: str | None
    metadata: dict[str, Any]
    chunks: Sequence[Any]  # rag.types.ChunkDraft
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # text hash -> vector, new ones only
