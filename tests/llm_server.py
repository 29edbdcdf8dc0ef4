"""A real HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic wire formats.

The provider tests drive the real `openai` and `anthropic` SDKs against it, so
what is tested is what goes over the socket: headers, JSON bodies, SSE framing,
status codes and abrupt disconnects. Nothing in the SDKs is mocked.

Faults are scripted per request, consumed in order, then the server answers
normally again:

    ("status", 500)                       an error in the API's own JSON shape
    ("status", 429, {"Retry-After": "1"}) with extra response headers
    ("sleep", 2.0)                        hang, then answer (the client has timed out by then)
    ("malformed",)                        200 whose body is not valid JSON (or a broken SSE event)
    ("body", {...})                       200 with this JSON, whatever its shape
    ("break_stream_after", 2)             send 2 text chunks, then drop the connection
    ("stream_error", 2)                   send 2 text chunks, then the API's in-stream error event
                                          (Anthropic: `event: error`, overloaded_error)

Example:
    >>> server = LLMServer().start()
    >>> server.fail(("status", 429, {"Retry-After": "1"}))
    >>> # point a client at server.openai_url or server.anthropic_url ...
    >>> server.stop()

Tests import the fixture from here (tests/ is on sys.path under pytest) and
ask for it as `llm_server`: `from llm_server import llm_server_fixture, unused_port`.
"""

from __future__ import annotations

import collections
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Fault = tuple[Any, ...]

_OPENAI_ERRORS = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_denied",
                  404: "not_found", 429: "rate_limit_exceeded"}
_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                     500: "api_error", 529: "overloaded_error"}


@dataclass
class Recorded:
    """One request as the server saw it, and the usage it answered with."""

    path: str
    headers: dict[str, str]
    body: Any
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def api_key(self) -> str | None:
        """The key from `Authorization: Bearer` or `x-api-key`, whichever came."""
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        return self.headers.get("x-api-key")


def chunks(text: str) -> list[str]:
    """How the server splits a reply into stream chunks: one word (with its trailing space) each."""
    return re.findall(r"\S+\s*", text) or [text]


