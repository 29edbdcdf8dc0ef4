"""OpenAI-compatible chat over collections: `GET /v1/models` and `POST /v1/chat/completions`.

Anything that speaks the OpenAI API (the `openai` SDK, LangChain's `ChatOpenAI`, Open WebUI) points
its base URL at `http://HOST:PORT/v1`, uses a `rag keys` key as its API key and a collection's name
as the model. The last user message is answered from that collection by the same `RAG.ask` as
`/v1/collections/{c}/ask` (cache, fallback chain, citation checks, query log, metrics); earlier user
turns only rewrite a follow-up into a standalone question (`apps.rewrite`).

The answer text keeps its `[n]` markers. The sources and checked citations travel in one extension
field, `rag`, on the message (on the last chunk's `delta` when streaming); standard clients ignore it.
Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the SDKs raise
their usual exceptions (401, 403, 404 for an unknown model, 429 with Retry-After).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at runtime.

import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag import Answer, AnswerStream, RagError
from rag.errors import ConfigError, DependencyMissingError, IndexMismatchError, NotFoundError
from rag.llm.base import ProviderError
from rag_platform.apps.answer_view import answer_extension
from rag_platform.apps.api.auth import KeyInfo
from rag_platform.apps.api.public import error_type
from rag_platform.apps.api.state import AppState, Key, State
from rag_platform.apps.rewrite import standalone_question
from rag_platform.apps.uploads import ApiError

log = logging.getLogger("rag.api.openai")
EXTENSION = "rag"
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}
_CODES = {401: "invalid_api_key", 403: "forbidden", 404: "model_not_found", 429: "rate_limit_exceeded"}


class ChatSettings(BaseSettings):
    """Settings of the OpenAI-compatible endpoint (env `RAG_CHAT__*`)."""

    model_config = SettingsConfigDict(env_prefix="RAG_CHAT__", extra="ignore")

    rewriter: str = Field("heuristic", description="Rewrites a follow-up into a standalone question: "
                          "'heuristic' (no model) or the name of a configured provider (one more model call).")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class RagOptions(BaseModel):
    """The extension request field `rag` (the openai SDK sends it with `extra_body={"rag": {...}}`)."""

    k: int | None = Field(None, ge=1, le=50)
    mode: Literal["hybrid", "dense", "bm25"] | None = None
    fusion: Literal["rrf", "convex"] | None = None
    rerank: bool | None = None
    providers: list[str] | None = None
    cache: bool = True


class ChatIn(BaseModel):
    """An OpenAI chat request; sampling fields (temperature, max_tokens, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, description="The collection to answer from.")
    messages: list[MessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(1, ge=1, le=1, description="Only one choice is generated.")
    rag: RagOptions | None = None


def openai_error(status: int, message: str, headers: dict[str, str] | None = None,
                 param: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": param,
                      "code": _CODES.get(status)}}
    return JSONResponse(body, status_code=status, headers=headers)


def _status(e: RagError) -> int:
    for cls, code in ((NotFoundError, 404), (ConfigError, 400), (IndexMismatchError, 409),
                      (DependencyMissingError, 501), (ProviderError, 502)):
        if isinstance(e, cls):
            return code
    return 400


