"""What a `rag://` resource reads: one chunk with where it comes from, or a document's list of chunks."""

from __future__ import annotations

import json

from sqlalchemy import select

from rag import RAG
from rag.errors import NotFoundError
from rag.store.ledger import Chunk, Document
from rag_platform.apps.answer_view import chunk_uri


def read_chunk(rag: RAG, collection: str, document_id: int, chunk_id: int) -> str:
    """The passage's text under a short header (source, page, section), as a reader of a citation wants it."""
    coll = rag.store.collection(collection)
    with rag.store.sessions() as s:
        row = s.execute(select(Chunk, Document).join(Document, Chunk.document_id == Document.id).where(
            Chunk.id == chunk_id, Chunk.document_id == document_id, Chunk.collection_id == coll.id)).first()
    if row is None:
        raise NotFoundError(f"no chunk {chunk_id} of document {document_id} in collection {collection!r}; "
                            f"rag://{collection}/{document_id} lists its chunks")
    c, d = row
    where = [f"Source: {d.source_uri}"] + ([f"Title: {d.title}"] if d.title else [])
    where += [f"Page: {c.page}"] if c.page else []
    where += [f"Section: {' > '.join(c.heading_path)}"] if c.heading_path else []
    return "\n".join(where) + "\n\n" + c.text


def read_document(rag: RAG, collection: str, document_id: int) -> str:
    """JSON: the document's source, status and its chunks' URIs in reading order (with page and section)."""
    coll = rag.store.collection(collection)
    with rag.store.sessions() as s:
        d = s.scalar(select(Document).where(Document.id == document_id, Document.collection_id == coll.id))
        if d is None:
            raise NotFoundError(f"no document with id {document_id} in collection {collection!r}; "
                                f"the list_documents tool lists them")
        chunks = s.execute(select(Chunk.id, Chunk.page, Chunk.heading_path).where(Chunk.document_id == d.id)
                           .order_by(Chunk.ordinal)).all()
        body = {"uri": f"rag://{collection}/{d.id}", "id": d.id, "source": d.source_uri, "title": d.title,
                "media_type": d.media_type, "status": d.status, "error": d.error,
                "chunks": [{"uri": chunk_uri(collection, d.id, cid), "page": page, "section": list(path or ())}
                           for cid, page, path in chunks]}
    return json.dumps(body, ensure_ascii=False)
