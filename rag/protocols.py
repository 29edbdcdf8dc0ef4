"""One Protocol per swappable part: Embedder, Reranker, LLM, Store (with its Ledger and indexes), Ingestor.

Implementations register by name in `rag.registry` (built-ins and plugins the
same way). This module sits just above the plain data (`rag.types`,
`rag.config`, `rag.filters`, `rag.report`) and imports nothing else from `rag`,
so every layer may depend on it. The old homes (`rag.llm.base.LLM`,
`rag.store.base.Store`) re-export these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.config import Settings
from rag.filters import Filters
from rag.report import IngestReport, Progress
from rag.types import (
    ApiKeyRecord,
    ChunkInfo,
    CollectionInfo,
    CollectionRecord,
    Completion,
    DocumentInfo,
    EvalResultInfo,
    EvalRunInfo,
    GenerationParams,
    Hit,
    Message,
    QueryRecord,
    SourceText,
    StreamEvent,
)


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
class Ledger(Protocol):
    """The store's bookkeeping as plain records: what ingest, eval and the apps read and write besides
    chunks and vectors (registry kind `ledger`; a store exposes its own as `store.ledger`).

    Collections are named, never passed as rows, so a caller needs no session and no ORM model; a
    new store implements this and `Store`, and nothing above `rag.store` changes. Methods that take
    a collection name raise `CollectionNotFoundError` for an unknown one.
    """

    # -- collections and documents ------------------------------------------------------------------
    def collections(self) -> list[CollectionRecord]: ...

    def collection_stats(self) -> list[CollectionInfo]:
        """Every collection with its ok and failed document counts and its chunk count, by name."""
        ...

    def documents(self, collection: str) -> list[DocumentInfo]:
        """Every document of `collection`, ok and failed, by source."""
        ...

    def document(self, collection: str, document_id: int) -> DocumentInfo | None: ...

    def document_states(self, collection: str) -> dict[str, tuple[str, str]]:
        """source -> (content hash, status) of every document, failed ones too (cheaper than `documents`)."""
        ...

    def move_documents(self, collection: str, moves: Sequence[tuple[str, str]]) -> None:
        """Point each (old source, new source) document at its new source; its chunks and vectors stay.
        The collection's stored answers go (they quote the old sources). One transaction."""
        ...

    def document_chunks(self, collection: str, document_id: int) -> list[ChunkInfo]:
        """The document's chunks in reading order (empty when it has none or is not in `collection`)."""
        ...

    def chunks(self, ids: Sequence[int]) -> list[ChunkInfo]:
        """The chunks with these ids that still exist, in no particular order."""
        ...

    # -- ingest runs ---------------------------------------------------------------------------------
    def start_ingest_run(self, collection: str, engine: str) -> int:
        """A new `running` run of `collection` (created if new); returns its id."""
        ...

    def finish_ingest_run(self, run_id: int, report: IngestReport, status: str, error: str | None) -> None:
        """Record the run's outcome, counts and one row per file of `report`."""
        ...

    # -- answers: cache and query log ----------------------------------------------------------------
    def cached_answer(self, key: str) -> dict[str, Any] | None:
        """The stored answer's JSON (and one more hit counted), or None."""
        ...

    def store_answer(self, key: str, collection: str, answer: dict[str, Any]) -> None:
        """Keep `answer` under `key` unless one is already there."""
        ...

    def log_query(self, record: QueryRecord) -> None: ...

    def recent_queries(self, limit: int = 20) -> list[QueryRecord]:
        """The newest query log rows first."""
        ...

    # -- evaluation runs -----------------------------------------------------------------------------
    def create_eval_run(self, **fields: Any) -> int:
        """A new run with `fields` (names in `rag.types.EVAL_RUN_FIELDS`); returns its id."""
        ...

    def update_eval_run(self, run_id: int, **fields: Any) -> None:
        """Set `fields` of a run; NotFoundError when there is no such run."""
        ...

    def eval_run(self, run_id: int) -> EvalRunInfo | None: ...

    def eval_runs(self, limit: int = 50) -> list[EvalRunInfo]:
        """The newest `limit` runs first."""
        ...

    def add_eval_result(self, run_id: int, question_id: str, arm: str, answer: str, metrics: dict[str, Any],
                        detail: dict[str, Any]) -> None:
        """Commit one result now (the unit a resumed run skips); (run, question, arm) is unique."""
        ...

    def eval_results(self, run_id: int) -> list[EvalResultInfo]:
        """The run's results in the order they were written."""
        ...

    def update_eval_result(self, result_id: int, *, metrics: dict[str, Any] | None = None,
                           detail: dict[str, Any] | None = None) -> None:
        """Merge these keys into the stored result's metrics and detail (an LLM judge's scores)."""
        ...

    # -- API keys ------------------------------------------------------------------------------------
    def add_api_key(self, *, name: str, prefix: str, key_hash: str, role: str,
                    collections: Sequence[str]) -> ApiKeyRecord: ...

    def api_keys(self, prefix: str | None = None) -> list[ApiKeyRecord]:
        """Every key by id, revoked ones too; only those with `prefix` when given."""
        ...

    def revoke_api_key(self, key_id: int) -> ApiKeyRecord | None:
        """Mark the key revoked (once); None when there is no such key."""
        ...

    def touch_api_key(self, key_id: int) -> None:
        """Record that the key was just used."""
        ...


@runtime_checkable
class Store(Protocol):
    """Chunks, vectors and indexes of every collection in one database (registry kind `store`), and its
    `ledger` for everything else.

    `allowed_chunk_ids` returns None (no filter) or something this store's own
    searchers understand: an id array (embedded store) or SQL predicates (PostgreSQL).
    `collection` returns this store's own handle of a collection (`id`, `name`, `revision`,
    `chunking_hash` are read by the ingestor), passed back to `write_batch` and friends.
    """

    settings: Settings
    embedder_id: str
    dim: int

    @property
    def ledger(self) -> Ledger: ...

    def collection(self, name: str, *, create: bool = False) -> Any: ...

    def collection_names(self) -> list[str]: ...

    def delete_collection(self, name: str) -> None: ...

    def check_embedder(self, coll: Any) -> None: ...

    def document_hashes(self, coll: Any, sources: Iterable[str] | None = None) -> dict[str, str]: ...

    def cached_vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]: ...

    def write_batch(self, coll: Any, docs: Sequence[Any], *, failed: Sequence[tuple[str, str, str, int]] = (),
                    removed: Sequence[str] = ()) -> int: ...

    def revision(self, coll: Any) -> int: ...

    def rebuild_index(self, name: str) -> dict[str, Any]: ...

    def index(self, name: str) -> SearchIndex: ...

    def index_manifest(self, name: str) -> dict[str, Any] | None:
        """The collection's index manifest (`ledger_revision`, embedder, index kind and parameters) as
        searches see it, without loading the index; None when none is built yet. Eval runs record its
        hash; an ingest rebuilds when its `ledger_revision` lags the ledger (unless `live_index`)."""
        ...

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
