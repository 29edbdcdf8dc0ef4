"""One Protocol per swappable part. Implementations register in `rag.registry`."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer that chunking needs."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors.

    `model_id` names the vector space: two embedders with the same id must
    give interchangeable vectors (an int8 backend of the same model does not
    share an id with the fp32 one, so the manifest tells them apart).
    """

    model_id: str
    dim: int
    max_tokens: int
    """Most content tokens one input may hold before the model truncates it."""

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each content token (no special tokens)."""
        ...

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...
