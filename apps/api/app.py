"""The HTTP API: the Python API (`rag.RAG`) served over HTTP, with keys, limits and metrics.

`create_app` builds one `AppState` (the RAG, the HTTP settings, keys, limiter, jobs, watches,
metrics), keeps it at `app.state.api`, and includes one router per resource; the routes reach
the state through `Depends` (`apps.api.state`).

Routers, in the order they are included (the full table is in docs/architecture.md):
    openai_compat.openai_router                    /v1/models, /v1/chat/completions
    apps.mcp.http (mounted)                        /mcp
    watches.watch_router                           /v1/collections/{c}/watches
    admin.ops_router, eval_router, keys_router     /healthz, /readyz, /metrics, /v1/eval/runs, /v1/keys
    collections.collections_router                 /v1/collections, /v1/collections/{c}
    collections.documents_router                   /v1/collections/{c}/documents, /v1/jobs/{id}
    query.query_router                             /v1/collections/{c}/search, /v1/collections/{c}/ask

Example:
    >>> from apps.api.app import create_app      # doctest: +SKIP
    >>> app = create_app()                         # reads Settings() and ApiSettings() from the env
    $ rag serve --port 8000                        # the same app under uvicorn
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag import RAG, RagError, Settings
from rag.batching import for_serving
from rag.errors import ConfigError, DependencyMissingError, IndexMismatchError, NotFoundError
from rag_platform.apps.api.admin import eval_router, keys_router, ops_router
from rag_platform.apps.api.auth import Authenticator
from rag_platform.apps.api.collections import collections_router, documents_router
from rag_platform.apps.api.ingest_process import IngestProcess
from rag_platform.apps.api.jobs import JobRunner
from rag_platform.apps.api.limits import ApiError, ApiSettings, BodySizeLimit, RateLimiter
from rag_platform.apps.api.metrics import ApiMetrics, MetricsMiddleware
from rag_platform.apps.api.openai_compat import ChatSettings, openai_router
from rag_platform.apps.api.public import error_type
from rag_platform.apps.api.query import query_router
from rag_platform.apps.api.state import AppState
from rag_platform.apps.api.watches import FolderWatches, watch_router
from rag_platform.apps.mcp import mount_mcp

log = logging.getLogger("rag.api")
STATUS: list[tuple[type[RagError], int]] = [(NotFoundError, 404), (ConfigError, 400), (IndexMismatchError, 409),
                                            (DependencyMissingError, 501)]


def create_app(settings: Settings | None = None, rag: RAG | None = None,
               api_settings: ApiSettings | None = None) -> FastAPI:
    """Build the app around one `RAG` (opened from `settings`, or `Settings()` from the env, when not given)."""
    state = build_state(rag if rag is not None else RAG.open(settings=settings or Settings()),
                        api_settings or ApiSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.watches.start()  # folders registered before a restart
        yield
        state.watches.shutdown()
        state.jobs.shutdown()

    app = FastAPI(title="rag-platform", version="1", lifespan=lifespan, description="Collections, uploads, "
                  "hybrid search and answers with checked citations. Send `Authorization: Bearer <key>`.")
    app.state.api = state
    # The parts by name as well, for scripts and tests that reach into a running app.
    app.state.rag, app.state.jobs, app.state.metrics = state.rag, state.jobs, state.metrics
    app.state.api_settings, app.state.watches = state.settings, state.watches
    app.add_middleware(BodySizeLimit, settings=state.settings)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    install_errors(app)
    app.include_router(openai_router)
    mount_mcp(app, state.rag, state.auth, state.limiter, state.metrics)  # /mcp (MCP over streamable HTTP)
    for router in (watch_router, ops_router, collections_router, documents_router, query_router, eval_router,
                   keys_router):
        app.include_router(router)
    return app


def build_state(rag: RAG, cfg: ApiSettings) -> AppState:
    """The shared parts of one app; the embedder is wrapped so that concurrent queries share model calls."""
    rag.embedder = for_serving(rag.embedder, rag.settings.serving)
    if not cfg.auth:
        log.warning("RAG_API__AUTH=false: every caller is an admin of every collection; local use only")
    metrics = ApiMetrics()
    process = None
    if cfg.ingest_process and rag.embedder_from_settings:  # a child can build the same embedder from settings
        process = IngestProcess(rag.settings, nice=cfg.ingest_nice, idle_s=cfg.ingest_idle_s)
    jobs = JobRunner(rag, on_report=metrics.observe_ingest, process=process)
    store = rag.store  # opened now: keys are checked in its ledger
    return AppState(rag=rag, settings=cfg, chat=ChatSettings(),
                    auth=Authenticator(store.ledger, enabled=cfg.auth),
                    limiter=RateLimiter(cfg.rate_per_s, cfg.burst), metrics=metrics, jobs=jobs,
                    watches=FolderWatches(rag, cfg.watch_roots, jobs.writes, process=process))


def error_response(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's one error shape: `{"error": {"type": ..., "message": ...}}`."""
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status, headers=headers)


def install_errors(app: FastAPI) -> None:
    """Every refusal and failure in the one JSON shape; a crash is logged, never shown."""
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.type, e.message, e.headers)

    @app.exception_handler(RagError)
    async def rag_error(_: Request, e: RagError) -> JSONResponse:
        status = next((code for cls, code in STATUS if isinstance(e, cls)), 400)
        return error_response(status, error_type(e), getattr(e, "public_message", None) or str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg')}" for err in e.errors()]
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(e.status_code, "http_error")
        return error_response(e.status_code, kind, str(e.detail), dict(e.headers or {}))

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception) -> JSONResponse:
        log.error("unhandled %s on %s %s", type(e).__name__, request.method, request.url.path, exc_info=e)
        return error_response(500, "internal_error", "internal server error; the details are in the server log")
