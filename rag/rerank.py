"""Cross-encoder reranking (sentence-transformers `CrossEncoder`) behind `Reranker`.

The model loads on first use. If it cannot be loaded (offline and not on
disk), we log one clear warning and search goes on unreranked, unless the
settings say reranking is required.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.config import RerankSettings
from rag.embed import resolve_model_path
from rag.errors import ModelLoadError
from rag.types import Hit

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """Re-scores (query, passage) pairs jointly; slower than retrieval, better ordering.

    Example:
        >>> rr = CrossEncoderReranker(RerankSettings(model="/models/ms-marco-MiniLM-L-6-v2"))
        >>> hits = rr.rerank("what is bm25?", hits)
    """

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings
        self._model: Any = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._load() is not None

    @property
    def unavailable_reason(self) -> str | None:
        return self._failed

    def _load(self) -> Any:
        if self._model is not None or self._failed is not None:
            return self._model
        with self._lock:
            if self._model is None and self._failed is None:
                path = resolve_model_path(self.settings.model)
                try:
                    from sentence_transformers import CrossEncoder

                    self._model = CrossEncoder(path, device=self.settings.device,
                                               local_files_only=self.settings.offline)
                except Exception as exc:  # noqa: BLE001 - any failure means "not available"
                    self._failed = (f"reranker {self.settings.model!r} could not be loaded ({exc}); "
                                    f"give a local path in RAG_RERANK__MODEL or allow the hub with RAG_OFFLINE=0")
                    if self.settings.required:
                        raise ModelLoadError(self._failed) from exc
                    log.warning("%s. Searching without reranking.", self._failed)
        return self._model

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if model is None or not texts:
            return np.zeros(0, np.float32)
        out = model.predict([(query, t) for t in texts], batch_size=self.settings.batch_size,
                            show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def rerank(self, query: str, hits: Sequence[Hit], depth: int | None = None) -> list[Hit]:
        """Reorder the first `depth` hits by cross-encoder score; the rest keep their order after them."""
        depth = depth or self.settings.depth
        head, tail = list(hits[:depth]), list(hits[depth:])
        scores = self.scores(query, [h.text for h in head])
        if scores.size == 0:
            return list(hits)
        order = np.argsort(-scores, kind="stable")
        out = []
        for new_rank, i in enumerate(order, 1):
            h = head[int(i)]
            out.append(dataclasses.replace(h, score=float(scores[i]),
                                           ranks={**h.ranks, "fused": int(i) + 1, "rerank": new_rank},
                                           scores={**h.scores, "fused": h.score, "rerank": float(scores[i])}))
        return out + tail
