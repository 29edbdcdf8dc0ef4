"""Claude models through the Anthropic Messages API.

The SDK's own retries are off (`max_retries=0`): the fallback chain decides
when to retry, wait or move on, from the `ProviderError` raised here.

Two things of anthropic>=2 (API version 2026-10-21) to know: the key goes out
as `Authorization: Bearer` (not `x-api-key`), and sampling parameters are gone
from the SDK and rejected by the API, so `GenerationParams.temperature` is not
sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.config import ProviderSettings
from rag.errors import DependencyMissingError, MissingKeyError
from rag.llm.base import (
    Completion,
    Delta,
    GenerationParams,
    Message,
    ProviderError,
    StreamEvent,
    StreamInterrupted,
    Usage,
    is_retryable_status,
)
from rag.llm.http_common import (
    NO_AUTH_KEY,
    MalformedResponse,
    malformed_types,
    need,
    parse_retry_after,
    redact,
    resolve_api_key,
    short,
    transport_errors,
)

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}
"""Anthropic stop reasons in the OpenAI words the rest of the code checks for ("length" = cut off)."""


class AnthropicChat:
    """A Claude model.

    Args:
        cfg: the provider's settings; `base_url` for a proxy or gateway.
        home: the data home (unused; part of the provider factory signature).

    Example:
        >>> cfg = ProviderSettings(name="claude", kind="anthropic", model="claude-haiku-4-5")
        >>> llm = AnthropicChat(cfg, Path(".rag"))  # doctest: +SKIP
        >>> llm.complete([Message("system", "Be brief."), Message("user", "Hi")], GenerationParams())  # doctest: +SKIP

    Raises:
        MissingKeyError: no API key (set ANTHROPIC_API_KEY or cfg.api_key).
    """

    def __init__(self, cfg: ProviderSettings, home: Path) -> None:
        self.cfg = cfg
        self.home = home
        self.name = cfg.name
        self.model = cfg.model or "claude-haiku-4-5"
        self.context_window = cfg.context_window or 200000
        env = cfg.api_key_env or "ANTHROPIC_API_KEY"
        key = resolve_api_key(cfg, "ANTHROPIC_API_KEY")
        if key is None and cfg.base_url is None:
            raise MissingKeyError(f"provider {cfg.name!r} (anthropic) has no API key: set {env} "
                              "or api_key in its settings")
        # Always pass a key: with none, anthropic>=2 goes looking for profiles and credential files.
        self._key = key or NO_AUTH_KEY
        self._client: Any = None

    # -- LLM Protocol ------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """An estimate (characters / 4): Claude's tokenizer is not published and counting it costs an API call."""
        return max(1, len(text) // 4)

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        self._client_for()  # the SDK's import is not the model's latency
        start = time.monotonic()
        try:
            resp = self._client_for().messages.create(**self._request(messages, params))
            text, finish, usage = _read_message(resp)
        except Exception as exc:  # noqa: BLE001 - _map re-raises what it does not know (our own bugs)
            raise self._map(exc, params) from None
        used = usage or self._estimate(messages, text)
        return Completion(text=text, provider=self.name, model=self.model, usage=used,
                          finish_reason=finish, latency_s=time.monotonic() - start)

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        """Yields `Delta`s, then one `Completion`.

        Raises:
            StreamInterrupted: the stream broke after text was yielded (its `partial` holds it).
            ProviderError: the call failed before any text.
        """
        self._client_for()
        start = time.monotonic()
        parts: list[str] = []
        ttft: float | None = None
        finish: str | None = None
        input_tokens: int | None = None
        output_tokens: int | None = None
        stopped = False
        sdk_stream: Any = None
        try:
            sdk_stream = self._client_for().messages.create(**self._request(messages, params), stream=True)
            for event in sdk_stream:
                kind = getattr(event, "type", None)
                if kind == "message_start":
                    input_tokens = _int(getattr(getattr(event, "message", None), "usage", None), "input_tokens")
                elif kind == "content_block_delta" and getattr(getattr(event, "delta", None), "type", None) == "text_delta":
                    piece = getattr(event.delta, "text", None)
                    if piece is not None and not isinstance(piece, str):
                        raise MalformedResponse(f"stream event: text is {type(piece).__name__}, expected str")
                    if piece:
                        if ttft is None:
                            ttft = time.monotonic() - start
                        parts.append(piece)
                        yield Delta(piece)
                elif kind == "message_delta":
                    reason = getattr(getattr(event, "delta", None), "stop_reason", None)
                    finish = _FINISH.get(reason or "", reason) if isinstance(reason, str) else finish
                    usage = getattr(event, "usage", None)
                    output_tokens = _int(usage, "output_tokens") or output_tokens
                    input_tokens = _int(usage, "input_tokens") or input_tokens
                elif kind == "message_stop":
                    stopped = True
            if not stopped:
                raise _Truncated("stream ended without message_stop")
        except Exception as exc:  # noqa: BLE001 - _map re-raises what it does not know
            err = self._map(exc, params)
            if parts:
                raise StreamInterrupted(self.name, str(err).removeprefix(f"{self.name}: "), "".join(parts)) from None
            raise err from None
        finally:
            if sdk_stream is not None:
                sdk_stream.close()
        text = "".join(parts)
        est = self._estimate(messages, text)
        usage = Usage(input_tokens if input_tokens is not None else est.input_tokens,
                      output_tokens if output_tokens is not None else est.output_tokens)
        yield Completion(text=text, provider=self.name, model=self.model, usage=usage, finish_reason=finish,
                         latency_s=time.monotonic() - start, ttft_s=ttft)

    # -- internals ---------------------------------------------------------------------------
    def _client_for(self) -> Any:
        if self._client is None:
            try:
                import anthropic
            except ImportError:
                raise DependencyMissingError("the anthropic provider", "llm", "anthropic") from None
            self._client = anthropic.Anthropic(api_key=self._key, base_url=self.cfg.base_url,
                                               timeout=self.cfg.timeout_s, max_retries=0)
        return self._client

    def _request(self, messages: list[Message], params: GenerationParams) -> dict[str, Any]:
        """System messages go in the `system` field; consecutive same-role turns are merged."""
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                continue
            if turns and turns[-1]["role"] == m.role:
                turns[-1]["content"] += "\n\n" + m.content
            else:
                turns.append({"role": m.role, "content": m.content})
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": turns,
            "max_tokens": min(params.max_tokens, self.cfg.max_output_tokens),
            "timeout": min(params.timeout_s, self.cfg.timeout_s),
        }
        if system:
            kwargs["system"] = system
        if params.stop:
            kwargs["stop_sequences"] = list(params.stop)
        return kwargs

    def _estimate(self, messages: list[Message], text: str) -> Usage:
        return Usage(sum(self.count_tokens(m.content) for m in messages), self.count_tokens(text) if text else 0)

    def _map(self, exc: BaseException, params: GenerationParams) -> ProviderError:
        """The SDK's exception as a ProviderError with the chain's retry hints; never with the key."""
        import anthropic

        timeout = min(params.timeout_s, self.cfg.timeout_s)
        timeouts, transport = transport_errors()  # these escape the SDK while a stream is read
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, _Truncated):
            return self._err(str(exc), retryable=True)
        if isinstance(exc, (anthropic.APITimeoutError, *timeouts)):
            return self._err(f"timed out after {timeout:g}s", retryable=True)
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            return self._err(f"connection failed: {cause or exc}", retryable=True)
        if isinstance(exc, transport):
            return self._err(f"connection failed: {type(exc).__name__}: {exc}", retryable=True)
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            kind = getattr(exc, "type", None) or type(exc).__name__
            detail = getattr(exc, "api_message", None) or type(exc).__name__
            request_id = getattr(exc, "request_id", None)
            message = f"{kind}: {detail}" + (f" [request {request_id}]" if request_id else "")
            if status == 200:  # an `error` event inside a stream (e.g. overloaded_error mid-answer)
                retryable = kind in ("overloaded_error", "api_error", "rate_limit_error")
                return self._err(message, retryable=retryable)
            return self._err(message, status=status, retryable=is_retryable_status(status),
                             retry_after=parse_retry_after(exc.response.headers))
        if isinstance(exc, anthropic.APIError):
            return self._err(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}", retryable=True)
        if isinstance(exc, malformed_types()):
            return self._err(f"malformed response ({type(exc).__name__}: {exc})", retryable=True)
        if isinstance(exc, anthropic.AnthropicError):
            return self._err(f"{type(exc).__name__}: {exc}", retryable=False)
        raise exc

    def _err(self, message: str, *, status: int | None = None, retryable: bool,
             retry_after: float | None = None) -> ProviderError:
        return ProviderError(self.name, short(redact(message, self._key)), status=status,
                             retryable=retryable, retry_after=retry_after)


class _Truncated(Exception):
    """The stream ended cleanly but without message_stop."""


def _int(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) else None


def _read_message(resp: Any) -> tuple[str, str | None, Usage | None]:
    """(text, finish reason, usage) of a Messages API response, every field checked."""
    blocks = need(resp, "content", list, "message")
    parts = []
    for block in blocks:
        if getattr(block, "type", None) == "text":
            text = getattr(block, "text", None)
            if not isinstance(text, str):
                raise MalformedResponse(f"message: text block is {type(text).__name__}, expected str")
            parts.append(text)
    reason = getattr(resp, "stop_reason", None)
    finish = _FINISH.get(reason or "", reason) if reason is None or isinstance(reason, str) else None
    usage = getattr(resp, "usage", None)
    inp, out = getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)
    used = Usage(inp, out if isinstance(out, int) else 0) if isinstance(inp, int) else None
    return "".join(parts), finish, used
