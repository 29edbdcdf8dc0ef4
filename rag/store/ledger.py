"""SQLAlchemy models: the only schema. Alembic migrations create it.

The ledger is the source of truth. Index folders are derived from it and
carry the ledger revision they were built from, so a stale or half-written
index is detected and rebuilt rather than trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    embedder_id: Mapped[str | None] = mapped_column(String(512))
    chunking_hash: Mapped[str | None] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    documents: Mapped[list[Document]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True
    )


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "source_uri", name="uq_document_source"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    source_uri: Mapped[str] = mapped_column(String(2048))
    content_hash: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    title: Mapped[str | None] = mapped_column(String(1024))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # metadata["modified"] in UTC when it parses (rag.store.doc_fields.modified_at): date filters use an index
    modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # source_uri reversed, so a glob like "*.pdf" is a range on an index (each insert writes it; a move rewrites it)
    source_rev: Mapped[str | None] = mapped_column(String(2048))

    collection: Mapped[Collection] = relationship(back_populates="documents")
    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Chunk.ordinal",
    )


class Chunk(Base):
    """One indexed passage. Its `id` is also its id in the FAISS and BM25 indexes."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("document_id", "ordinal", name="uq_chunk_ordinal"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    heading_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_count: Mapped[int] = mapped_column(Integer)

    document: Mapped[Document] = relationship(back_populates="chunks")


class DocumentTag(Base):
    """One row per tag of an ok document (`metadata["tags"]`, a string or a list of strings).

    Written with the document, deleted with it (ON DELETE CASCADE), so a tag filter is an
    index lookup on (collection_id, tag) instead of a JSON scan of every document.
    """

    __tablename__ = "document_tags"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))


class DocumentMeta(Base):
    """One row per top-level metadata key of an ok document, its value in canonical text form.

    `rag.store.doc_fields` writes it; a metadata filter is then an index lookup on
    (collection_id, key, value) instead of a JSON scan of every document.
    """

    __tablename__ = "document_metadata"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))


class FieldBits(Base):
    """The ok documents found under one filter value, as blocks of a compressed bitmap (`rag.store.field_bits`).

    One row per (collection, field, block of 65,536 document ids); maintained by the embedded
    store in the transactions that insert and delete documents, gone with the collection.
    """

    __tablename__ = "field_bits"
    __table_args__ = {"sqlite_with_rowid": False}

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    field: Mapped[str] = mapped_column(Text, primary_key=True)
    block: Mapped[int] = mapped_column(Integer, primary_key=True)
    bits: Mapped[bytes] = mapped_column(LargeBinary)


def document_tags(metadata: dict[str, Any] | None) -> list[str]:
    """The tags `Filters(tags=...)` can match in a document's metadata, once each (see Filters.match_document)."""
    tags = (metadata or {}).get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list | tuple):
        return []
    return list(dict.fromkeys(t for t in tags if isinstance(t, str)))


class Embedding(Base):
    """Cache keyed by (model, text hash): unchanged text is never embedded twice."""

    __tablename__ = "embeddings"

    model_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IngestRun(Base):
    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    engine: Mapped[str] = mapped_column(String(32), default="local")
    status: Mapped[str] = mapped_column(String(16), default="running")
    files_ok: Mapped[int] = mapped_column(Integer, default=0)
    files_skipped: Mapped[int] = mapped_column(Integer, default=0)
    files_failed: Mapped[int] = mapped_column(Integer, default=0)
    files_removed: Mapped[int] = mapped_column(Integer, default=0)
    chunks_added: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    files: Mapped[list[IngestFile]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class IngestFile(Base):
    """One row per file per run: ok, skipped, failed (with the reason) or removed."""

    __tablename__ = "ingest_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id", ondelete="CASCADE"), index=True)
    source_uri: Mapped[str] = mapped_column(String(2048))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class IndexBuild(Base):
    """Each index folder written, with the ledger revision it reflects."""

    __tablename__ = "index_builds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(BigInteger)
    manifest_hash: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(256))
    chunk_count: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_chunks_text_hash", Chunk.text_hash)
Index("ix_documents_collection_status_media", Document.collection_id, Document.status, Document.media_type)
Index("ix_document_tags_collection_tag", DocumentTag.collection_id, DocumentTag.tag, DocumentTag.document_id)
Index("ix_documents_collection_status_source", Document.collection_id, Document.status, Document.source_uri)
Index("ix_documents_collection_status_source_rev", Document.collection_id, Document.status, Document.source_rev)
Index("ix_documents_collection_status_modified", Document.collection_id, Document.status, Document.modified_at,
      Document.updated_at)
Index("ix_document_metadata_collection_key_value", DocumentMeta.collection_id, DocumentMeta.key, DocumentMeta.value,
      DocumentMeta.document_id)


class AnswerCache(Base):
    """Answers keyed by everything that determines them (see rag.pipeline.cache_key)."""

    __tablename__ = "answer_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    hits: Mapped[int] = mapped_column(Integer, default=0)


class QueryLog(Base):
    """One row per answered question: who answered, tokens, latency, cost."""

    __tablename__ = "query_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection: Mapped[str] = mapped_column(String(128), index=True)
    question: Mapped[str] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256))
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_s: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    cached: Mapped[bool] = mapped_column(default=False)
    groundedness: Mapped[float | None] = mapped_column(Float)
    abstained: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """An HTTP API key: only the SHA-256 of the secret is stored, never the key itself.

    `collections` is a list of collection names, or ["*"] for all; `role` is
    read (search, ask), write (also documents) or admin (also collections, keys).
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="read")
    collections: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvalRun(Base):
    """One evaluation run and everything that produced it (see eval.harness).

    `provenance` holds the index manifest hash, embedder, chunking, retrieval
    settings, providers, adapter and its training.json hash, dataset and split
    hashes, and the code version; `split` holds the trained and evaluated ids.
    """

    __tablename__ = "eval_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="compare")
    status: Mapped[str] = mapped_column(String(16), default="running")
    dataset: Mapped[str] = mapped_column(String(256), default="")
    collection: Mapped[str | None] = mapped_column(String(128))
    arms: Mapped[list[str]] = mapped_column(JSON, default=list)
    dataset_hash: Mapped[str | None] = mapped_column(String(64))
    split_hash: Mapped[str | None] = mapped_column(String(64))
    index_manifest_hash: Mapped[str | None] = mapped_column(String(64))
    code_version: Mapped[str | None] = mapped_column(String(128))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    split: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report_path: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvalResult(Base):
    """One question through one arm, written as soon as it completes (a resumed run skips it)."""

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "question_id", "arm", name="uq_eval_result"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[str] = mapped_column(String(256))
    arm: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
