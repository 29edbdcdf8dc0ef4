"""The fallback chain: ordered providers, retries with backoff, a circuit breaker.

It is itself an LLM. Each provider gets its own prompt (`build(provider)`),
so the context is packed for that provider's window. Every try is recorded
as an `Attempt`, so the answer can say who answered and who failed, and why.

Policy:
* retryable errors (timeouts, connection errors, 429, 5xx, malformed
  responses) are retried up to `max_attempts` per provider with exponential
  backoff and full jitter, or after exactly the server's Retry-After;
* non-retryable errors (400/401/403) move to the next provider at once;
* a provider whose last `breaker_failures` attempts all failed is skipped
  for `breaker_reset_s` seconds (then one trial call is let through);
* a stream that fails after text was sent raises `StreamInterrupted`: its
  text is never spliced with another provider's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.config import LLMSettings
from rag.llm.base import (
    LLM,
    Completion,
    Delta,
    GenerationParams,
    Message,
    ProviderError,
    StreamEvent,
    StreamInterrupted,
)
from rag.types import Attempt

__all__ = ["AllProvidersFailed", "Attempt", "ChainStream", "FallbackLLM", "Unavailable", "describe_failures"]

Builder = Callable[[LLM], list[Message]]


@dataclass
class _Breaker:
    failures: int = 0
    opened_at: float | None = None


@dataclass(frozen=True)
class Unavailable:
    """A configured provider that could not be built (no API key, a missing extra): skipped with its reason."""

    name: str
    reason: str
    model: str = ""
    context_window: int = 0


def describe_failures(attempts: list[Attempt]) -> list[str]:
    """One entry per provider and reason, e.g. `openai: connection failed (3 tries)`.

    Provider errors already start with the provider's name; retries with the same reason are counted
    instead of repeated.
    """
    grouped: list[list[Any]] = []
    for a in attempts:
        if a.ok or not a.error:
            continue
        why = a.error.removeprefix(f"{a.provider}: ")
        if grouped and grouped[-1][0] == a.provider and grouped[-1][1] == why:
            grouped[-1][2] += 1
        else:
            grouped.append([a.provider, why, 1])
    return [f"{p}: {why}" + (f" ({n} tries)" if n > 1 else "") for p, why, n in grouped]


class AllProvidersFailed(ProviderError):
    def __init__(self, attempts: list[Attempt]) -> None:
        why = "; ".join(describe_failures(attempts)) or "no provider configured"
        super().__init__("fallback", f"every provider failed ({why})")
        self.attempts = attempts


@dataclass
class ChainStream:
    """Iterate for events; `attempts` and `completion` are filled as it runs."""

    events: Iterator[StreamEvent]
    attempts: list[Attempt] = field(default_factory=list)
    completion: Completion | None = None

    def __iter__(self) -> Iterator[StreamEvent]:
        for event in self.events:
            if isinstance(event, Completion):
                self.completion = event
            yield event


class FallbackLLM:
    """Tries providers in order. Example: `FallbackLLM([openai, local, extractive], settings.llm)`."""

    name = "fallback"

    def __init__(self, providers: Sequence[LLM | Unavailable], settings: LLMSettings, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.providers = list(providers)
        self._usable: list[LLM] = [p for p in providers if not isinstance(p, Unavailable)]
        self.settings = settings
        self._sleep, self._clock = sleep, clock
        self._rng = rng or random.Random()
        self._breakers: dict[str, _Breaker] = {p.name: _Breaker() for p in providers}

    @property
    def model(self) -> str:
        return self._usable[0].model if self._usable else ""

    @property
    def context_window(self) -> int:
        return min((p.context_window for p in self._usable), default=0)

    def count_tokens(self, text: str) -> int:
        return self._usable[0].count_tokens(text) if self._usable else len(text) // 4

    def _skip(self, provider: LLM | Unavailable, attempts: list[Attempt]) -> bool:
        """Record a skipped provider (unavailable, or its circuit open); True when it must be skipped."""
        if isinstance(provider, Unavailable):
            attempts.append(Attempt(provider.name, False, 0.0, f"skipped: {provider.reason}", skipped=True))
            return True
        if self._is_open(provider.name):
            attempts.append(Attempt(provider.name, False, 0.0, "circuit open: skipped", skipped=True))
            return True
        return False

    # -- the LLM Protocol, with one prompt for all ---------------------------------------------
    def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        return self.complete_with(lambda _p: messages, params)[0]

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        return iter(self.stream_with(lambda _p: messages, params))

    # -- RAG-aware: a prompt per provider --------------------------------------------------------
    def complete_with(self, build: Builder, params: GenerationParams,
                      accept: Callable[[Completion], str | None] | None = None) -> tuple[Completion, list[Attempt]]:
        """First acceptable completion; `accept` returns a reason to reject one (then the next provider).

        If every provider answered but each answer was rejected, the last one is returned (its
        attempt stays marked failed with the reason): a flagged answer beats no answer.
        """
        attempts: list[Attempt] = []
        rejected: Completion | None = None
        for provider in self.providers:
            if self._skip(provider, attempts):
                continue
            assert not isinstance(provider, Unavailable)
            messages = build(provider)
            for n in range(self.settings.max_attempts):
                t0 = self._clock()
                try:
                    done = provider.complete(messages, params)
                except ProviderError as exc:
                    attempts.append(Attempt(provider.name, False, self._clock() - t0, str(exc), exc.status))
                    self._failed(provider.name)
                    if not self._should_retry(exc, n, provider.name):
                        break
                    continue
                self._succeeded(provider.name)
                reason = accept(done) if accept else None
                if reason is not None:  # the provider works; its answer does not: no retry, no breaker
                    attempts.append(Attempt(provider.name, False, self._clock() - t0, f"{provider.name}: {reason}"))
                    rejected = done
                    break
                attempts.append(Attempt(provider.name, True, self._clock() - t0))
                return done, attempts
        if rejected is not None:
            return rejected, attempts
        raise AllProvidersFailed(attempts)

    def stream_with(self, build: Builder, params: GenerationParams) -> ChainStream:
        chain = ChainStream(iter(()))
        chain.events = self._stream_events(build, params, chain.attempts)
        return chain

    def _stream_events(self, build: Builder, params: GenerationParams, attempts: list[Attempt]) -> Iterator[StreamEvent]:
        for provider in self.providers:
            if self._skip(provider, attempts):
                continue
            assert not isinstance(provider, Unavailable)
            messages = build(provider)
            for n in range(self.settings.max_attempts):
                t0, sent = self._clock(), False
                try:
                    for event in provider.stream(messages, params):
                        sent = sent or (isinstance(event, Delta) and bool(event.text))
                        yield event
                except StreamInterrupted as exc:
                    attempts.append(Attempt(provider.name, False, self._clock() - t0, str(exc), exc.status))
                    self._failed(provider.name)
                    raise
                except ProviderError as exc:
                    attempts.append(Attempt(provider.name, False, self._clock() - t0, str(exc), exc.status))
                    self._failed(provider.name)
                    if sent:  # a provider that raised a plain error mid-stream: same rule
                        raise StreamInterrupted(provider.name, str(exc), "") from exc
                    if not self._should_retry(exc, n, provider.name):
                        break
                    continue
                attempts.append(Attempt(provider.name, True, self._clock() - t0))
                self._succeeded(provider.name)
                return
        raise AllProvidersFailed(attempts)

    # -- policy ----------------------------------------------------------------------------------
    def _should_retry(self, exc: ProviderError, n: int, name: str) -> bool:
        if not exc.retryable or n + 1 >= self.settings.max_attempts or self._is_open(name):
            return False
        self._sleep(self.backoff(n, exc.retry_after))
        return True

    def backoff(self, n: int, retry_after: float | None = None) -> float:
        """Seconds before retry n+1: the server's Retry-After, else capped exponential with full jitter."""
        if retry_after is not None:
            return max(0.0, min(retry_after, 60.0))
        cap = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2 ** n))
        return self._rng.uniform(0.0, cap)

    def _is_open(self, name: str) -> bool:
        b = self._breakers.setdefault(name, _Breaker())
        if b.opened_at is None:
            return False
        if self._clock() - b.opened_at >= self.settings.breaker_reset_s:
            b.opened_at = None  # half-open: let one call through
            b.failures = self.settings.breaker_failures - 1
            return False
        return True

    def _failed(self, name: str) -> None:
        b = self._breakers.setdefault(name, _Breaker())
        b.failures += 1
        if b.failures >= self.settings.breaker_failures:
            b.opened_at = self._clock()

    def _succeeded(self, name: str) -> None:
        self._breakers[name] = _Breaker()