def unused_port() -> int:
    """A port nothing listens on (bound, read, closed): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LLMServer:
    """Serves `POST /v1/chat/completions` and `POST /v1/messages` from a background thread.

    Attributes:
        reply: the answer text, or a function of the request body; default
            "Echo: <first 40 characters of the last user message>".
        requests: every request received, in order.
        reject_stream_options: answer 400 to any request carrying
            `stream_options`, as some OpenAI-compatible servers do.
    """

    def __init__(self) -> None:
        self.reply: str | Callable[[dict[str, Any]], str] | None = None
        self.requests: list[Recorded] = []
        self.reject_stream_options = False
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LLMServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a handler still "sleeping" must not hold up stop()
        httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """base_url for the OpenAI SDK (it appends /chat/completions)."""
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        """base_url for the Anthropic SDK (it appends /v1/messages)."""
        return self.url

    # -- scripting ---------------------------------------------------------------------------
    def fail(self, *faults: Fault) -> None:
        """Queue behaviours for the next requests, one per request."""
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def reply_for(self, body: dict[str, Any]) -> str:
        if callable(self.reply):
            return self.reply(body)
        if self.reply is not None:
            return self.reply
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        return f"Echo: {_text_of(users[-1].get('content')) if users else ''}"[:46].rstrip() or "Echo:"

    def wait(self, seconds: float) -> None:
        """Sleep that ends early when the server stops."""
        self._stopping.wait(seconds)


def _text_of(content: Any) -> str:
    """Message content as text, whether a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _count_words(body: dict[str, Any]) -> int:
    system = body.get("system")
    words = len(_text_of(system).split()) if system else 0
    return words + sum(len(_text_of(m.get("content")).split()) for m in body.get("messages", []))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked SSE, so a dropped connection is detectably incomplete

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def owner(self) -> LLMServer:
        return self.server.owner  # type: ignore[attr-defined, no-any-return]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        api = "openai" if self.path.rstrip("/").endswith("/chat/completions") else (
            "anthropic" if self.path.rstrip("/").endswith("/messages") else None)
        rec = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.owner._record(rec)
        if api is None:
            return self._error("openai", 404, f"unknown path {self.path}")
        if not isinstance(body, dict):
            return self._error(api, 400, "request body is not JSON")

        fault = self.owner._next_fault()
        kind = fault[0] if fault else None
        if kind == "status":
            return self._error(api, int(fault[1]), None, fault[2] if len(fault) > 2 else None)  # type: ignore[index]
        if kind == "sleep":
            self.owner.wait(float(fault[1]))  # type: ignore[index]
        if api == "openai" and self.owner.reject_stream_options and "stream_options" in body:
            return self._error(api, 400, "Unrecognized request argument supplied: stream_options")

        text = self.owner.reply_for(body)
        pieces = chunks(text)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        truncated = isinstance(limit, int) and len(pieces) > limit
        if truncated:
            pieces = pieces[:limit]
        rec.usage = {"input": _count_words(body), "output": len(pieces)}
        break_after = int(fault[1]) if kind in ("break_stream_after", "stream_error") else None  # type: ignore[index]
        error_event = kind == "stream_error"

        if kind == "body":
            return self._send(200, json.dumps(fault[1]).encode(), "application/json")  # type: ignore[index]
        if kind == "malformed" and body.get("stream"):
            name = "message_start" if api == "anthropic" else None
            return self._stream(iter([(name, '{"id": "broken", "choices": [', False)]), None)
        if kind == "malformed":
            return self._send(200, b'{"id": "broken", "choices": [{"message": ', "application/json")
        if body.get("stream"):
            events = (self._openai_events(body, pieces, truncated, rec.usage) if api == "openai"
                      else self._anthropic_events(body, pieces, truncated, rec.usage))
            return self._stream(events, break_after, api if error_event else None)
        if break_after is not None:  # not a stream: send half a body, then drop the connection
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "500")
            self.end_headers()
            self.wfile.write(b'{"id": "cut", "choices": [')
            return self._drop()
        payload = (self._openai_json(body, pieces, truncated, rec.usage) if api == "openai"
                   else self._anthropic_json(body, pieces, truncated, rec.usage))
        return self._send(200, json.dumps(payload).encode(), "application/json")

    # -- OpenAI ------------------------------------------------------------------------------
    def _openai_json(self, body: dict[str, Any], pieces: list[str], truncated: bool,
                     usage: dict[str, int]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", ""), "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                         "logprobs": None, "finish_reason": "length" if truncated else "stop"}],
            "usage": {"prompt_tokens": usage["input"], "completion_tokens": usage["output"],
                      "total_tokens": usage["input"] + usage["output"]},
        }

    def _openai_events(self, body: dict[str, Any], pieces: list[str], truncated: bool,
                       usage: dict[str, int]) -> Iterator[tuple[str | None, Any, bool]]:
        """(event name, data, is a text chunk) in the order the real API sends them."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model", ""), "system_fingerprint": None}
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                    **extra}

        yield None, chunk({"role": "assistant", "content": "", "refusal": None}), False
        for p in pieces:
            yield None, chunk({"content": p}), True
        yield None, chunk({}, "length" if truncated else "stop"), False
        if include_usage:
            yield None, {**base, "choices": [], "usage": {
                "prompt_tokens": usage["input"], "completion_tokens": usage["output"],
                "total_tokens": usage["input"] + usage["output"]}}, False
        yield None, "[DONE]", False

    # -- Anthropic ---------------------------------------------------------------------------
    def _anthropic_json(self, body: dict[str, Any], pieces: list[str], truncated: bool,
                        usage: dict[str, int]) -> dict[str, Any]:
        return {
            "id": "msg_test", "type": "message", "role": "assistant", "model": body.get("model", ""),
            "content": [{"type": "text", "text": "".join(pieces)}],
            "stop_reason": "max_tokens" if truncated else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage["input"], "output_tokens": usage["output"]},
        }

    def _anthropic_events(self, body: dict[str, Any], pieces: list[str], truncated: bool,
                          usage: dict[str, int]) -> Iterator[tuple[str | None, Any, bool]]:
        message = {"id": "msg_test", "type": "message", "role": "assistant", "model": body.get("model", ""),
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": usage["input"], "output_tokens": 1}}
        yield "message_start", {"type": "message_start", "message": message}, False
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}, False
        yield "ping", {"type": "ping"}, False
        for p in pieces:
            yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": p}}, True
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}, False
        yield "message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": "max_tokens" if truncated else "end_turn",
                                          "stop_sequence": None},
                                "usage": {"output_tokens": usage["output"]}}, False
        yield "message_stop", {"type": "message_stop"}, False

    # -- wire --------------------------------------------------------------------------------
    def _stream(self, events: Iterator[tuple[str | None, Any, bool]], break_after: int | None,
                error_api: str | None = None) -> None:
        """Send SSE frames; after `break_after` text chunks, drop the connection or (error_api) send an error."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        for event, data, is_text in events:
            if break_after is not None and is_text and sent >= break_after:
                if error_api is None:
                    return self._drop()
                error = {"type": "overloaded_error", "message": "Overloaded"}
                frame = (f"event: error\ndata: {json.dumps({'type': 'error', 'error': error})}\n\n"
                         if error_api == "anthropic" else
                         f"data: {json.dumps({'error': {**error, 'type': 'server_error', 'code': None}})}\n\n")
                self._chunk(frame.encode())
                self.wfile.write(b"0\r\n\r\n")
                return None
            payload = data if isinstance(data, str) else json.dumps(data)
            frame = (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
            self._chunk(frame.encode())
            sent += is_text
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the socket mid-body, as a crashed upstream or a cut network would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _error(self, api: str, status: int, message: str | None, headers: dict[str, str] | None = None) -> None:
        if message is None:
            message = {401: f"Incorrect API key provided: {self._presented_key()}.",  # echoed on purpose
                       429: "Rate limit reached. Please try again in 1s.",
                       529: "Overloaded"}.get(status, f"scripted error {status}")
        if api == "anthropic":
            payload: dict[str, Any] = {"type": "error", "request_id": "req_test", "error": {
                "type": _ANTHROPIC_ERRORS.get(status, "api_error"), "message": message}}
        else:
            payload = {"error": {"message": message, "type": _OPENAI_ERRORS.get(status, "server_error"),
                                 "param": None, "code": "invalid_api_key" if status == 401 else None}}
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _presented_key(self) -> str:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else self.headers.get("x-api-key", "")

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_test")
        self.send_header("request-id", "req_test")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client gave up (e.g. after a scripted sleep)
            self.close_connection = True


@pytest.fixture(name="llm_server")
def llm_server_fixture() -> Iterator[LLMServer]:
    """A started server, stopped after the test; import this and ask for `llm_server`."""
    server = LLMServer().start()
    try:
        yield server
    finally:
        server.stop()
