"""OpenAI chat models, and any OpenAI-compatible server (vLLM, llama.cpp server, Ollama) via `base_url`.

The SDK's own retries are off (`max_retries=0`): the fallback chain decides
when to retry, wait or move on, from the `ProviderError` raised here.
"""

from __future__ import annotations

import functools
import logging
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

log = logging.getLogger(__name__)

@functools.lru_cache(maxsize=8)
def _encoding(model: str) -> Any:
    """The model's BPE (bpe-openai ships the vocabularies; tiktoken would download them), or None."""
    try:
        import bpe_openai
    except ImportError:
        return None
    try:
        return bpe_openai.encoding_for_model(model)
    except (KeyError, ValueError):
        return bpe_openai.get_encoding("o200k_base")


class OpenAIChat:
    """An OpenAI chat model, or one served by an OpenAI-compatible server.

    Args:
        cfg: the provider's settings; `base_url` points at a compatible server.
        home: the data home (unused; part of the provider factory signature).

    Example:
        >>> cfg = ProviderSettings(name="vllm", kind="openai", model="qwen2.5-7b",
        ...                        base_url="http://localhost:8000/v1")
        >>> llm = OpenAIChat(cfg, Path(".rag"))
        >>> llm.complete([Message("user", "Hi")], GenerationParams()).text  # doctest: +SKIP

    Raises:
        MissingKeyError: no API key for api.openai.com (set OPENAI_API_KEY or cfg.api_key).
    """

    def __init__(self, cfg: ProviderSettings, home: Path) -> None:
        self.cfg = cfg
        self.home = home
        self.name = cfg.name
        self.model = cfg.model or "gpt-4o-mini"
        self.context_window = cfg.context_window or (8192 if cfg.base_url else 128000)
        env = cfg.api_key_env or "OPENAI_API_KEY"
        key = resolve_api_key(cfg, "OPENAI_API_KEY")
        if key is None and cfg.base_url is None:
            raise MissingKeyError(f"provider {cfg.name!r} (openai) has no API key: set {env} "
                              "or api_key in its settings, or give a base_url for a server without auth")
        self._key = key or NO_AUTH_KEY
        self._client: Any = None
        self._stream_usage = True  # ask for a final usage chunk until a server rejects stream_options

    # -- LLM Protocol ------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Exact for OpenAI models when bpe-openai is installed; otherwise (and on other servers) an estimate."""
        enc = _encoding(self.model)
        if enc is None:
            return max(1, len(text) // 4)
        return len(enc.encode(text, disallowed_special=()))

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        self._client_for()  # the SDK's import is not the model's latency
        start = time.monotonic()
        try:
            resp = self._create(messages, params, stream=False)
            text, finish, usage = _read_completion(resp)
        except ProviderError:
            raise
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
        usage: Usage | None = None
        sdk_stream: Any = None
        try:
            sdk_stream = self._open_stream(messages, params)
            for chunk in sdk_stream:
                usage = _read_usage(chunk) or usage
                for choice in getattr(chunk, "choices", None) or ():
                    delta = getattr(choice, "delta", None)
                    piece = getattr(delta, "content", None)
                    if piece is not None and not isinstance(piece, str):
                        raise MalformedResponse(f"stream chunk: content is {type(piece).__name__}, expected str")
                    if piece:
                        if ttft is None:
                            ttft = time.monotonic() - start
                        parts.append(piece)
                        yield Delta(piece)
                    if getattr(choice, "finish_reason", None):
                        finish = str(choice.finish_reason)
            if finish is None:
                raise _Truncated("stream ended without a finish_reason")
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - _map re-raises what it does not know
            err = self._map(exc, params)
            if parts:
                raise StreamInterrupted(self.name, str(err).removeprefix(f"{self.name}: "), "".join(parts)) from None
            raise err from None
        finally:
            if sdk_stream is not None:
                sdk_stream.close()
        text = "".join(parts)
        yield Completion(text=text, provider=self.name, model=self.model,
                         usage=usage or self._estimate(messages, text), finish_reason=finish,
                         latency_s=time.monotonic() - start, ttft_s=ttft)

    # -- internals ---------------------------------------------------------------------------
    def _client_for(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise DependencyMissingError("the openai provider", "llm", "openai") from None
            self._client = openai.OpenAI(api_key=self._key, base_url=self.cfg.base_url,
                                         timeout=self.cfg.timeout_s, max_retries=0)
        return self._client

    def _create(self, messages: list[Message], params: GenerationParams, *, stream: bool,
                **extra: Any) -> Any:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": min(params.max_tokens, self.cfg.max_output_tokens),
            "temperature": params.temperature,
            "timeout": min(params.timeout_s, self.cfg.timeout_s),
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if stream:
            kwargs["stream"] = True
        return self._client_for().chat.completions.create(**kwargs, **extra)

    def _open_stream(self, messages: list[Message], params: GenerationParams) -> Any:
        if not self._stream_usage:
            return self._create(messages, params, stream=True)
        import openai

        try:
            return self._create(messages, params, stream=True, stream_options={"include_usage": True})
        except openai.BadRequestError as exc:
            if "stream_options" not in str(exc):
                raise
            log.info("%s rejects stream_options; streaming without usage from now on", self.name)
            self._stream_usage = False
            return self._create(messages, params, stream=True)

    def _estimate(self, messages: list[Message], text: str) -> Usage:
        return Usage(sum(self.count_tokens(m.content) for m in messages), self.count_tokens(text) if text else 0)

    def _map(self, exc: BaseException, params: GenerationParams) -> ProviderError:
        """The SDK's exception as a ProviderError with the chain's retry hints; never with the key."""
        import openai

        timeout = min(params.timeout_s, self.cfg.timeout_s)
        timeouts, transport = transport_errors()
        if isinstance(exc, _Truncated):
            return self._err(str(exc), retryable=True)
        if isinstance(exc, (openai.APITimeoutError, *timeouts)):
            return self._err(f"timed out after {timeout:g}s", retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            return self._err(f"connection failed: {cause or exc}", retryable=True)
        if isinstance(exc, transport):
            return self._err(f"connection failed: {type(exc).__name__}: {exc}", retryable=True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = getattr(exc, "message", "") or type(exc).__name__
            if isinstance(exc.body, dict) and isinstance(exc.body.get("message"), str):
                detail = exc.body["message"]
            request_id = getattr(exc, "request_id", None)
            return self._err(f"{type(exc).__name__}: {detail}" + (f" [request {request_id}]" if request_id else ""),
                             status=status, retryable=is_retryable_status(status),
                             retry_after=parse_retry_after(exc.response.headers))
        if isinstance(exc, openai.APIError):
            return self._err(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}", retryable=True)
        if isinstance(exc, malformed_types()):
            return self._err(f"malformed response ({type(exc).__name__}: {exc})", retryable=True)
        if isinstance(exc, openai.OpenAIError):
            return self._err(f"{type(exc).__name__}: {exc}", retryable=False)
        raise exc

    def _err(self, message: str, *, status: int | None = None, retryable: bool,
             retry_after: float | None = None) -> ProviderError:
        return ProviderError(self.name, short(redact(message, self._key)), status=status,
                             retryable=retryable, retry_after=retry_after)


class _Truncated(Exception):
    """The stream ended cleanly but without saying it was done."""


def _read_usage(obj: Any) -> Usage | None:
    usage = getattr(obj, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    if not isinstance(prompt, int):
        return None
    completion = getattr(usage, "completion_tokens", None)
    return Usage(prompt, completion if isinstance(completion, int) else 0)


def _read_completion(resp: Any) -> tuple[str, str | None, Usage | None]:
    """(text, finish reason, usage) of a chat completion, every field checked."""
    choices = need(resp, "choices", list, "chat completion")
    if not choices:
        raise MalformedResponse("chat completion: no choices")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise MalformedResponse("chat completion: choice without a message")
    text = getattr(message, "content", None) or ""
    if not isinstance(text, str):
        raise MalformedResponse(f"chat completion: content is {type(text).__name__}, expected str")
    finish = getattr(choices[0], "finish_reason", None)
    return text, (str(finish) if finish is not None else None), _read_usage(resp)
