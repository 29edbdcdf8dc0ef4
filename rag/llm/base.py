"""The LLM Protocol, what it returns, and the errors the fallback chain acts on.

A provider either returns a `Completion` or raises `ProviderError`, whose
`retryable` flag and `retry_after` tell the chain whether to retry, wait or
move on. Streaming yields text deltas and ends with one `Completion`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from rag.errors import RagError

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """A finished generation and what it cost."""

    text: str
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None


@dataclass(frozen=True)
class Delta:
    """One streamed piece of text."""

    text: str


StreamEvent = Delta | Completion


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 512
    temperature: float = 0.0
    timeout_s: float = 60.0
    stop: tuple[str, ...] = ()


class ProviderError(RagError):
    """A provider call failed; the message never contains an API key.

    Attributes:
        provider: the provider's name.
        status: HTTP status when there was one.
        retryable: timeouts, connection errors, 429 and 5xx are; 400/401/403 are not.
        retry_after: seconds the server asked us to wait (429/503 Retry-After).
    """

    def __init__(self, provider: str, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{provider}: {message}" + (f" (HTTP {status})" if status else ""))
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class StreamInterrupted(ProviderError):
    """A stream broke after text was already sent: never spliced with another provider's text."""

    def __init__(self, provider: str, message: str, partial: str) -> None:
        super().__init__(provider, f"stream interrupted after {len(partial)} characters: {message}")
        self.partial = partial


def is_retryable_status(status: int) -> bool:
    return status == 408 or status == 429 or status >= 500


@runtime_checkable
class LLM(Protocol):
    """A chat model. `name` identifies the configured provider (e.g. "openai:gpt-4o-mini")."""

    name: str
    model: str
    context_window: int
    """Tokens the model accepts, prompt and answer together."""

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in this model's own tokenizer (an estimate where none is available)."""
        ...

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion: ...

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        """Yields `Delta`s, then exactly one `Completion` (with the whole text)."""
        ...
