"""Prometheus metrics on a registry owned by one app, so tests (and several apps) never share counts.

Requests are labelled by route *template* (`/v1/collections/{collection}/search`),
never by the raw path, so the number of series stays bounded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from rag_platform.apps.api.limits import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from rag import Answer, IngestReport

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ApiMetrics:
    """Counters and histograms for one app.

    Example:
        >>> m = ApiMetrics()
        >>> m.requests.labels("GET", "/healthz", "200").inc()
        >>> b"rag_http_requests_total" in m.render()
        True
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rag_http_requests", "HTTP requests by method, route template and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("rag_http_request_seconds", "HTTP request latency (until the last byte).",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ingest_files = Counter("rag_ingest_files", "Files processed by ingestion jobs, by outcome.",
                                    ["outcome"], registry=r)
        self.provider_attempts = Counter("rag_provider_attempts", "LLM provider attempts by provider and outcome.",
                                         ["provider", "outcome"], registry=r)
        self.fallbacks = Counter("rag_provider_fallbacks", "Answers given by a provider other than the first one "
                                 "tried.", registry=r)
        self.answers = Counter("rag_answers", "Answers returned, by provider and whether the cache served them.",
                               ["provider", "cached"], registry=r)
        self.cache_hits = Counter("rag_answer_cache_hits", "Answers served from the answer cache.", registry=r)

    def observe_answer(self, answer: Answer) -> None:
        """Count an Answer's provider attempts, fallback and cache hit."""
        self.answers.labels(answer.provider, str(bool(answer.cached)).lower()).inc()
        if answer.cached:
            self.cache_hits.inc()
            return
        tried: list[str] = []
        for a in answer.attempts:
            outcome = "skipped" if a.skipped else ("ok" if a.ok else "error")
            self.provider_attempts.labels(a.provider, outcome).inc()
            if a.provider not in tried:
                tried.append(a.provider)
        if tried and tried[0] != answer.provider:
            self.fallbacks.inc()

    def observe_ingest(self, report: IngestReport) -> None:
        for f in report.files:
            self.ingest_files.labels(f.outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware: count every response and time it until its last byte (streams included)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - t0)
