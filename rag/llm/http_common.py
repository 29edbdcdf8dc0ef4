"""Helpers shared by the HTTP providers (OpenAI, Anthropic): keys, retry hints, error text.

The providers map only what the SDK call raises into `ProviderError`s; reading
the response is checked field by field and a bad shape raises `MalformedResponse`.
Anything else (a bug of ours) propagates, so it is never retried as if the
server were at fault.
"""

from __future__ import annotations

import email.utils
import functools
import importlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from rag.config import ProviderSettings

NO_AUTH_KEY = "unused"
"""Sent to OpenAI-compatible servers that need no key (the SDK insists on one)."""


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret` replaced, so no error message or log line carries an API key."""
    if secret and secret != NO_AUTH_KEY and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def resolve_api_key(cfg: ProviderSettings, default_env: str) -> str | None:
    """cfg.api_key, else the environment variable cfg.api_key_env (or `default_env`)."""
    if cfg.api_key is not None and cfg.api_key.get_secret_value():
        return cfg.api_key.get_secret_value()
    return os.environ.get(cfg.api_key_env or default_env) or None


@functools.cache
def transport_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(timeouts, all transport errors) of the HTTP library under the SDKs: httpx2 (openai>=3,
    anthropic>=1) or httpx (older). Some escape the SDKs while a stream is read."""
    timeouts: list[type[Exception]] = []
    errors: list[type[Exception]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        errors.append(module.HTTPError)
    return tuple(timeouts), tuple(errors)


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."



class MalformedResponse(Exception):
    """The server answered 200 with a body we cannot read (a retryable fault of the server)."""


def malformed_types() -> tuple[type[Exception], ...]:
    """What counts as a malformed body: our own shape checks and undecodable JSON from the SDK."""
    return (MalformedResponse, json.JSONDecodeError, UnicodeDecodeError)


def need(obj: Any, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """`obj.name` checked against `kind`; a missing or wrong field is a `MalformedResponse`."""
    value = getattr(obj, name, None)
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MalformedResponse(f"{what}: field {name!r} is {type(value).__name__}, expected {expected}")
    return value
