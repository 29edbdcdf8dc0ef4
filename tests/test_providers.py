"""The OpenAI and Anthropic providers through their real SDKs against a real local HTTP server."""

from __future__ import annotations

import email.utils
import logging
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ has no __init__.py

from llm_server import (
    LLMServer,
    chunks,
    llm_server_fixture,  # noqa: F401 - registers the `llm_server` fixture
    unused_port,
)

from rag import registry
from rag.config import ProviderSettings
from rag.errors import ConfigError
from rag.llm import openai_provider
from rag.llm.anthropic_provider import AnthropicChat
from rag.llm.base import (
    LLM,
    Completion,
    Delta,
    GenerationParams,
    Message,
    ProviderError,
    StreamInterrupted,
)
from rag.llm.openai_provider import OpenAIChat, parse_retry_after

KEY = "sk-test-Zq8vX2mN4pL6rT0y"
MESSAGES = [Message("system", "Answer from the context only."),
            Message("user", "Who wrote the report on river pollution?")]
PARAMS = GenerationParams(max_tokens=64, temperature=0.0, timeout_s=5.0)
FAST = GenerationParams(max_tokens=64, timeout_s=0.5)
KINDS = ["openai", "anthropic"]


def make(kind: str, base_url: str, **overrides: object) -> OpenAIChat | AnthropicChat:
    pytest.importorskip(kind, reason=f"the {kind} SDK is in the 'llm' extra")
    cfg = ProviderSettings(name=f"test-{kind}", kind=kind, model="m-1", base_url=base_url, api_key=KEY,
                           **overrides)  # type: ignore[arg-type]
    return registry.create("llm", kind, cfg, Path("."))  # type: ignore[no-any-return]


def url_for(server: LLMServer, kind: str) -> str:
    return server.openai_url if kind == "openai" else server.anthropic_url


def run_stream(llm: OpenAIChat | AnthropicChat, params: GenerationParams = PARAMS) -> tuple[list[str], Completion]:
    events = list(llm.stream(MESSAGES, params))
    assert isinstance(events[-1], Completion)
    assert all(isinstance(e, Delta) for e in events[:-1])
    return [e.text for e in events[:-1]], events[-1]  # type: ignore[union-attr]


# -- happy paths -------------------------------------------------------------------------------
def test_openai_complete_sends_prompt_key_and_limits(llm_server: LLMServer) -> None:
    llm = make("openai", llm_server.openai_url)
    assert isinstance(llm, LLM) and llm.name == "test-openai"
    out = llm.complete(MESSAGES, GenerationParams(max_tokens=64, stop=("\n\n",), timeout_s=5))
    assert out.text == "Echo: Who wrote the report on river pollution?"[:46]
    assert (out.provider, out.model, out.finish_reason) == ("test-openai", "m-1", "stop")
    [req] = llm_server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (req.usage["input"], req.usage["output"])
    assert req.body["max_tokens"] == 64 and req.body["temperature"] == 0.0 and req.body["stop"] == ["\n\n"]
    assert req.body["messages"][0] == {"role": "system", "content": "Answer from the context only."}
    assert "stream" not in req.body
    assert out.latency_s > 0 and out.ttft_s is None


def test_openai_stream_deltas_make_the_completion(llm_server: LLMServer) -> None:
    llm = make("openai", llm_server.openai_url)
    texts, done = run_stream(llm)
    assert len(texts) > 2 and "".join(texts) == done.text
    assert done.text.startswith("Echo: Who wrote")
    req = llm_server.requests[-1]
    assert req.body["stream"] is True and req.body["stream_options"] == {"include_usage": True}
    assert (done.usage.input_tokens, done.usage.output_tokens) == (req.usage["input"], req.usage["output"])
    assert done.ttft_s is not None and 0 < done.ttft_s <= done.latency_s
    assert done.finish_reason == "stop"


def test_openai_stream_falls_back_when_server_rejects_stream_options(llm_server: LLMServer) -> None:
    llm_server.reject_stream_options = True
    llm = make("openai", llm_server.openai_url)
    texts, done = run_stream(llm)
    assert "".join(texts) == done.text
    assert [("stream_options" in r.body) for r in llm_server.requests] == [True, False]
    assert done.usage.output_tokens == llm.count_tokens(done.text)  # estimated: no usage chunk came
    run_stream(llm)  # remembered: no second failed attempt
    assert len(llm_server.requests) == 3


