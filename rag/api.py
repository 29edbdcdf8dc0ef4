"""The public Python API: the one object a product embeds.

Example:
    >>> from rag import RAG
    >>> rag = RAG.open(".rag")
    >>> rag.ingest(["docs/"], collection="handbook").summary()
    {'ok': 12, 'skipped': 0, 'failed': 0, 'removed': 0}
    >>> for hit in rag.search("how are citations checked?", collection="handbook", k=3):
    ...     print(hit.source, hit.page, hit.score)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, overload

from rag import registry
from rag.config import Settings
from rag.embed import make_embedder
from rag.errors import ConfigError, NotFoundError
from rag.filters import Filters
from rag.retrieve import RetrievalRequest, retrieve
from rag.store.base import Ledger, Store, open_ledger, open_store
from rag.types import CollectionInfo, DocumentInfo, Hit, SourceText
from rag.vector_space import embedder_settings_for

if TYPE_CHECKING:
    from rag.answer import Answer, AnswerStream
    from rag.pipeline import Answerer
    from rag.protocols import Embedder, Ingestor, Reranker
    from rag.report import IngestReport, Progress


class RAG:
    """Ingest, search and (later) ask over collections in one data home.

    Heavy parts (the embedding model, index files) load on first use, so
    `RAG.open` is cheap.
    """

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, create: bool = True) -> None:
        if not create:
            require_home(settings)
        if embedder is None:  # an old home keeps the vector space its collections were built in
            chosen = embedder_settings_for(settings)
            if chosen is not settings.embedder:
                settings = settings.model_copy(update={"embedder": chosen})
        self.settings = settings
        self.embedder: Embedder = embedder if embedder is not None else make_embedder(settings.embedder)
        self.embedder_from_settings = embedder is None  # another process can open the same RAG from `settings`
        self._store: Store | None = None
        self._ledger: Ledger | None = None
        self._reranker: Reranker | None = None
        self._answerer: Answerer | None = None

    @classmethod
    def open(cls, home: str | Path | None = None, *, settings: Settings | None = None,
             embedder: Embedder | None = None, create: bool = True, **overrides: object) -> RAG:
        """Open (creating if needed) a data home; `overrides` are Settings fields.

        Pass an already-loaded `embedder` to share one model between several homes. With
        `create=False` a missing data home raises NotFoundError naming it, and nothing is created
        (what read-only commands want).
        """
        if settings is None:
            settings = Settings(**({"home": Path(home)} if home is not None else {}), **overrides)
        elif home is not None:
            settings = settings.model_copy(update={"home": Path(home)})
        return cls(settings, embedder=embedder, create=create)

    @property
    def store(self) -> Store:
        """LocalStore, or PgStore when the database URL is PostgreSQL (see rag.store.base.open_store)."""
        if self._store is None:
            self._store = open_store(self.settings, embedder_id=self.embedder.model_id, dim=self.embedder.dim)
        return self._store

    @property
    def ledger(self) -> Ledger:
        """The ledger alone, for listing: no embedding model is loaded and no index is read.

        It is the store's own once the store is open; until then one opened from the settings
        (`rag.store.base.open_ledger`) on the same database.
        """
        if self._store is not None:
            return self._store.ledger
        if self._ledger is None:
            self._ledger = open_ledger(self.settings)
        return self._ledger

    def _ingestor(self, engine: str = "local", **options: object) -> Ingestor:
        return cast("Ingestor", registry.create("ingestor", engine, self.settings, self.embedder, self.store,
                                                **options))

    def ingest(self, paths: str | Path | Iterable[str | Path], *, collection: str, glob: str | None = None,
               prune: bool = False, force: bool = False, progress: Progress | None = None, engine: str = "local",
               **engine_options: object) -> IngestReport:
        """Load, chunk, embed and index files; unchanged files are skipped. Returns the run report.

        `engine="ray"` runs load, chunk and embed on Ray Data (`address=`, `workers=`).
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        return self._ingestor(engine, **engine_options).ingest_paths(paths, collection=collection, glob=glob, prune=prune,
                                             force=force, progress=progress)

    def ingest_texts(self, docs: Iterable[SourceText], *, collection: str, force: bool = False,
                     progress: Progress | None = None, engine: str = "local",
                     **engine_options: object) -> IngestReport:
        """Ingest already-loaded texts (a JSONL corpus, a database export)."""
        return self._ingestor(engine, **engine_options).ingest_texts(docs, collection=collection, force=force, progress=progress)

    @property
    def reranker(self) -> Reranker:
        """The configured reranker (built on first use; its model loads on the first rerank)."""
        if self._reranker is None:
            self._reranker = cast("Reranker", registry.create("reranker", self.settings.rerank.kind,
                                                                   self.settings.rerank))
        return self._reranker

    def search(self, query: str, *, collection: str, k: int | None = None, mode: str | None = None,
               fusion: str | None = None, filters: Filters | None = None, fetch_k: int | None = None,
               dense_weight: float | None = None, rerank: bool | None = None,
               rerank_depth: int | None = None) -> list[Hit]:
        """Hybrid (default), dense or BM25 search; each hit carries every retriever's rank and score.

        `rerank=True` re-scores the fused top `rerank_depth` with the cross-encoder; if it cannot
        be loaded, a warning is logged once and the fused order is returned.
        """
        check_query_args(k=k, fetch_k=fetch_k, dense_weight=dense_weight, rerank_depth=rerank_depth,
                         filters=filters)
        req = RetrievalRequest.make(query, collection, self.settings.retrieval, self.settings.rerank, k=k,
                                    mode=mode, fusion=fusion, filters=filters, fetch_k=fetch_k,
                                    dense_weight=dense_weight, rerank=rerank, rerank_depth=rerank_depth)
        return retrieve(req, self.store, self.embedder, self.reranker if req.rerank else None)

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            from rag.pipeline import Answerer

            self._answerer = Answerer(self.settings, self.store, self.embedder)
        return self._answerer

    @overload
    def ask(self, question: str, *, collection: str, k: int | None = None, providers: list[str] | None = None,
            stream: Literal[False] = False, use_cache: bool = True, mode: str | None = None,
            fusion: str | None = None, filters: Filters | None = None, rerank: bool | None = None) -> Answer: ...

    @overload
    def ask(self, question: str, *, collection: str, k: int | None = None, providers: list[str] | None = None,
            stream: Literal[True], use_cache: bool = True, mode: str | None = None,
            fusion: str | None = None, filters: Filters | None = None,
            rerank: bool | None = None) -> AnswerStream: ...

    def ask(self, question: str, *, collection: str, k: int | None = None, providers: list[str] | None = None,
            stream: bool = False, use_cache: bool = True, mode: str | None = None, fusion: str | None = None,
            filters: Filters | None = None, rerank: bool | None = None) -> Answer | AnswerStream:
        """Answer from the collection's documents, citing numbered sources; checks every citation.

        Returns an `Answer`, or with `stream=True` an `AnswerStream` that yields text as it is
        generated and holds the checked `Answer` in `.answer` once iterated. `providers` picks and
        orders configured providers (default: all, in configured order). `ask_stream` is the
        typed spelling of `stream=True`.
        """
        check_query_args(k=k, filters=filters)
        if providers is not None and (isinstance(providers, str) or not all(isinstance(p, str) for p in providers)):
            raise ConfigError(f"providers={providers!r} must be a list of provider names, e.g. ['extractive']")
        req = RetrievalRequest.make(question, collection, self.settings.retrieval, self.settings.rerank, k=k,
                                    mode=mode, fusion=fusion, filters=filters, rerank=rerank)
        hits = retrieve(req, self.store, self.embedder, self.reranker if req.rerank else None)
        return self.answerer.run(req, hits, providers=providers, use_cache=use_cache, stream=stream)

    def ask_stream(self, question: str, *, collection: str, k: int | None = None,
                   providers: list[str] | None = None, use_cache: bool = True, mode: str | None = None,
                   fusion: str | None = None, filters: Filters | None = None,
                   rerank: bool | None = None) -> AnswerStream:
        """`ask(..., stream=True)`: yields text as it is generated; `.answer` holds the checked Answer."""
        return self.ask(question, collection=collection, k=k, providers=providers, stream=True,
                        use_cache=use_cache, mode=mode, fusion=fusion, filters=filters, rerank=rerank)

    def collections(self) -> list[CollectionInfo]:
        """Every collection with its document and chunk counts (no model loaded)."""
        return self.ledger.collection_stats()

    def documents(self, collection: str) -> list[DocumentInfo]:
        """The ledger's documents of `collection`, with status, chunk count and error (no model loaded)."""
        return self.ledger.documents(collection)

    def delete_collection(self, name: str) -> None:
        self.store.delete_collection(name)

    def delete_document(self, collection: str, document_id: int) -> str:
        """Remove one document and its chunks (deleted from the index too); returns its source.

        The source file itself is left alone: it may be the user's own file.
        """
        coll = self.store.collection(collection)
        doc = self.store.ledger.document(collection, document_id)
        if doc is None:
            raise NotFoundError(f"no document with id {document_id} in collection {collection!r}; "
                                f"`rag docs {collection}` lists them")
        self.store.write_batch(coll, [], removed=[doc.source_uri])  # marks its chunks deleted in the index: no rebuild
        return doc.source_uri

    def reindex(self, collection: str) -> dict[str, object]:
        """Rebuild the index from the ledger (after a crash, or to change index settings); returns the new
        snapshot's manifest (`chunks`, `ledger_revision`, the embedder, the segments)."""
        return self.store.rebuild_index(collection)


