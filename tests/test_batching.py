"""rag.batching: concurrent queries share model calls, each caller gets its own row, slots are honoured."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.batching import BatchingEmbedder, ModelSlots, for_serving
from rag.config import ServingSettings

QUERIES = [f"question number {i} about {topic}" for i, topic in enumerate(
    ["vitamin D", "hip fractures", "mitochondria", "BM25 ranking", "password reset", "citations", "FAISS",
     "reciprocal rank fusion", "chunk overlap", "crash safety", "OCR of scans", "answer cache"] * 4)]


class Slow:
    """Wraps the real embedder, sleeping in each call and recording how many run at once (to see overlap)."""

    def __init__(self, inner, delay: float = 0.02) -> None:
        self.inner, self.delay = inner, delay
        self.model_id, self.settings = inner.model_id, inner.settings
        self.active = self.peak = 0
        self.calls: list[int] = []
        self._lock = threading.Lock()

    dim = property(lambda self: self.inner.dim)
    max_tokens = property(lambda self: self.inner.max_tokens)

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def token_offsets(self, text):
        return self.inner.token_offsets(text)

    def encode(self, texts, *, batch_size=None):
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append(len(texts))
        try:
            time.sleep(self.delay)
            return self.inner.encode(texts, batch_size=batch_size)
        finally:
            with self._lock:
                self.active -= 1

    def encode_query(self, text):
        return self.encode([text])[0]


def test_each_caller_gets_its_own_vector_under_concurrency(embedder) -> None:
    expected = embedder.encode(QUERIES)
    slow = Slow(embedder)
    batcher = BatchingEmbedder(slow, wait_ms=5, max_batch=16, cache_size=0)
    barrier = threading.Barrier(len(QUERIES))

    def one(i: int) -> np.ndarray:
        barrier.wait()
        return batcher.encode_query(QUERIES[i])

    with ThreadPoolExecutor(len(QUERIES)) as pool:
        got = list(pool.map(one, range(len(QUERIES))))
    for i, vec in enumerate(got):
        np.testing.assert_allclose(vec, expected[i], atol=1e-5, err_msg=QUERIES[i])
    assert (np.argmax(np.stack(got) @ expected.T, axis=1) == np.arange(len(QUERIES))).all()
    # shared model calls: far fewer calls than callers, none above the batch limit, one at a time
    assert len(slow.calls) <= len(QUERIES) // 3, slow.calls
    assert max(slow.calls) <= 16 and slow.peak == 1


def test_lone_query_is_not_held_long_and_is_cached(embedder) -> None:
    batcher = BatchingEmbedder(embedder, wait_ms=2)
    t0 = time.perf_counter()
    vec = batcher.encode_query("a lone question")
    assert time.perf_counter() - t0 < 5
    np.testing.assert_allclose(vec, embedder.encode(["a lone question"])[0], atol=1e-5)
    assert batcher.encode_query("a lone question") is vec and not vec.flags.writeable
    assert batcher.batches[-1] == 1


def test_model_slots_bound_bulk_and_query_calls(embedder) -> None:
    slow = Slow(embedder, delay=0.03)
    slots = ModelSlots(2)
    batcher = BatchingEmbedder(slow, slots=slots, wait_ms=1, cache_size=0)
    texts = [f"bulk text {i}" for i in range(8)]

    def bulk(_: int) -> np.ndarray:
        return batcher.encode(texts, batch_size=2)  # four slices, each holding a slot

    def query(i: int) -> np.ndarray:
        return batcher.encode_query(f"query {i}")

    with ThreadPoolExecutor(12) as pool:
        outs = [pool.submit(bulk, i) for i in range(6)] + [pool.submit(query, i) for i in range(6)]
        results = [f.result() for f in outs]
    assert slots.peak == 2 == slow.peak  # the limit was reached and never passed
    assert slots.busy == 0 and slots.limit == 2
    np.testing.assert_allclose(results[0], embedder.encode(texts), atol=1e-5)


def test_errors_reach_every_waiting_caller(embedder) -> None:
    class Broken(Slow):
        def encode(self, texts, *, batch_size=None):
            time.sleep(0.01)
            raise RuntimeError("model fell over")

    batcher = BatchingEmbedder(Broken(embedder), wait_ms=5, cache_size=0)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(batcher.encode_query, q) for q in QUERIES[:8]]
        for f in futures:
            with pytest.raises(RuntimeError, match="fell over"):
                f.result()
    assert batcher.slots.busy == 0


def test_wrapper_is_an_embedder_with_the_same_space(embedder) -> None:
    from rag.protocols import Embedder

    wrapped = for_serving(embedder, ServingSettings())
    assert isinstance(wrapped, Embedder) and for_serving(wrapped, ServingSettings()) is wrapped
    assert (wrapped.model_id, wrapped.dim, wrapped.max_tokens) == (embedder.model_id, embedder.dim,
                                                                   embedder.max_tokens)
    assert wrapped.tokenizer is embedder.tokenizer and wrapped.slots.limit >= 1
