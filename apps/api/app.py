"""The HTTP API: the Python API (`rag.RAG`) served over HTTP, with keys, limits and metrics.

Example:
    >>> from apps.api.app import create_app      # doctest: +SKIP
    >>> app = create_app()                         # reads Settings() and ApiSettings() from the env
    $ rag serve --port 8000                        # the same app under uvicorn
"""

# No `from __future__ import annotations`: FastAPI reads the closures' annotations at runtime.

import json
import logging
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Header, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from starlette.exceptions import HTTPException as StarletteHTTPException

from apps.api.auth import Authenticator, KeyInfo, create_key, list_keys, revoke_key
from apps.api.jobs import JobRunner
from apps.api.limits import ApiError, ApiSettings, BodySizeLimit, RateLimiter, save_uploads
from apps.api.metrics import ApiMetrics, MetricsMiddleware
from apps.api.openai_compat import openai_router
from apps.api.public import error_type, public
from apps.api.watches import FolderWatches, watch_router
from apps.mcp import mount_mcp
from rag import RAG, Filters, RagError, Settings
from rag.batching import for_serving
from rag.errors import ConfigError, DependencyMissingError, IndexMismatchError, NotFoundError
from rag.store.ledger import Collection, EvalRun

log = logging.getLogger("rag.api")
STATUS: list[tuple[type[RagError], int]] = [(NotFoundError, 404), (ConfigError, 400), (IndexMismatchError, 409),
                                            (DependencyMissingError, 501)]


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


class CollectionIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class KeyIn(BaseModel):
    collections: list[str] = Field(min_length=1)
    role: Literal["read", "write", "admin"] = "read"
    name: str = ""


