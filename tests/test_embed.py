"""The default embedder: the single-query fast path and the query-vector cache."""

from __future__ import annotations

import numpy as np
import pytest

QUERIES = [
    "what is reciprocal rank fusion?",
    "a",
    "word " * 400,  # longer than the model's 256 tokens: truncated the same way
    "Ünïcode tëxt, émojis 🎉 and numbers 1234",
]


@pytest.mark.parametrize("text", QUERIES)
def test_query_fast_path_gives_the_batch_vector(fp32_embedder, text: str) -> None:
    fp32_embedder.queries.clear()
    batch = fp32_embedder.encode([text])[0]
    single = fp32_embedder.encode_query(text)
    assert fp32_embedder._fast_path(), "the default model is mean pooling: the fast path must be taken"
    np.testing.assert_allclose(single, batch, atol=1e-5)
    assert abs(float(np.linalg.norm(single)) - 1.0) < 1e-5


def test_query_cache_returns_the_same_vector_and_evicts_oldest(fp32_embedder, monkeypatch) -> None:
    monkeypatch.setattr(fp32_embedder.settings, "query_cache", 2)
    fp32_embedder.queries.clear()
    calls: list[str] = []
    real = fp32_embedder._encode_one
    monkeypatch.setattr(fp32_embedder, "_encode_one", lambda t: calls.append(t) or real(t))
    a = fp32_embedder.encode_query("alpha")
    assert fp32_embedder.encode_query("alpha") is a
    fp32_embedder.encode_query("beta")
    fp32_embedder.encode_query("gamma")  # evicts alpha
    fp32_embedder.encode_query("alpha")
    assert calls == ["alpha", "beta", "gamma", "alpha"]
    assert not a.flags.writeable  # a cached vector cannot be changed by a caller
    fp32_embedder.queries.clear()


def test_int8_caches_query_vectors_too(int8_embedder, monkeypatch) -> None:
    monkeypatch.setattr(int8_embedder.settings, "query_cache", 2)
    int8_embedder.queries.clear()
    calls: list[list[str]] = []
    real = int8_embedder.encode
    monkeypatch.setattr(int8_embedder, "encode", lambda texts, **kw: calls.append(texts) or real(texts, **kw))
    a = int8_embedder.encode_query("alpha")
    assert int8_embedder.encode_query("alpha") is a and calls == [["alpha"]]
    np.testing.assert_allclose(a, real(["alpha"])[0], atol=1e-6)
    int8_embedder.encode_query("beta")
    int8_embedder.encode_query("gamma")  # evicts alpha
    int8_embedder.encode_query("alpha")
    assert len(calls) == 4 and len(int8_embedder.queries) == 2 and not a.flags.writeable
    int8_embedder.queries.clear()


def test_query_cache_off(fp32_embedder, monkeypatch) -> None:
    monkeypatch.setattr(fp32_embedder.settings, "query_cache", 0)
    fp32_embedder.queries.clear()
    fp32_embedder.encode_query("alpha")
    assert len(fp32_embedder.queries) == 0