def check_query_args(*, k: object = None, fetch_k: object = None, dense_weight: object = None,
                     rerank_depth: object = None, filters: object = None) -> None:
    """Refuse what retrieval would silently misread (k=-1 slicing from the end, a weight above 1)."""
    for name, value in (("k", k), ("fetch_k", fetch_k), ("rerank_depth", rerank_depth)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name}={value!r} must be a whole number of at least 1")
    if dense_weight is not None and (isinstance(dense_weight, bool) or not isinstance(dense_weight, (int, float))
                                     or not 0.0 <= float(dense_weight) <= 1.0):
        raise ConfigError(f"dense_weight={dense_weight!r} must be between 0 (BM25 only) and 1 (dense only)")
    if filters is not None and not isinstance(filters, Filters):
        raise ConfigError(f"filters={filters!r} must be a rag.Filters, e.g. Filters(tags=('hr',))")


def require_home(settings: Settings) -> None:
    """NotFoundError when the SQLite data home does not exist yet (read-only use creates nothing)."""
    if settings.db_url:
        return  # a server database: the store reports what is missing there
    home = settings.home.resolve()
    if not (home / "rag.db").is_file():
        raise NotFoundError(f"no data home at {home} (nothing ingested there yet): run `rag ingest PATH "
                            "--collection NAME` first, or point at another data home with --home DIR or RAG_HOME")
