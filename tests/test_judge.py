"""LLM-judge metrics through a real OpenAI SDK against the loopback server (no key, no network)."""

from __future__ import annotations

import json

import pytest
from llm_server import LLMServer, llm_server_fixture  # noqa: F401 - registers the `llm_server` fixture

from rag_platform.eval.judge import judge_prompt, parse_verdict


def test_parse_verdict_scores_and_refusals() -> None:
    v = parse_verdict('Sure: {"sentences": 4, "supported_sentences": 3, "relevance": 5}', has_sources=True)
    assert (v.faithfulness, v.relevance, v.note) == (0.75, 1.0, "")
    closed = parse_verdict('{"sentences": 1, "supported_sentences": null, "relevance": 2}', has_sources=False)
    assert closed.faithfulness is None and closed.relevance == 0.25
    for bad in ("no json here", '{"sentences": 2, "supported_sentences": 3, "relevance": 4}',
                '{"sentences": 2, "supported_sentences": 1, "relevance": 9}', '{"relevance": "high"}'):
        v = parse_verdict(bad, has_sources=True)
        assert v.faithfulness is None and v.relevance is None and "unusable verdict" in v.note


def test_prompt_quotes_numbered_sources() -> None:
    p = judge_prompt("Who?", "Ada [1].", ["Ada wrote it.", "Other."])
    assert '<source n="1">\nAda wrote it.\n</source>' in p and '<source n="2">' in p and "<answer>\nAda [1]." in p
    assert "closed-book" in judge_prompt("Who?", "Ada.", [])


def test_judge_run_scores_stored_answers_and_resumes(rag, llm_server: LLMServer) -> None:
    pytest.importorskip("openai")
    from rag.config import ProviderSettings
    from rag.errors import RagError
    from rag.types import SourceText
    from rag_platform.eval import runs
    from rag_platform.eval.datasets import QAItem
    from rag_platform.eval.judge import judge_run
    from rag_platform.eval.scoring import score_rag

    rag.ingest_texts([SourceText(source="p1", text="Ada Lovelace wrote the first program in 1843."),
                      SourceText(source="p2", text="Roses need full sun and regular watering.")], collection="qa")
    item = QAItem("q1", "Who wrote the first program?", ("Ada Lovelace",), "p1")
    answer = rag.ask(item.question, collection="qa", k=2, providers=["extractive"], use_cache=False)
    text, metrics, detail = score_rag(answer, item, 0.1, None)
    run_id = rag.store.ledger.create_eval_run(kind="compare", status="done", dataset="t", collection="qa",
                                              arms=["rag-extractive"], split={"eval": ["q1"]}, split_hash="x")
    rag.store.ledger.add_eval_result(run_id, "q1", "rag-extractive", text, metrics, detail)

    def verdict(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        assert "Ada Lovelace wrote the first program in 1843." in prompt  # the chunk text, from the ledger
        return json.dumps({"sentences": 2, "supported_sentences": 1, "relevance": 4})

    llm_server.reply = verdict
    rag.settings.llm.providers.append(ProviderSettings(name="judge", kind="openai", model="m-judge",
                                                       base_url=llm_server.openai_url, api_key="sk-test"))
    with pytest.raises(RagError, match="cannot judge"):
        judge_run(rag, run_id, "extractive")
    assert judge_run(rag, run_id, "judge") == 1
    [row] = runs.results(rag.store.ledger, run_id)
    assert row["metrics"]["judge_faithfulness"] == 0.5 and row["metrics"]["judge_relevance"] == 0.75
    assert row["metrics"]["judge"] == "judge (openai:m-judge)"
    assert runs.get_run(rag.store.ledger, run_id).provenance["judge"] == "judge (openai:m-judge)"
    assert judge_run(rag, run_id, "judge") == 0 and len(llm_server.requests) == 1  # already judged: skipped
    summary = runs.summarise(runs.results(rag.store.ledger, run_id), ["rag-extractive"], resamples=50)
    assert summary["metrics"]["judge_relevance"]["arms"]["rag-extractive"]["mean"] == 0.75
