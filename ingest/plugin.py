"""Registers this package's ingestion engines with `rag.registry` (entry point `rag.plugins`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    def local(settings: Any, embedder: Any, store: Any) -> Any:
        from ingest.run import LocalIngestor

        return LocalIngestor(settings, embedder, store)

    register("ingestor", "local", local)