class OpenAIRoute(APIRoute):
    """A route whose every refusal (auth, validation, our errors) comes back in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as e:
                return openai_error(e.status, e.message, e.headers)
            except RequestValidationError as e:
                errs = e.errors()
                parts = [f"{'.'.join(str(x) for x in err.get('loc', ())[1:])}: {err.get('msg')}" for err in errs]
                param = ".".join(str(x) for x in errs[0].get("loc", ())[1:]) if errs else None
                return openai_error(400, "; ".join(parts) or "invalid request", param=param or None)
            except RagError as e:
                return openai_error(_status(e), str(e))
            except Exception as e:  # noqa: BLE001 - never a stack trace to the client
                log.error("unhandled %s on %s", type(e).__name__, request.url.path, exc_info=e)
                return openai_error(500, "internal server error; the details are in the server log")

        return route


openai_router = APIRouter(route_class=OpenAIRoute, tags=["openai-compatible"])


def _readable(state: AppState, key: KeyInfo) -> list[tuple[str, int]]:
    """(name, created) of every collection this key may read: the models it may use."""
    return [(c.name, int(c.created_at.timestamp()) if c.created_at else 0) for c in state.store.ledger.collections()
            if key.can(c.name, "read")]


def _unknown_model(state: AppState, model: str, key: KeyInfo) -> ApiError:
    if model in state.store.collection_names():
        key.require(model, "read")  # raises the 403 with its reason
    return ApiError(404, "not_found", f"The model {model!r} does not exist: models are collection names; "
                    f"GET /v1/models lists those this key may read")


def _rewriter_llm(state: AppState) -> Any:
    if state.chat.rewriter == "heuristic":
        return None
    return state.rag.answerer.chain([state.chat.rewriter]).providers[0]


@openai_router.get("/v1/models")
def models(state: State, key: Key) -> dict[str, Any]:
    """One model per collection this key may read; the model's id is the collection's name."""
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                        "owned_by": "rag-platform"} for name, created in _readable(state, key)]}


@openai_router.get("/v1/models/{model}")
def model(model: str, state: State, key: Key) -> dict[str, Any]:
    for name, created in _readable(state, key):
        if name == model:
            return {"id": name, "object": "model", "created": created, "owned_by": "rag-platform"}
    raise _unknown_model(state, model, key)


@openai_router.post("/v1/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
def chat(body: ChatIn, state: State, key: Key) -> Any:
    """Answer the last user message from the collection named by `model`, citing `[n]` sources."""
    coll = body.model
    if coll not in state.store.collection_names():
        raise _unknown_model(state, coll, key)
    key.require(coll, "read")
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise ApiError(400, "invalid_request", "messages must end with a non-empty user message to answer")
    questions = [m.text() for m in body.messages if m.role == "user" and m.text().strip()]
    query = standalone_question(questions, _rewriter_llm(state))
    opts = body.rag or RagOptions()
    kw: dict[str, Any] = {"collection": coll, "k": opts.k, "providers": opts.providers, "mode": opts.mode,
                          "fusion": opts.fusion, "rerank": opts.rerank, "use_cache": opts.cache}
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if not body.stream:
        answer = state.rag.ask(query, **kw)
        state.metrics.observe_answer(answer)
        extension = state.public(jsonable_encoder(answer_extension(answer, coll, query)))
        message = {"role": "assistant", "content": answer.text, EXTENSION: extension}
        return JSONResponse(jsonable_encoder({
            "id": cid, "object": "chat.completion", "created": created, "model": coll,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(answer)}))
    stream = state.rag.ask_stream(query, **kw)  # retrieval errors surface here, as an error response
    usage = bool((body.stream_options or {}).get("include_usage"))
    return StreamingResponse(_chunks(stream, cid, created, coll, query, usage, state),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _usage(answer: Answer) -> dict[str, int]:
    return {"prompt_tokens": answer.tokens_in, "completion_tokens": answer.tokens_out,
            "total_tokens": answer.tokens_in + answer.tokens_out}


def _chunks(stream: AnswerStream, cid: str, created: int, coll: str, query: str, usage: bool,
            state: AppState) -> Iterator[str]:
    """OpenAI's `chat.completion.chunk` events: role, text pieces, a last chunk with `rag`, `[DONE]`."""
    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": coll,
                "choices": choices, **extra}
        return f"data: {json.dumps(jsonable_encoder(data), separators=(',', ':'))}\n\n"

    try:
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for piece in stream:
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        answer = stream.answer
        if answer is not None:
            state.metrics.observe_answer(answer)
            extension = state.public(jsonable_encoder(answer_extension(answer, coll, query)))
            yield event([{"index": 0, "delta": {EXTENSION: extension},
                          "finish_reason": "stop"}])
            if usage:
                yield event([], usage=_usage(answer))
    except RagError as e:
        message = getattr(e, "public_message", None) or str(e)
        body = {"error": {"message": message, "type": "api_error", "param": None, "code": error_type(e)}}
        yield f"data: {json.dumps(body)}\n\n"
    except Exception as e:  # noqa: BLE001 - the client gets an error event, the log the details
        log.error("chat stream failed: %s", type(e).__name__, exc_info=e)
        body = {"error": {"message": "internal server error", "type": "api_error", "param": None, "code": None}}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"
