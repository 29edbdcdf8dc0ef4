"""Build configured providers through the registry; modules with heavy SDKs load only when used."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from rag import registry
from rag.config import ProviderSettings
from rag.errors import DependencyMissingError, MissingKeyError
from rag.llm.fallback import Unavailable
from rag.protocols import LLM


def make_provider(cfg: ProviderSettings, home: Path) -> LLM:
    """An LLM for one configured provider (the error lists the known kinds)."""
    return cast(LLM, registry.create("llm", cfg.kind, cfg, home))


def build_providers(cfgs: list[ProviderSettings], home: Path) -> list[LLM | Unavailable]:
    """Every provider of a chain; one that cannot be built (no API key, a missing extra) becomes
    `Unavailable`, which the chain records as a skipped attempt with the reason. When none can be
    built (a chain of one included), the first one's error is raised."""
    out: list[LLM | Unavailable] = []
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
