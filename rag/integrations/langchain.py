"""LangChain at the edge: our retriever as a `BaseRetriever`, and LangChain `Document`s in.

Nothing in the core depends on LangChain; import this module only when you
use it (`pip install langchain-core`).

Example:
    >>> from rag import RAG
    >>> from rag.integrations.langchain import RagRetriever
    >>> retriever = RagRetriever(rag=RAG.open(".rag"), collection="handbook", k=4)
    >>> docs = retriever.invoke("how are citations checked?")
    >>> docs[0].metadata["source"], docs[0].metadata["score"]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from rag.errors import DependencyMissingError

    raise DependencyMissingError("LangChain interop", "langchain", "langchain-core") from exc

from rag.filters import Filters
from rag.types import Hit, SourceText


def hit_to_document(hit: Hit) -> Document:
    """A LangChain Document whose metadata keeps everything a citation needs."""
    return Document(
        page_content=hit.text,
        id=str(hit.chunk_id),
        metadata={
            "chunk_id": hit.chunk_id, "document_id": hit.document_id, "source": hit.source,
            "title": hit.title, "page": hit.page, "heading_path": list(hit.heading_path),
            "char_start": hit.char_start, "char_end": hit.char_end, "media_type": hit.media_type,
            "score": hit.score, "ranks": dict(hit.ranks), "scores": dict(hit.scores),
        },
    )


class RagRetriever(BaseRetriever):
    """Our hybrid retriever behind LangChain's interface (works in any LCEL chain)."""

    rag: Any
    collection: str
    k: int = 5
    mode: str | None = None
    fusion: str | None = None
    filters: Filters | None = None
    rerank: bool | None = None

    model_config = {"arbitrary_types_allowed": True}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.rag.search(query, collection=self.collection, k=self.k, mode=self.mode, fusion=self.fusion,
                               filters=self.filters, rerank=self.rerank)
        return [hit_to_document(h) for h in hits]


def documents_to_sources(docs: Iterable[Document]) -> list[SourceText]:
    """LangChain Documents (from any of its loaders) as texts our ingestion accepts.

    The source is `metadata["source"]` (plus `#page` when present and several
    documents share it), else the Document id, else a hash of its content.
    """
    docs = list(docs)
    seen: dict[str, int] = {}
    out = []
    for d in docs:
        meta = dict(d.metadata or {})
        base = str(meta.get("source") or d.id or hashlib.sha256(d.page_content.encode()).hexdigest()[:16])
        if "page" in meta:
            base = f"{base}#page={meta['page']}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        source = base if n == 0 else f"{base}#{n}"
        out.append(SourceText(source=source, text=d.page_content, title=meta.get("title"),
                              media_type=str(meta.get("media_type", "text/plain")),
                              metadata={k: v for k, v in meta.items() if _jsonable(v)}))
    return out


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
