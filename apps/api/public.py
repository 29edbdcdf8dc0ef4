"""What the HTTP API may show a caller: no server paths, error types in one style.

An uploaded file is stored at `<home>/uploads/<collection>/<name>`; a caller
knows it by the name it uploaded, and the server's folder layout is none of
its business. Error types are snake_case (`not_found`) like the ones the API
sets itself, never a Python class name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SOURCE_KEYS = ("source", "source_uri")

# Our error classes by what a client should branch on; others fall back to their snake_case name.
ERROR_TYPES = {"NotFoundError": "not_found", "ConfigError": "bad_request", "MissingKeyError": "bad_request",
               "IndexMismatchError": "index_mismatch", "DependencyMissingError": "not_installed",
               "AllProvidersFailed": "providers_failed", "ProviderError": "provider_error",
               "StreamInterrupted": "stream_interrupted"}


def error_type(exc: BaseException) -> str:
    """`not_found`, `bad_request`, ...: the snake_case type of one of our errors."""
    for cls in type(exc).__mro__:  # a subclass (CollectionNotFoundError) takes its family's type
        if cls.__name__ in ERROR_TYPES:
            return ERROR_TYPES[cls.__name__]
    name = type(exc).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower() or "error"


def public_path(source: str, uploads: Path) -> str:
    """An upload's path relative to its collection's upload folder (its uploaded name); else unchanged."""
    path = Path(source)
    if path.is_absolute() and path.is_relative_to(uploads):
        inner = path.relative_to(uploads).parts[1:]  # drop the collection folder
        return "/".join(inner) if inner else path.name
    return source


def public(data: Any, uploads: Path) -> Any:
    """`data` (JSON-ready dicts and lists) with every `source` under the upload folder made relative."""
    if isinstance(data, dict):
        return {k: public_path(v, uploads) if k in SOURCE_KEYS and isinstance(v, str) else public(v, uploads)
                for k, v in data.items()}
    if isinstance(data, list):
        return [public(v, uploads) for v in data]
    return data