def test_anthropic_complete_puts_system_in_its_field(llm_server: LLMServer) -> None:
    llm = make("anthropic", llm_server.anthropic_url)
    assert isinstance(llm, LLM) and llm.context_window == 200000
    msgs = [Message("system", "Rule one."), Message("user", "First part."), Message("system", "Rule two."),
            Message("user", "Second part?")]
    out = llm.complete(msgs, PARAMS)
    [req] = llm_server.requests
    assert req.path == "/v1/messages"
    assert req.body["system"] == "Rule one.\n\nRule two."
    assert req.body["messages"] == [{"role": "user", "content": "First part.\n\nSecond part?"}]
    assert req.body["max_tokens"] == 64 and "temperature" not in req.body  # API 2026-10-21 rejects it
    assert req.api_key == KEY and req.headers.get("anthropic-version")
    assert out.text == "Echo: First part.\n\nSecond part?"[:46].rstrip()
    assert out.finish_reason == "stop"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (req.usage["input"], req.usage["output"])


def test_anthropic_stream_deltas_make_the_completion(llm_server: LLMServer) -> None:
    llm = make("anthropic", llm_server.anthropic_url)
    texts, done = run_stream(llm)
    assert len(texts) > 2 and "".join(texts) == done.text
    req = llm_server.requests[-1]
    assert req.body["stream"] is True and req.body["system"] == "Answer from the context only."
    assert all(m["role"] != "system" for m in req.body["messages"])
    assert (done.usage.input_tokens, done.usage.output_tokens) == (req.usage["input"], req.usage["output"])
    assert done.ttft_s is not None and 0 < done.ttft_s <= done.latency_s
    assert done.finish_reason == "stop"


@pytest.mark.parametrize("kind", KINDS)
def test_max_tokens_cut_reads_as_length(llm_server: LLMServer, kind: str) -> None:
    llm_server.reply = "one two three four five six"
    llm = make(kind, url_for(llm_server, kind))
    params = GenerationParams(max_tokens=3, timeout_s=5)
    assert llm.complete(MESSAGES, params).finish_reason == "length"
    _, done = run_stream(llm, params)
    assert done.text == "one two three " and done.finish_reason == "length"


def test_config_caps_max_tokens(llm_server: LLMServer) -> None:
    llm = make("openai", llm_server.openai_url, max_output_tokens=32)
    llm.complete(MESSAGES, GenerationParams(max_tokens=512))
    assert llm_server.requests[-1].body["max_tokens"] == 32


# -- keys and settings ---------------------------------------------------------------------------
def test_missing_key_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_ANTHROPIC", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIChat(ProviderSettings(name="o", kind="openai"), Path("."))
    with pytest.raises(ConfigError, match="MY_ANTHROPIC"):
        AnthropicChat(ProviderSettings(name="a", kind="anthropic", api_key_env="MY_ANTHROPIC"), Path("."))


