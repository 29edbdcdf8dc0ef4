"""One Protocol per swappable part: Embedder, Reranker, LLM, Store (and its indexes), Ingestor.

Implementations register by name in `rag.registry` (built-ins and plugins the
same way). This module sits just above the plain data (`rag.types`,
`rag.config`, `rag.filters`, `rag.report`) and imports nothing else from `rag`,
so every layer may depend on it. The old homes (`rag.llm.base.LLM`,
`rag.store.base.Store`) re-export these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from rag.config import Settings
from rag.filters import Filters
from rag.report import IngestReport, Progress
from rag.types import Completion, GenerationParams, Hit, Message, SourceText, StreamEvent

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker


@runtime_checkable
class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer that chunking needs."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors.

    `model_id` names the vector space: two embedders with the same id must
    give interchangeable vectors (an int8 backend of the same model does not
    share an id with the fp32 one, so the manifest tells them apart).
    """

    model_id: str
    dim: int
    max_tokens: int
    """Most content tokens one input may hold before the model truncates it."""

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each content token (no special tokens)."""
        ...

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...


@runtime_checkable
class Reranker(Protocol):
    """Re-orders retrieved hits by a slower, better score (registry kind `reranker`).

    One that cannot load its model returns `hits` unchanged (and says why once in the log),
    unless the settings require it.
    """

    def rerank(self, query: str, hits: Sequence[Hit], depth: int | None = None) -> list[Hit]:
        """The first `depth` hits re-ordered (their `ranks`/`scores` gain a "rerank" entry), then the rest."""
        ...


@runtime_checkable
class LLM(Protocol):
    """A chat model (registry kind `llm`). `name` identifies the configured provider (e.g. "openai:gpt-4o-mini").

    A provider returns a `Completion` or raises `rag.llm.base.ProviderError`, whose `retryable`
    flag tells the fallback chain whether to retry or move on.
    """

    name: str
    model: str
    context_window: int
    """Tokens the model accepts, prompt and answer together."""

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in this model's own tokenizer (an estimate where none is available)."""
        ...

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion: ...

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        """Yields `Delta`s, then exactly one `Completion` (with the whole text)."""
        ...


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
    """Ledger and indexes of every collection in one database (registry kind `store`).

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

    def index(self, name: str) -> SearchIndex: ...

    def allowed_chunk_ids(self, name: str, filters: Filters | None) -> Any: ...

    def hits(self, ids: Sequence[int], scores: Sequence[float], ranks: dict[str, dict[int, int]],
             raw: dict[str, dict[int, float]]) -> list[Hit]: ...

    def chunk_count(self, name: str) -> int: ...


@runtime_checkable
class Ingestor(Protocol):
    """Loads, chunks, embeds and writes a batch into a store (registry kind `ingestor`).

    Built with `(settings, embedder, store, **engine_options)`; `RAG.ingest(engine=NAME)` picks one.
    """

    def ingest_paths(self, paths: Iterable[str | Path], *, collection: str, glob: str | None = None,
                     prune: bool = False, force: bool = False,
                     progress: Progress | None = None) -> IngestReport: ...

    def ingest_texts(self, docs: Iterable[SourceText], *, collection: str, force: bool = False,
                     progress: Progress | None = None) -> IngestReport: ...
