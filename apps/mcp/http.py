"""MCP over streamable HTTP inside `rag serve`, at /mcp, behind the REST API's keys, scopes and rate limit.

A request without a valid key is refused with 401 before it reaches the MCP layer; each tool call
then re-reads the caller's key from its own request headers (the authenticator caches verified keys
for a few seconds), so scopes and roles are exactly the REST API's. The server is stateless (no MCP
session kept between requests), so it works behind several workers or a load balancer. The `mcp`
SDK is imported, and the server built, on the first request to /mcp: `rag serve` starts as fast as before.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.routing import Route

from rag import RAG
from rag_platform.apps.api.auth import Authenticator, KeyInfo
from rag_platform.apps.api.limits import ApiError, RateLimiter
from rag_platform.apps.mcp.settings import McpSettings

LOCAL_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]


class KeyGate:
    """ASGI: 401/429 in the REST API's JSON shape before the MCP transport sees the request."""

    def __init__(self, app: Any, auth: Authenticator, limiter: RateLimiter) -> None:
        self.app, self.auth, self.limiter = app, auth, limiter
        self.route: Route | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("route", self.route)  # what the metrics middleware labels requests with (as FastAPI does)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            key = self.auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
            self.limiter.check(f"key:{key.id}")
        except ApiError as e:
            body = json.dumps(e.body()).encode()
            extra = [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
            await send({"type": "http.response.start", "status": e.status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class LazyMcp:
    """ASGI: builds the MCP endpoint and starts its session manager (in the app's task group) on first use."""

    def __init__(self, build: Any) -> None:
        self.build = build
        self.app: Any = None
        self.group: Any = None
        self.lock: anyio.Lock | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            assert self.lock is not None and self.group is not None, "the app's lifespan has not started"
            async with self.lock:
                if self.app is None:
                    app, manager = self.build()
                    await self.group.start(_run_manager, manager)
                    self.app = app
        await self.app(scope, receive, send)


async def _run_manager(manager: Any, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    async with manager.run():
        task_status.started()
        await anyio.sleep_forever()


def build_endpoint(rag: RAG, auth: Authenticator, metrics: Any, cfg: McpSettings) -> tuple[Any, Any]:
    """The MCP server's streamable HTTP endpoint (an ASGI app) and its session manager."""
    from mcp.server.mcpserver import Context
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcp.server.transport_security import TransportSecuritySettings

    from rag_platform.apps.mcp.server import ServerOptions, build_server

    def resolve(ctx: Context) -> KeyInfo:
        h = ctx.headers or {}
        return auth.authenticate(h.get("authorization"), h.get("x-api-key"))

    server = build_server(rag, resolve, ServerOptions(
        default_collection=cfg.default_collection, roots=tuple(p.resolve() for p in cfg.allowed_dirs),
        on_answer=metrics.observe_answer))
    # With keys on, a rebinding page cannot send one, so any Host is fine (a proxy or 0.0.0.0 may pass any);
    # with RAG_API__AUTH=false only local hosts are answered.
    security = (TransportSecuritySettings(enable_dns_rebinding_protection=False) if auth.enabled else
                TransportSecuritySettings(allowed_hosts=LOCAL_HOSTS,
                                          allowed_origins=[f"http://{h}" for h in LOCAL_HOSTS]))
    server.streamable_http_app(stateless_http=True, transport_security=security)  # creates the session manager
    return StreamableHTTPASGIApp(server.session_manager), server.session_manager


def mount_mcp(app: FastAPI, rag: RAG, auth: Authenticator, limiter: RateLimiter, metrics: Any,
              settings: McpSettings | None = None) -> None:
    """Add the MCP endpoint to `app`; its session manager runs in a task group of the app's lifespan."""
    cfg = settings or McpSettings()
    if not cfg.enabled:
        return
    lazy = LazyMcp(lambda: build_endpoint(rag, auth, metrics, cfg))
    gate = KeyGate(lazy, auth, limiter)
    gate.route = Route(cfg.path, endpoint=gate, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    app.router.routes.append(gate.route)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with anyio.create_task_group() as group:
            lazy.group, lazy.lock = group, anyio.Lock()
            async with inner(a) as state:
                yield state
            group.cancel_scope.cancel()

    app.router.lifespan_context = lifespan