def test_key_from_env_and_placeholder_for_servers_without_auth(llm_server: LLMServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai")
    monkeypatch.setenv("LOCAL_VLLM_KEY", "env-key-123")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    OpenAIChat(ProviderSettings(name="v", kind="openai", base_url=llm_server.openai_url,
                                api_key_env="LOCAL_VLLM_KEY"), Path(".")).complete(MESSAGES, PARAMS)
    free = OpenAIChat(ProviderSettings(name="o", kind="openai", base_url=llm_server.openai_url), Path("."))
    free.complete(MESSAGES, PARAMS)
    assert [r.api_key for r in llm_server.requests] == ["env-key-123", "unused"]
    assert free.context_window == 8192
    assert OpenAIChat(ProviderSettings(name="o", kind="openai", api_key=KEY), Path(".")).context_window == 128000


def test_count_tokens_uses_the_bpe_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = OpenAIChat(ProviderSettings(name="o", kind="openai", model="gpt-4o-mini", api_key=KEY), Path("."))
    pytest.importorskip("bpe_openai")
    assert llm.count_tokens("hello world") == 2
    assert llm.count_tokens("<|endoftext|>") > 1  # special tokens are counted as text, never refused
    monkeypatch.setattr(openai_provider, "_encoding", lambda model: None)
    assert llm.count_tokens("x" * 40) == 10


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < parse_retry_after({"retry-after": future}) <= 30  # type: ignore[operator]
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


# -- faults ------------------------------------------------------------------------------------
FAULTS = [
    pytest.param(("status", 429, {"Retry-After": "1"}), 429, True, 1.0, id="429"),
    pytest.param(("status", 429, {"retry-after-ms": "250"}), 429, True, 0.25, id="429-ms"),
    pytest.param(("status", 500), 500, True, None, id="500"),
    pytest.param(("status", 529), 529, True, None, id="529"),
    pytest.param(("status", 401), 401, False, None, id="401"),
    pytest.param(("status", 400), 400, False, None, id="400"),
    pytest.param(("malformed",), None, True, None, id="malformed"),
    pytest.param(("body", {"object": "surprise"}), None, True, None, id="wrong-shape"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("fault", "status", "retryable", "retry_after"), FAULTS)
def test_errors_map_to_provider_error(llm_server: LLMServer, kind: str, fault: tuple[object, ...],
                                      status: int | None, retryable: bool, retry_after: float | None) -> None:
    llm = make(kind, url_for(llm_server, kind))
    llm_server.fail(fault)
    with pytest.raises(ProviderError) as info:
        llm.complete(MESSAGES, PARAMS)
    err = info.value
    assert (err.provider, err.status, err.retryable, err.retry_after) == (llm.name, status, retryable, retry_after)
    if fault[0] in ("malformed", "body"):
        assert "malformed response" in str(err)
    assert len(llm_server.requests) == 1  # the SDK's own retries are off
    assert llm.complete(MESSAGES, PARAMS).text.startswith("Echo:")  # then the server answers again


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_is_retryable(llm_server: LLMServer, kind: str) -> None:
    llm = make(kind, url_for(llm_server, kind))
    llm_server.fail(("sleep", 3.0))
    start = time.monotonic()
    with pytest.raises(ProviderError, match=r"timed out after 0.5s") as info:
        llm.complete(MESSAGES, FAST)
    assert time.monotonic() - start < 2.0
    assert info.value.retryable and info.value.status is None and len(llm_server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused_is_retryable(kind: str) -> None:
    base = f"http://127.0.0.1:{unused_port()}" + ("/v1" if kind == "openai" else "")
    llm = make(kind, base)
    for call in (lambda: llm.complete(MESSAGES, FAST), lambda: list(llm.stream(MESSAGES, FAST))):
        with pytest.raises(ProviderError, match="connection failed") as info:
            call()
        assert info.value.retryable and not isinstance(info.value, StreamInterrupted)


@pytest.mark.parametrize("kind", KINDS)
def test_stream_broken_after_text_is_interrupted_with_the_partial(llm_server: LLMServer, kind: str) -> None:
    llm_server.reply = "alpha beta gamma delta epsilon"
    llm = make(kind, url_for(llm_server, kind))
    llm_server.fail(("break_stream_after", 2))
    seen: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        for event in llm.stream(MESSAGES, PARAMS):
            seen.append(event.text)  # type: ignore[union-attr]
    assert info.value.partial == "".join(chunks(llm_server.reply)[:2]) == "alpha beta " == "".join(seen)
    assert info.value.provider == llm.name and len(llm_server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_error_event_inside_a_stream(llm_server: LLMServer, kind: str) -> None:
    llm_server.reply = "alpha beta gamma delta epsilon"
    llm = make(kind, url_for(llm_server, kind))
    llm_server.fail(("stream_error", 2))
    with pytest.raises(StreamInterrupted, match="verloaded") as info:
        list(llm.stream(MESSAGES, PARAMS))
    assert info.value.partial == "alpha beta "


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", [("break_stream_after", 0), ("status", 503), ("malformed",), ("stream_error", 0)])
def test_stream_failing_before_text_is_a_plain_retryable_error(llm_server: LLMServer, kind: str,
                                                               fault: tuple[object, ...]) -> None:
    llm = make(kind, url_for(llm_server, kind))
    llm_server.fail(fault)
    with pytest.raises(ProviderError) as info:
        list(llm.stream(MESSAGES, PARAMS))
    assert not isinstance(info.value, StreamInterrupted) and info.value.retryable
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_the_key_never_reaches_messages_or_logs(llm_server: LLMServer, kind: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    llm = make(kind, url_for(llm_server, kind))
    errors: list[ProviderError] = []
    for fault, call in [(("status", 401), "complete"),  # the server echoes the whole key in its 401 body
                        (("status", 401), "stream"), (("status", 500), "complete"),
                        (("break_stream_after", 1), "stream"), (("sleep", 2.0), "complete")]:
        llm_server.fail(fault)
        with pytest.raises(ProviderError) as info:
            if call == "stream":
                list(llm.stream(MESSAGES, FAST))
            else:
                llm.complete(MESSAGES, FAST)
        errors.append(info.value)
    assert "Incorrect API key provided: ***" in str(errors[0])
    for err in errors:
        assert KEY not in str(err) and KEY not in repr(err) and KEY not in repr(err.args)
        assert err.__cause__ is None and err.__suppress_context__
    assert caplog.records and KEY not in caplog.text
