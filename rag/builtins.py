"""The core's built-in parts, registered the way a third-party plugin registers its own.

`rag.registry` runs `register` first (it is in `BUILTIN_PLUGINS`). Each factory imports its
module on first use, so optional SDKs (openai, anthropic, llama.cpp, onnxruntime, psycopg) load
only for the parts a configuration asks for. A new built-in is one module plus one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from rag.registry import Factory, Register


def register(register: Register) -> None:
    register("embedder", "sentence-transformers", _lazy("rag.embed", "SentenceTransformerEmbedder"))
    register("embedder", "int8", _lazy("rag.embed_int8", "Int8Embedder"))
    register("embedder", "onnx-int8", _lazy("rag.embed_onnx", "OnnxEmbedder"))
    register("reranker", "cross-encoder", _lazy("rag.rerank", "CrossEncoderReranker"))
    register("llm", "extractive", _lazy("rag.llm.extractive", "ExtractiveAnswerer"))
    register("llm", "local", _lazy("rag.llm.local", "LocalChat"))
    register("llm", "openai", _lazy("rag.llm.openai_provider", "OpenAIChat"))
    register("llm", "anthropic", _lazy("rag.llm.anthropic_provider", "AnthropicChat"))
    register("llm", "llamacpp", _lazy("rag.llm.llamacpp", "LlamaCppChat"))
    register("store", "local", _lazy("rag.store.local", "LocalStore"))
    register("store", "postgresql", _lazy("rag.store.postgres", "PgStore"))
    register("ledger", "local", _lazy("rag.store.sql_ledger", "open_sql_ledger"))  # a store's ledger alone
    register("ledger", "postgresql", _lazy("rag.store.sql_ledger", "open_sql_ledger"))


def _lazy(module: str, attr: str) -> Factory:
    """A factory that imports `module` when first called and builds `module.attr(*args, **kwargs)`."""

    def factory(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    factory.__qualname__ = f"{module}.{attr}"
    return factory
