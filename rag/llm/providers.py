"""Build configured providers through the registry; modules with heavy SDKs load only when used."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from rag import registry
from rag.config import ProviderSettings

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
