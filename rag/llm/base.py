"""The errors the fallback chain acts on; the LLM Protocol and its data, re-exported from their homes.

`LLM` lives in `rag.protocols`, `Message`/`Completion`/`Delta`/... in `rag.types`;
importing them from here keeps working.

A provider either returns a `Completion` or raises `ProviderError`, whose
`retryable` flag and `retry_after` tell the chain whether to retry, wait or
move on. Streaming yields text deltas and ends with one `Completion`.
"""

from __future__ import annotations

from rag.errors import RagError
from rag.protocols import LLM
from rag.types import Completion, Delta, GenerationParams, Message, Role, StreamEvent, Usage

__all__ = ["LLM", "Completion", "Delta", "GenerationParams", "Message", "ProviderError", "Role", "StreamEvent",
           "StreamInterrupted", "Usage", "is_retryable_status"]


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
