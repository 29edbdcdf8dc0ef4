"""What the HTTP API refuses before any real work is done: too many requests, too big, bad names.

The upload rules shared with the Streamlit app live in `apps.uploads` (re-exported here).

Every refusal is an `ApiError`, which the app turns into the one JSON error shape
(`{"error": {"type": ..., "message": ...}}`), so a client never sees a stack trace.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException

from rag_platform.apps.uploads import ApiError, ApiSettings, check_suffix, sanitize_filename, save_uploads, too_large

__all__ = ["ApiError", "ApiSettings", "BodySizeLimit", "RateLimiter", "check_suffix", "sanitize_filename",
           "save_uploads", "too_large"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """A token bucket per key: `burst` requests at once, then `rate_per_s` per second.

    In memory, per process: with several workers each enforces its own share.
    """

    rate_per_s: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float | None:
        """Spend one token; returns None when allowed, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate_per_s)
            b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return None
            return (1.0 - b.tokens) / self.rate_per_s

    def check(self, key: str) -> None:
        """Raise 429 with Retry-After (whole seconds, at least 1) when the key is out of tokens."""
        wait = self.take(key)
        if wait is not None:
            secs = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited",
                           f"too many requests for this API key: the limit is {self.rate_per_s:g}/s with bursts "
                           f"of {self.burst}; retry after {secs} s", {"Retry-After": str(secs)})


class BodySizeLimit:
    """ASGI middleware: refuse bodies over the limit before they are read into memory.

    Uploads (multipart) may be `max_files * max_upload_mb`; anything else `max_json_kb`.
    A declared Content-Length is checked up front; a chunked body is counted as it arrives.
    """

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.upload_limit = int(settings.max_files * settings.max_upload_mb * 1e6) + 1_000_000
        self.json_limit = settings.max_json_kb * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        multipart = headers.get("content-type", "").startswith("multipart/")
        limit, setting = ((self.upload_limit, "RAG_API__MAX_UPLOAD_MB / RAG_API__MAX_FILES") if multipart
                          else (self.json_limit, "RAG_API__MAX_JSON_KB"))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_error(send, too_large("the request body", int(declared), limit, setting))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > limit:  # an HTTPException, so FastAPI's body parser passes it on untouched
                raise HTTPException(413, too_large("the request body", seen, limit, setting).message)
            return msg

        await self.app(scope, counted, send)


async def _send_error(send: Send, err: ApiError) -> None:
    import json

    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
