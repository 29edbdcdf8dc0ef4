"""One JSON shape for an answer's sources and checked citations, shared by the MCP server and the OpenAI endpoint.

Every passage gets a `rag://COLLECTION/DOCUMENT_ID/CHUNK_ID` address: an MCP client opens it as a
resource, and any other client can show it as the cited passage's identifier.

Example:
    >>> chunk_uri("handbook", 3, 17)
    'rag://handbook/3/17'
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rag.answer import Answer
from rag.types import Hit

SNIPPET_CHARS = 1200


def chunk_uri(collection: str, document_id: int, chunk_id: int) -> str:
    return f"rag://{collection}/{document_id}/{chunk_id}"


def hit_json(hit: Hit, collection: str, *, text_chars: int = SNIPPET_CHARS) -> dict[str, Any]:
    """A passage: where it is (source, page, section), its address, scores, and its text (cut at `text_chars`)."""
    text = hit.text if len(hit.text) <= text_chars else hit.text[:text_chars].rstrip() + " …"
    return {"uri": chunk_uri(collection, hit.document_id, hit.chunk_id), "chunk_id": hit.chunk_id,
            "document_id": hit.document_id, "source": hit.source, "title": hit.title, "page": hit.page,
            "section": list(hit.heading_path), "score": round(float(hit.score), 6),
            "ranks": dict(hit.ranks), "scores": {k: round(float(v), 6) for k, v in hit.scores.items()},
            "text": text}


def answer_extension(answer: Answer, collection: str, query: str) -> dict[str, Any]:
    """The sources numbered as the answer's `[n]` markers, each with whether its citations were verified.

    `cited` says the answer cites [n]; `verified` is true when every citation of [n] was found
    supported by the passage, false when one was not, and null when [n] is not cited.
    """
    verdict: dict[int, bool] = {}
    for c in answer.citations:
        verdict[c.n] = verdict.get(c.n, True) and c.supported
    sources = [{"n": n, **hit_json(h, collection), "cited": n in verdict, "verified": verdict.get(n)}
               for n, h in enumerate(answer.sources, 1)]
    citations = [{"n": c.n, "sentence": c.sentence, "supported": c.supported, "chunk_id": c.chunk_id,
                  "uri": chunk_uri(collection, c.document_id, c.chunk_id), "lexical": round(c.lexical, 4),
                  "similarity": round(c.similarity, 4), "evidence": c.evidence} for c in answer.citations]
    return {"collection": collection, "query": query, "sources": sources, "citations": citations,
            "invalid_citations": list(answer.invalid_citations), "groundedness": None if answer.groundedness is None else round(answer.groundedness, 4),
            "abstained": answer.abstained, "low_confidence": answer.low_confidence, "provider": answer.provider, "model": answer.model,
            "cached": answer.cached, "attempts": [asdict(a) for a in answer.attempts]}
