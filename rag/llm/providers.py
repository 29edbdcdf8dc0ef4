"""Build configured providers through the registry; modules with heavy SDKs load only when used."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from rag import registry
from rag.config import ProviderSettings
from rag.errors import DependencyMissingError, MissingKeyError
from rag.llm.fallback import Unavailable

# kind -> module that registers it (imported on first use: the SDKs are optional extras).
BUILTIN = {
    "extractive": "rag.llm.extractive",
    "local": "rag.llm.local",
    "openai": "rag.llm.openai_provider",
    "anthropic": "rag.llm.anthropic_provider",
    "llamacpp": "rag.llm.llamacpp",
}


def make_provider(cfg: ProviderSettings, home: Path) -> Any:
    """An LLM for one configured provider (the error lists the known kinds)."""
    if cfg.kind in BUILTIN:
        importlib.import_module(BUILTIN[cfg.kind])
    return registry.create("llm", cfg.kind, cfg, home)


def build_providers(cfgs: list[ProviderSettings], home: Path) -> list[Any]:
    """Every provider of a chain; one that cannot be built (no API key, a missing extra) becomes
    `Unavailable`, which the chain records as a skipped attempt with the reason. When none can be
    built (a chain of one included), the first one's error is raised."""
    out: list[Any] = []
    errors: list[Exception] = []
    for cfg in cfgs:
        try:
            out.append(make_provider(cfg, home))
        except (MissingKeyError, DependencyMissingError) as exc:
            errors.append(exc)
            out.append(Unavailable(cfg.name, str(exc), cfg.model))
    if errors and len(errors) == len(cfgs):
        raise errors[0]
    return out
