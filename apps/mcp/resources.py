"""What a `rag://` resource reads: one chunk with where it comes from, or a document's list of chunks."""

from __future__ import annotations

import json

from rag import RAG
from rag.errors import NotFoundError
from rag_platform.apps.answer_view import chunk_uri


def read_chunk(rag: RAG, collection: str, document_id: int, chunk_id: int) -> str:
    """The passage's text under a short header (source, page, section), as a reader of a citation wants it."""
    ledger = rag.ledger
    d = ledger.document(collection, document_id)
    c = next((c for c in ledger.chunks([chunk_id]) if c.document_id == document_id), None) if d else None
    if d is None or c is None:
        raise NotFoundError(f"no chunk {chunk_id} of document {document_id} in collection {collection!r}; "
                            f"rag://{collection}/{document_id} lists its chunks")
    where = [f"Source: {d.source_uri}"] + ([f"Title: {d.title}"] if d.title else [])
    where += [f"Page: {c.page}"] if c.page else []
    where += [f"Section: {' > '.join(c.heading_path)}"] if c.heading_path else []
    return "\n".join(where) + "\n\n" + c.text


def read_document(rag: RAG, collection: str, document_id: int) -> str:
    """JSON: the document's source, status and its chunks' URIs in reading order (with page and section)."""
    ledger = rag.ledger
    d = ledger.document(collection, document_id)
    if d is None:
        raise NotFoundError(f"no document with id {document_id} in collection {collection!r}; "
                            f"the list_documents tool lists them")
    body = {"uri": f"rag://{collection}/{d.id}", "id": d.id, "source": d.source_uri, "title": d.title,
            "media_type": d.media_type, "status": d.status, "error": d.error,
            "chunks": [{"uri": chunk_uri(collection, d.id, c.id), "page": c.page, "section": list(c.heading_path)}
                       for c in ledger.document_chunks(collection, d.id)]}
    return json.dumps(body, ensure_ascii=False)