def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status, headers=headers)


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(jsonable_encoder(data), separators=(',', ':'))}\n\n"


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.type, e.message, e.headers)

    @app.exception_handler(RagError)
    async def rag_error(_: Request, e: RagError) -> JSONResponse:
        status = next((code for cls, code in STATUS if isinstance(e, cls)), 400)
        return _error(status, error_type(e), getattr(e, "public_message", None) or str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg')}" for err in e.errors()]
        return _error(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(e.status_code, "http_error")
        return _error(e.status_code, kind, str(e.detail), dict(e.headers or {}))

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception) -> JSONResponse:
        log.error("unhandled %s on %s %s", type(e).__name__, request.method, request.url.path, exc_info=e)
        return _error(500, "internal_error", "internal server error; the details are in the server log")


def create_app(settings: Settings | None = None, rag: RAG | None = None,
               api_settings: ApiSettings | None = None) -> FastAPI:
    """Build the app around one `RAG` (opened from `settings`, or `Settings()` from the env, when not given)."""
    rag = rag if rag is not None else RAG.open(settings=settings or Settings())
    rag.embedder = for_serving(rag.embedder, rag.settings.serving)  # concurrent queries share model calls
    cfg = api_settings or ApiSettings()
    store = rag.store
    metrics = ApiMetrics()
    auth = Authenticator(store.sessions, enabled=cfg.auth)
    if not cfg.auth:
        log.warning("RAG_API__AUTH=false: every caller is an admin of every collection; local use only")
    limiter = RateLimiter(cfg.rate_per_s, cfg.burst)
    jobs = JobRunner(rag, on_report=metrics.observe_ingest)
    watches = FolderWatches(rag, cfg.watch_roots, jobs.writes)
    uploads = rag.settings.home.resolve() / "uploads"
    from ingest.loaders import SUPPORTED_SUFFIXES

    def public_path(source: str) -> str:
        return public(  # type: ignore[no-any-return]
            {"source": source}, uploads)["source"]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watches.start()  # folders registered before a restart
        yield
        watches.shutdown()
        jobs.shutdown()

    app = FastAPI(title="rag-platform", version="1", lifespan=lifespan, description="Collections, uploads, "
                  "hybrid search and answers with checked citations. Send `Authorization: Bearer <key>`.")
    app.state.rag, app.state.jobs, app.state.metrics, app.state.api_settings = rag, jobs, metrics, cfg
    app.state.watches = watches
    app.add_middleware(BodySizeLimit, settings=cfg)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _install_errors(app)

    def caller(authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
               x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None) -> KeyInfo:
        key = auth.authenticate(authorization, x_api_key)
        limiter.check(f"key:{key.id}")
        return key

    def needs(role: str) -> Callable[..., KeyInfo]:
        def dep(collection: str, key: Annotated[KeyInfo, Depends(caller)]) -> KeyInfo:
            key.require(collection, role)
            return key
        return dep

    Key = Annotated[KeyInfo, Depends(caller)]
    app.include_router(openai_router(rag, caller, metrics))  # /v1/models, /v1/chat/completions
    mount_mcp(app, rag, auth, limiter, metrics)  # /mcp (MCP over streamable HTTP)
    app.include_router(watch_router(watches, caller, needs, store))  # /v1/collections/{c}/watches

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            with store.sessions() as s:
                s.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as e:  # noqa: BLE001 - readiness reports, it does not crash
            checks["database"] = f"error: {type(e).__name__}"
            return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
        broken = 0  # counts only: collection names are not for unauthenticated callers (they are in the log)
        for name in store.collection_names():
            if store.chunk_count(name) == 0:
                continue  # nothing to load yet
            try:
                store.index(name)
            except Exception as e:  # noqa: BLE001
                log.warning("index of %r not loadable: %s", name, e if isinstance(e, RagError) else type(e).__name__)
                broken += 1
        checks["indexes"] = "ok" if not broken else f"error: {broken} not loadable (see the server log)"
        ok = not broken
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"])
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/v1/collections", status_code=201, tags=["collections"])
    def create_collection(body: CollectionIn, key: Key) -> dict[str, Any]:
        key.require(body.name, "admin")
        if body.name in store.collection_names():
            raise ApiError(409, "conflict", f"collection {body.name!r} already exists")
        coll = store.collection(body.name, create=True)
        return {"name": coll.name, "revision": coll.revision}

    @app.get("/v1/collections", tags=["collections"])
    def list_collections(key: Key) -> dict[str, Any]:
        return {"collections": [asdict(c) for c in rag.collections() if key.can(c.name, "read")]}

    @app.delete("/v1/collections/{collection}", tags=["collections"])
    def delete_collection(collection: str, key: Annotated[KeyInfo, Depends(needs("admin"))]) -> dict[str, Any]:
        store.collection(collection)  # 404 before its watches stop
        watches.drop_collection(collection)  # else a watcher's next pass would write into it again
        rag.delete_collection(collection)  # validates the name, so the rmtree below stays inside uploads/
        shutil.rmtree(uploads / collection, ignore_errors=True)
        return {"deleted": collection}

    @app.post("/v1/collections/{collection}/documents", status_code=202, tags=["documents"])
    def upload(collection: str, files: Annotated[list[UploadFile], File(description="Files to ingest.")],
               key: Annotated[KeyInfo, Depends(needs("write"))]) -> dict[str, Any]:
        store.collection(collection)  # 404 before anything is written
        saved, names = save_uploads(files, uploads / collection, cfg, SUPPORTED_SUFFIXES)
        job = jobs.submit(collection, saved, names)
        return {"job": public(job.to_json(), uploads), "status_url": f"/v1/jobs/{job.id}"}

    @app.get("/v1/jobs/{job_id}", tags=["documents"])
    def job_status(job_id: str, key: Key) -> dict[str, Any]:
        job = jobs.get(job_id)
        if not key.can(job.collection, "read"):
            raise NotFoundError(f"no job with id {job_id!r} visible to this API key")
        return public(job.to_json(), uploads)  # type: ignore[no-any-return]

    @app.get("/v1/collections/{collection}/documents", tags=["documents"])
    def documents(collection: str, key: Annotated[KeyInfo, Depends(needs("read"))]) -> dict[str, Any]:
        docs = rag.documents(collection)
        return {"documents": [{"id": d.id, "source": public_path(d.source_uri), "title": d.title, "media_type": d.media_type,
                               "size_bytes": d.size_bytes, "status": d.status, "error": d.error,
                               "chunks": d.chunk_count, "updated_at": d.updated_at} for d in docs]}

    @app.delete("/v1/collections/{collection}/documents/{document_id}", tags=["documents"])
    def delete_document(collection: str, document_id: int,
                        key: Annotated[KeyInfo, Depends(needs("write"))]) -> dict[str, Any]:
        coll = store.collection(collection)
        try:
            source = rag.delete_document(collection, document_id)
        except NotFoundError:
            raise NotFoundError(f"no document with id {document_id} in collection {collection!r}; "
                                f"list them with GET /v1/collections/{collection}/documents") from None
        path = Path(source)
        if path.is_relative_to(uploads / collection):
            path.unlink(missing_ok=True)
        with store.sessions() as s:
            rev = s.scalar(select(Collection.revision).where(Collection.id == coll.id))
        return {"deleted": document_id, "source": public_path(source), "revision": rev}

    @app.post("/v1/collections/{collection}/search", tags=["query"])
    def search(collection: str, body: SearchIn, key: Annotated[KeyInfo, Depends(needs("read"))]) -> dict[str, Any]:
        hits = rag.search(body.query, collection=collection, k=body.k, mode=body.mode, fusion=body.fusion,
                          filters=body.filters.to_filters() if body.filters else None, rerank=body.rerank)
        return {"query": body.query, "hits": public([asdict(h) for h in hits], uploads)}

    @app.post("/v1/collections/{collection}/ask", tags=["query"],
              responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
    def ask(collection: str, body: AskIn, key: Annotated[KeyInfo, Depends(needs("read"))]) -> Any:
        kw: dict[str, Any] = {"collection": collection, "k": body.k, "providers": body.providers,
                              "mode": body.mode, "fusion": body.fusion, "rerank": body.rerank, "use_cache": body.cache,
                              "filters": body.filters.to_filters() if body.filters else None}
        if not body.stream:
            answer = rag.ask(body.question, **kw)
            metrics.observe_answer(answer)
            return JSONResponse(public(jsonable_encoder(answer.to_json()), uploads))
        stream = rag.ask(body.question, stream=True, **kw)  # retrieval errors surface here, as JSON

        def events() -> Iterator[str]:
            try:
                for piece in stream:
                    yield _sse("delta", {"text": piece})
                if stream.answer is not None:
                    metrics.observe_answer(stream.answer)
                    yield _sse("answer", public(jsonable_encoder(stream.answer.to_json()), uploads))
            except RagError as e:
                yield _sse("error", {"error": {"type": error_type(e),
                                               "message": getattr(e, "public_message", None) or str(e)}})
            except Exception as e:
                log.error("stream failed: %s", type(e).__name__, exc_info=e)
                yield _sse("error", {"error": {"type": "internal_error", "message": "internal server error"}})
            yield _sse("done", {})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def eval_json(run: Any) -> dict[str, Any]:
        cols = ("id", "kind", "status", "dataset", "collection", "arms", "summary", "provenance", "report_path",
                "created_at", "finished_at")
        return {c: getattr(run, c, None) for c in cols}

    def visible(run: Any, key: KeyInfo) -> bool:
        return key.can(run.collection, "read") if run.collection else key.can(None, "read")

    @app.get("/v1/eval/runs", tags=["eval"])
    def eval_runs(key: Key, limit: int = 50) -> dict[str, Any]:
        """Evaluation runs recorded in the ledger (`eval_runs`), newest first."""
        with store.sessions() as s:
            rows = s.scalars(select(EvalRun).order_by(EvalRun.id.desc()).limit(min(max(limit, 1), 500))).all()
            return {"runs": [eval_json(r) for r in rows if visible(r, key)]}

    @app.get("/v1/eval/runs/{run_id}", tags=["eval"])
    def eval_run(run_id: int, key: Key) -> dict[str, Any]:
        with store.sessions() as s:
            run = s.get(EvalRun, run_id)
            if run is None or not visible(run, key):
                raise NotFoundError(f"no evaluation run {run_id}; list them with GET /v1/eval/runs")
            return eval_json(run)

    @app.post("/v1/keys", status_code=201, tags=["keys"])
    def new_key(body: KeyIn, key: Key) -> dict[str, Any]:
        key.require(None, "admin")
        info, raw = create_key(store.sessions, collections=body.collections, role=body.role, name=body.name)
        return {**info.public(), "key": raw, "note": "store this key now: it is not shown again"}

    @app.get("/v1/keys", tags=["keys"])
    def keys(key: Key) -> dict[str, Any]:
        key.require(None, "admin")
        return {"keys": [k.public() for k in list_keys(store.sessions)]}

    @app.delete("/v1/keys/{key_id}", tags=["keys"])
    def revoke(key_id: int, key: Key) -> dict[str, Any]:
        key.require(None, "admin")
        return revoke_key(store.sessions, key_id).public()

    return app
