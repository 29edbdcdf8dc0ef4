"""The HTTP API (FastAPI): `create_app()` builds it, `rag serve` runs it under uvicorn."""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Lazy import, so `import apps.api` does not load FastAPI and the model stack."""
    from rag_platform.apps.api.app import create_app as build

    return build(*args, **kwargs)


__all__ = ["create_app"]
