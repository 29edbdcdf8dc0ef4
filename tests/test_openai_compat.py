"""The OpenAI-compatible endpoints, driven by the official `openai` SDK and LangChain's `ChatOpenAI`
against `rag serve`'s app under a real uvicorn on 127.0.0.1 (the extractive provider answers offline)."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from live_api import FIRST, LiveServer, key, open_rag  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from rag.store.ledger import QueryLog  # noqa: E402
from rag_platform.apps.api.app import create_app  # noqa: E402
from rag_platform.apps.api.limits import ApiSettings  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder):
    rag = open_rag(tmp_path_factory.mktemp("oai"), embedder)
    keys = {"admin": key(rag, ["*"], "admin"), "kb": key(rag, ["kb"]), "other": key(rag, ["other"])}
    with LiveServer(create_app(rag=rag, api_settings=ApiSettings(auth=True))) as url:
        yield url, rag, keys


def client(url: str, api_key: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, **kw)


def test_models_lists_one_model_per_readable_collection(world):
    url, _, keys = world
    assert [m.id for m in client(url, keys["admin"]).models.list()] == ["kb", "other"]
    assert [m.id for m in client(url, keys["kb"]).models.list()] == ["kb"]
    assert client(url, keys["kb"]).models.retrieve("kb").owned_by == "rag-platform"


def test_completion_keeps_markers_and_carries_checked_sources(world):
    url, rag, keys = world
    with rag.store.sessions() as s:
        logged = s.scalar(select(func.count()).select_from(QueryLog))
    done = client(url, keys["kb"]).chat.completions.create(
        model="kb", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": FIRST}])
    msg = done.choices[0].message
    assert done.object == "chat.completion" and done.model == "kb" and done.choices[0].finish_reason == "stop"
    assert "[1]" in msg.content
    ext = msg.model_extra["rag"]
    assert ext["query"] == FIRST and ext["provider"] == "extractive"
    first = ext["sources"][0]
    assert first["n"] == 1 and first["uri"].startswith("rag://kb/") and first["source"].endswith("fusion.md")
    assert first["cited"] and first["verified"] is True
    assert any(c["n"] == 1 and c["supported"] for c in ext["citations"])
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens > 0
    with rag.store.sessions() as s:  # the same pipeline: the query log has the answer
        assert s.scalar(select(func.count()).select_from(QueryLog)) == logged + 1
    again = client(url, keys["kb"]).chat.completions.create(model="kb", messages=[{"role": "user", "content": FIRST}])
    assert again.choices[0].message.content == msg.content and again.choices[0].message.model_extra["rag"]["cached"]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'rag_answers_total{cached="false",provider="extractive"}' in metrics
    assert 'rag_answers_total{cached="true",provider="extractive"}' in metrics


def test_stream_sends_chunks_then_the_extension_then_done(world):
    url, _, keys = world
    question = "Why is a repeated question answered without calling a model?"
    chunks = list(client(url, keys["kb"]).chat.completions.create(
        model="kb", messages=[{"role": "user", "content": question}], stream=True,
        stream_options={"include_usage": True}, extra_body={"rag": {"cache": False}}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "[1]" in text and "cached" in text
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.model_extra["rag"]["sources"][0]["source"].endswith("cache.md")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {keys['kb']}"},
                      json={"model": "kb", "stream": True, "messages": [{"role": "user", "content": question}]}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert r.headers["content-type"].startswith("text/event-stream") and lines[-1] == "data: [DONE]"


def test_follow_up_is_rewritten_from_the_earlier_turns(world):
    url, _, keys = world
    done = client(url, keys["kb"]).chat.completions.create(model="kb", messages=[
        {"role": "user", "content": "How does reciprocal rank fusion work?"},
        {"role": "assistant", "content": "It sums one over k plus the rank [1]."},
        {"role": "user", "content": [{"type": "text", "text": "What is its default k?"}]}])
    ext = done.choices[0].message.model_extra["rag"]
    assert ext["query"] == "What is reciprocal rank fusion's default k?"
    assert "60" in done.choices[0].message.content


def test_wrong_key_other_collection_and_unknown_model_use_openai_errors(world):
    url, _, keys = world
    ask = {"messages": [{"role": "user", "content": FIRST}]}
    with pytest.raises(openai.AuthenticationError) as e401:
        client(url, "rag_00000000_wrong").chat.completions.create(model="kb", **ask)
    assert e401.value.status_code == 401 and e401.value.code == "invalid_api_key"
    with pytest.raises(openai.PermissionDeniedError) as e403:
        client(url, keys["other"]).chat.completions.create(model="kb", **ask)
    assert "not valid for collection 'kb'" in e403.value.message
    with pytest.raises(openai.NotFoundError) as e404:
        client(url, keys["admin"]).chat.completions.create(model="nope", **ask)
    assert e404.value.code == "model_not_found"
    body = httpx.post(f"{url}/v1/chat/completions", json={"model": "kb", **ask}).json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    bad = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {keys['kb']}"},
                     json={"model": "kb", "messages": []})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    with pytest.raises(openai.BadRequestError, match="must end with a non-empty user message"):
        client(url, keys["kb"]).chat.completions.create(model="kb", messages=[
            {"role": "user", "content": FIRST}, {"role": "assistant", "content": "It merges them [1]."}])


def test_rate_limit_is_429_with_retry_after(world, tmp_path):
    _, rag, keys = world
    app = create_app(rag=rag, api_settings=ApiSettings(auth=True, rate_per_s=0.01, burst=1))
    with LiveServer(app) as url:
        c = client(url, keys["kb"])
        c.models.list()
        with pytest.raises(openai.RateLimitError) as e429:
            c.models.list()
    assert int(e429.value.response.headers["retry-after"]) >= 1
    assert e429.value.body["type"] == "rate_limit_error"


def test_langchain_chat_openai_against_the_endpoint(world):
    langchain_openai = pytest.importorskip("langchain_openai")
    url, _, keys = world
    llm = langchain_openai.ChatOpenAI(model="kb", base_url=f"{url}/v1", api_key=keys["kb"], max_retries=0)
    reply = llm.invoke(FIRST)
    assert "[1]" in reply.content and "fusion" in reply.content.lower()
    streamed = "".join(str(part.content) for part in llm.stream(FIRST))
    assert streamed == reply.content
