"""Serve many callers from one model: query batching and bounded concurrency.

A sentence encoder on 2 CPU cores encodes one short query in a few milliseconds, but 40 requests
encoding their queries at once each get a slice of the same cores and all finish late (Onyx #8396:
unbounded concurrency made CPU embedding ~200x slower). So in a server:

* `ModelSlots` bounds how many model calls run at once (default one per `cores // threads per call`,
  i.e. one on a machine where each call already uses every core);
* `BatchingEmbedder` wraps an `Embedder` (and is one): concurrent `encode_query` calls wait up to
  `wait_ms` in a queue, then go through the model as one batch, and each caller gets its own row.
  When the model is busy, queries that arrive meanwhile form the next batch, so a lone caller waits
  at most `wait_ms` and a crowd is served at the model's batched rate. Bulk `encode` calls (ingest,
  citation checks) run in `batch_size` slices, each holding a slot, so queries interleave with them.

Example:
    >>> slots = ModelSlots(1)
    >>> emb = BatchingEmbedder(make_embedder(EmbedderSettings()), slots=slots)   # doctest: +SKIP
    >>> emb.encode_query("what is BM25?").shape                                   # doctest: +SKIP
    (384,)
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from rag.config import ServingSettings
from rag.embed import QueryCache


def cpu_count() -> int:
    """CPUs this process may run on (affinity-aware where the OS says)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class ModelSlots:
    """A counting semaphore for model-bound work, with counters a test (or /metrics) can read.

    Example:
        >>> slots = ModelSlots(2)
        >>> with slots:
        ...     slots.busy
        1
    """

    def __init__(self, limit: int = 0, threads_per_call: int | None = None) -> None:
        per_call = threads_per_call or cpu_count()
        self.limit = limit if limit > 0 else max(1, cpu_count() // per_call)
        self._sem = threading.BoundedSemaphore(self.limit)
        self._lock = threading.Lock()
        self.busy = 0
        self.peak = 0
        self.calls = 0

    def __enter__(self) -> ModelSlots:
        self._sem.acquire()
        with self._lock:
            self.busy += 1
            self.calls += 1
            self.peak = max(self.peak, self.busy)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.busy -= 1
        self._sem.release()


class BatchingEmbedder:
    """An `Embedder` whose `encode_query` calls from many threads share model calls.

    `model_id`, `dim` and `max_tokens` are the inner embedder's, so a store sees the same vector
    space. Other attributes (`tokenizer`, `settings`) are the inner one's too.
    """

    def __init__(self, inner: Any, *, slots: ModelSlots | None = None, wait_ms: float = 2.0,
                 max_batch: int = 64, cache_size: int | None = None, idle_s: float = 10.0) -> None:
        self.inner = inner
        self.model_id: str = inner.model_id
        self.slots = slots or ModelSlots()
        self.wait_s = max(0.0, wait_ms) / 1000
        self.max_batch = max(1, max_batch)
        settings = getattr(inner, "settings", None)
        self.queries = QueryCache(size=cache_size if cache_size is not None else
                                  int(getattr(settings, "query_cache", 1024)))
        self.idle_s = idle_s
        self._cv = threading.Condition()
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._worker: threading.Thread | None = None
        self.batches: list[int] = []  # sizes of the last model calls, for tests and metrics
        self._bulk = int(getattr(settings, "batch_size", 64))

    # -- the Embedder protocol: plain delegation ----------------------------------------
    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    @property
    def max_tokens(self) -> int:
        return int(self.inner.max_tokens)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return list(self.inner.count_tokens(texts))

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self.inner.token_offsets(text))

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copy, unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        """Bulk encode in slices of `batch_size`, each holding a model slot, so queries can interleave."""
        size = batch_size or self._bulk
        if len(texts) <= size:
            with self.slots:
                return np.asarray(self.inner.encode(texts, batch_size=batch_size))
        parts = []
        for start in range(0, len(texts), size):
            with self.slots:
                parts.append(np.asarray(self.inner.encode(texts[start:start + size], batch_size=size)))
        return np.concatenate(parts)

    # -- batched queries ----------------------------------------------------------------
    def encode_query(self, text: str) -> np.ndarray:
        """This caller's query vector; it may have been computed in one batch with others'."""
        hit = self.queries.get(text)
        if hit is not None:
            return hit
        with self._cv:
            fut: Future[np.ndarray] = Future()
            self._pending.append((text, fut))
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="rag-query-batcher", daemon=True)
                self._worker.start()
            self._cv.notify()
        return fut.result()

    def _serve(self) -> None:
        while True:
            with self._cv:
                if not self._pending:
                    self._cv.wait(self.idle_s)
                    if not self._pending:
                        self._worker = None  # idle: exit; the next caller starts a new worker
                        return
                deadline = time.monotonic() + self.wait_s
                while len(self._pending) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            self._run(batch)

    def _run(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        texts = list(dict.fromkeys(t for t, _ in batch))  # the same query twice is encoded once
        try:
            with self.slots:
                vecs = np.asarray(self.inner.encode(texts, batch_size=len(texts)), dtype=np.float32)
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the error
            for _, fut in batch:
                fut.set_exception(exc)
            return
        self.batches = [*self.batches[-99:], len(texts)]
        rows = {t: self.queries.put(t, np.ascontiguousarray(vecs[i])) for i, t in enumerate(texts)}
        for t, fut in batch:
            fut.set_result(rows[t])


def for_serving(embedder: Any, settings: ServingSettings, slots: ModelSlots | None = None) -> Any:
    """`embedder` wrapped for a server (idempotent; `batch_queries=False` returns it unwrapped)."""
    if isinstance(embedder, BatchingEmbedder) or not settings.batch_queries:
        return embedder
    return BatchingEmbedder(embedder, slots=slots or ModelSlots(settings.model_concurrency),
                            wait_ms=settings.query_batch_wait_ms, max_batch=settings.query_batch_max)
