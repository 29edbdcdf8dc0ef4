"""Registers this package's ingestion engines with `rag.registry` (entry point `rag.plugins`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    def local(settings: Any, embedder: Any, store: Any) -> Any:
        from ingest.run import LocalIngestor

        return LocalIngestor(settings, embedder, store)

    def ray(settings: Any, embedder: Any, store: Any, **options: Any) -> Any:
        from ingest.ray_engine import RayIngestor

        return RayIngestor(settings, embedder, store, **options)

    register("ingestor", "local", local)
    register("ingestor", "ray", ray)
