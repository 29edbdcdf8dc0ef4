"""Transactional upserts into the PostgreSQL ledger, safe with several writers at once.

One batch is one transaction: documents are upserted on their
(collection, source) key (`INSERT ... ON CONFLICT DO UPDATE`), their old
chunks deleted (vectors follow by cascade), new chunks and vectors inserted,
and the collection revision bumped last. Two workers writing different
documents never block each other until that last row; two writing the same
document serialise on its row lock, and the later one's delete sees the
earlier one's chunks, so none are lost or doubled. Embedding-cache rows are
inserted in sorted order with `ON CONFLICT DO NOTHING` (no duplicate-key
error when two workers embed the same text, no lock-order deadlock); a
deadlock or serialisation failure anyway is retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rag.contextual import index_text
from rag.errors import IndexMismatchError
from rag.store.base import text_hash
from rag.store.doc_fields import metadata_rows, modified_at
from rag.store.ledger import Chunk, Collection, Document, DocumentMeta, DocumentTag, Embedding, document_tags
from rag.store.pg_schema import VECTORS_TABLE, vector_literal

_RETRY_STATES = {"40P01", "40001"}  # deadlock detected, serialization failure
ATTEMPTS = 4


def write_batch(store: Any, coll: Collection, docs: Sequence[Any], *,
                failed: Sequence[tuple[str, str, str, int]] = (), removed: Sequence[str] = ()) -> int:
    """Write one batch in one transaction, retrying it whole on a deadlock; returns chunks added."""
    for attempt in range(ATTEMPTS):
        try:
            with store.sessions.begin() as s:
                return _write(s, store, coll, docs, failed, removed)
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state not in _RETRY_STATES or attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")


def _write(s: Session, store: Any, coll: Collection, docs: Sequence[Any],
           failed: Sequence[tuple[str, str, str, int]], removed: Sequence[str]) -> int:
    docs = list({d.source: d for d in docs}.values())  # one row per source in a multi-row upsert
    fresh = {h: v for d in docs for h, v in d.vectors.items()}
    if fresh:
        s.execute(pg_insert(Embedding).on_conflict_do_nothing(), [
            {"model_id": store.embedder_id, "text_hash": h, "dim": int(fresh[h].shape[0]),
             "vector": np.asarray(fresh[h], np.float32).tobytes()} for h in sorted(fresh)])
    if removed:
        s.execute(delete(Document).where(Document.collection_id == coll.id, Document.source_uri.in_(list(removed))))
    for src, chash, reason, size in failed:
        ins = pg_insert(Document).values(
            collection_id=coll.id, source_uri=src, source_rev=src[::-1], content_hash=chash,
            media_type="application/octet-stream",
            size_bytes=size, status="failed", error=reason, metadata_={}, chunk_count=0)
        s.execute(ins.on_conflict_do_update(  # a failure never replaces an ok version
            constraint="uq_document_source", set_={"error": ins.excluded.error,
                                                  "content_hash": ins.excluded.content_hash},
            where=Document.status == "failed"))
    added = _upsert_documents(s, store, coll, docs, fresh) if docs else 0
    if docs or removed:
        s.execute(update(Collection).where(Collection.id == coll.id).values(
            revision=Collection.revision + 1, embedder_id=store.embedder_id,
            chunking_hash=store.settings.chunking.config_hash(store.embedder_id)))
    return added


def _upsert_documents(s: Session, store: Any, coll: Collection, docs: Sequence[Any],
                      fresh: dict[str, np.ndarray]) -> int:
    ins = pg_insert(Document).values([
        {"collection_id": coll.id, "source_uri": d.source, "source_rev": d.source[::-1], "content_hash": d.content_hash,
         "media_type": d.media_type, "size_bytes": d.size_bytes, "title": d.title, "metadata_": d.metadata,
         "status": "ok", "error": None, "chunk_count": len(d.chunks), "modified_at": modified_at(d.metadata)}
        for d in docs])
    ex = ins.excluded
    ins = ins.on_conflict_do_update(constraint="uq_document_source", set_={
        "content_hash": ex.content_hash, "media_type": ex.media_type, "size_bytes": ex.size_bytes,
        "title": ex.title, "metadata": ex.metadata, "status": ex.status, "error": None,
        "chunk_count": ex.chunk_count, "updated_at": func.now(), "modified_at": ex.modified_at})
    doc_ids = dict(s.execute(ins.returning(Document.source_uri, Document.id)).all())
    s.execute(delete(DocumentTag).where(DocumentTag.document_id.in_(list(doc_ids.values()))))
    s.execute(delete(DocumentMeta).where(DocumentMeta.document_id.in_(list(doc_ids.values()))))
    tag_rows = [{"document_id": doc_ids[d.source], "tag": t, "collection_id": coll.id}
                for d in docs for t in document_tags(d.metadata)]
    if tag_rows:
        s.execute(insert(DocumentTag), tag_rows)
    meta_rows = [r for d in docs for r in metadata_rows(doc_ids[d.source], coll.id, d.metadata)]
    if meta_rows:
        s.execute(insert(DocumentMeta), meta_rows)
    s.execute(delete(Chunk).where(Chunk.document_id.in_(list(doc_ids.values()))))
    header = store.settings.chunking.context_header
    chunk_rows = [{"document_id": doc_ids[d.source], "collection_id": coll.id, "ordinal": c.ordinal,
                   "text": c.text, "char_start": c.char_start,
                   "text_hash": text_hash(index_text(d.title, c.heading_path, c.text, header=header)),
                   "char_end": c.char_end, "page": c.page, "heading_path": list(c.heading_path),
                   "token_count": c.token_count} for d in docs for c in d.chunks]
    if not chunk_rows:
        return 0
    chunk_ids = s.execute(insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True), chunk_rows).scalars().all()
    vectors = dict(fresh)
    need = sorted({r["text_hash"] for r in chunk_rows} - set(vectors))
    for i in range(0, len(need), 500):
        rows = s.execute(select(Embedding.text_hash, Embedding.vector).where(
            Embedding.model_id == store.embedder_id, Embedding.text_hash.in_(need[i:i + 500])))
        vectors.update({h: np.frombuffer(v, dtype=np.float32) for h, v in rows})
    missing = [r["text_hash"] for r in chunk_rows if r["text_hash"] not in vectors]
    if missing:
        raise IndexMismatchError(f"{len(missing)} chunks of {coll.name!r} have no {store.embedder_id!r} vector "
                                 f"(first text hash {missing[0]}): embed them before write_batch")
    s.execute(text(f"INSERT INTO {VECTORS_TABLE} (chunk_id, collection_id, embedding)"
                   f" VALUES (:c, {int(coll.id)}, CAST(:e AS vector))"),
              [{"c": cid, "e": vector_literal(vectors[r["text_hash"]])} for cid, r in zip(chunk_ids, chunk_rows,
                                                                                          strict=True)])
    return len(chunk_rows)
