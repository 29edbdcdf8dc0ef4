"""Search and answers over HTTP: `RAG.search` and `RAG.ask` on one collection, JSON or Server-Sent Events.

Both take the library's own options (mode, fusion, rerank, filters); nothing here ranks or answers.
A streamed answer sends `delta` pieces, then the whole `answer` with its checked citations, then
`done`; an error after the first byte arrives as an `error` event, since the status is already sent.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from rag import AnswerStream, Filters, RagError
from rag_platform.apps.api.public import error_type
from rag_platform.apps.api.state import AppState, Reader, State

log = logging.getLogger("rag.api")
query_router = APIRouter(tags=["query"])


class FiltersIn(BaseModel):
    source_glob: str | None = None
    media_types: list[str] = []
    tags: list[str] = []
    document_ids: list[int] = []
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    metadata: dict[str, Any] = {}

    def to_filters(self) -> Filters:
        return Filters(source_glob=self.source_glob, media_types=tuple(self.media_types), tags=tuple(self.tags),
                       document_ids=tuple(self.document_ids), modified_after=self.modified_after,
                       modified_before=self.modified_before, metadata=tuple(self.metadata.items()))


class SearchIn(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(None, ge=1, le=100)
    mode: Literal["hybrid", "dense", "bm25"] | None = None
    fusion: Literal["rrf", "convex"] | None = None
    filters: FiltersIn | None = None
    rerank: bool | None = None


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(None, ge=1, le=50)
    providers: list[str] | None = None
    mode: Literal["hybrid", "dense", "bm25"] | None = None
    fusion: Literal["rrf", "convex"] | None = None
    filters: FiltersIn | None = None
    rerank: bool | None = None
    stream: bool = Field(False, description="Server-Sent Events: `delta` pieces, then `answer`, then `done`.")
    cache: bool = Field(True, description="Serve and store answers in the answer cache.")


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event with compact JSON data."""
    return f"event: {event}\ndata: {json.dumps(jsonable_encoder(data), separators=(',', ':'))}\n\n"


@query_router.post("/v1/collections/{collection}/search")
def search(collection: str, body: SearchIn, state: State, key: Reader) -> dict[str, Any]:
    hits = state.rag.search(body.query, collection=collection, k=body.k, mode=body.mode, fusion=body.fusion,
                            filters=body.filters.to_filters() if body.filters else None, rerank=body.rerank)
    return {"query": body.query, "hits": state.public([asdict(h) for h in hits])}


@query_router.post("/v1/collections/{collection}/ask",
                   responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
def ask(collection: str, body: AskIn, state: State, key: Reader) -> Any:
    kw: dict[str, Any] = {"collection": collection, "k": body.k, "providers": body.providers,
                          "mode": body.mode, "fusion": body.fusion, "rerank": body.rerank, "use_cache": body.cache,
                          "filters": body.filters.to_filters() if body.filters else None}
    if not body.stream:
        answer = state.rag.ask(body.question, **kw)
        state.metrics.observe_answer(answer)
        return JSONResponse(state.public(jsonable_encoder(answer.to_json())))
    stream = state.rag.ask_stream(body.question, **kw)  # retrieval errors surface here, as JSON
    return StreamingResponse(_events(stream, state), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _events(stream: AnswerStream, state: AppState) -> Iterator[str]:
    """`delta` pieces, the checked `answer` (counted in the metrics), then `done`; or an `error` event."""
    try:
        for piece in stream:
            yield sse("delta", {"text": piece})
        if stream.answer is not None:
            state.metrics.observe_answer(stream.answer)
            yield sse("answer", state.public(jsonable_encoder(stream.answer.to_json())))
    except RagError as e:
        yield sse("error", {"error": {"type": error_type(e),
                                      "message": getattr(e, "public_message", None) or str(e)}})
    except Exception as e:
        log.error("stream failed: %s", type(e).__name__, exc_info=e)
        yield sse("error", {"error": {"type": "internal_error", "message": "internal server error"}})
    yield sse("done", {})
