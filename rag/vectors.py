"""Array helpers below retrieval and answering: `top_k` over scores, and an LRU of sentence vectors.

The LRU is keyed by the embedder and the text's hash.

The extractive answerer and the citation checker embed sentences at answer
time; the same sentences come back whenever a chunk is retrieved again, so
their vectors are worth keeping (384 floats each: 4,096 of them are 6 MiB).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (argpartition, then a small sort)."""
    k = min(k, scores.size)
    if k <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


class VectorCache:
    """`encode(embedder, texts)` embeds only the texts it has not seen, in one batch."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, embedder: Any, texts: list[str]) -> np.ndarray:
        model = str(getattr(embedder, "model_id", type(embedder).__name__))
        keys = [(model, hashlib.sha1(t.encode()).hexdigest()) for t in texts]
        with self._lock:
            found = {k: self._data[k] for k in keys if k in self._data}
            for k in found:
                self._data.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            first = {k: t for k, t in zip(keys, texts, strict=True)}
            vecs = np.asarray(embedder.encode([first[k] for k in missing]), dtype=np.float32)
            with self._lock:
                for k, v in zip(missing, vecs, strict=True):
                    found[k] = v
                    self._data[k] = v
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
        if not texts:
            return np.zeros((0, int(getattr(embedder, "dim", 0))), dtype=np.float32)
        return np.stack([found[k] for k in keys])


SHARED = VectorCache()
"""One cache per process, shared by the answerer and the checker."""
