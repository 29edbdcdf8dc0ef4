"""`RAG.ask` end to end with the extractive answerer: citations, cache, log, abstention, streaming."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from rag import RAG
from rag.config import LLMSettings, ProviderSettings
from rag.errors import ConfigError
from rag.prompt import NO_ANSWER
from rag.store.ledger import AnswerCache, QueryLog

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, embedder) -> RAG:
    from rag.config import Settings

    settings = Settings(home=tmp_path_factory.mktemp("answer-home"),
                        llm=LLMSettings(providers=[ProviderSettings(name="ex", kind="extractive")]))
    rag = RAG.open(settings=settings, embedder=embedder)
    rag.ingest([REPO / "samples"], collection="demo")
    return rag


def test_answer_cites_checked_sources(demo: RAG) -> None:
    a = demo.ask("What happens to a file whose content hash matches the ledger?", collection="demo")
    assert a.provider == "ex" and not a.abstained and not a.cached
    assert a.citations and all(c.supported for c in a.citations)
    assert a.groundedness == 1.0
    for c in a.citations:
        src = a.sources[c.n - 1]
        assert c.chunk_id == src.chunk_id and c.evidence in src.text
        assert f"[{c.n}]" in a.text
    assert any("skipped" in c.evidence or "unchanged" in c.evidence for c in a.citations)
    assert a.attempts and a.attempts[-1].ok and a.attempts[-1].provider == "ex"


def test_second_ask_is_cached_and_no_cache_bypasses(demo: RAG) -> None:
    q = "How does reciprocal rank fusion combine rankings?"
    with demo.store.sessions() as s:
        cached_before = s.scalar(select(func.count()).select_from(AnswerCache))
    first = demo.ask(q, collection="demo")
    second = demo.ask(q.upper() + "  ", collection="demo")  # normalised question -> same key
    assert second.cached and second.text == first.text and second.citations == first.citations
    third = demo.ask(q, collection="demo", use_cache=False)
    assert not third.cached
    with demo.store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AnswerCache)) == cached_before + 1
        assert s.scalar(select(func.max(AnswerCache.hits))) == 1
        logs = s.scalars(select(QueryLog).where(func.lower(QueryLog.question).like("%reciprocal rank fusion%"))
                         .order_by(QueryLog.id)).all()
    assert [r.cached for r in logs] == [False, True, False]
    assert all(r.provider == "ex" and r.tokens_in > 0 and r.latency_s >= 0 for r in logs)


def test_cache_misses_when_retrieval_settings_change(demo: RAG) -> None:
    q = "What is BM25?"
    demo.ask(q, collection="demo")
    assert not demo.ask(q, collection="demo", k=3).cached
    assert not demo.ask(q, collection="demo", mode="bm25").cached


def test_unanswerable_question_abstains(demo: RAG) -> None:
    a = demo.ask("What is the boiling point of mercury in kelvin?", collection="demo")
    assert a.abstained and a.text == NO_ANSWER and a.citations == []


def test_streaming_yields_text_then_the_checked_answer(demo: RAG) -> None:
    stream = demo.ask("How are citations verified?", collection="demo", stream=True, use_cache=False)
    text = "".join(stream)
    assert stream.answer is not None and text.strip() == stream.answer.text
    assert stream.answer.citations and stream.answer.provider == "ex"


def test_ask_stream_and_result_types_come_from_rag(demo: RAG, tmp_path: Path) -> None:
    """The typed spelling `ask_stream` streams like `ask(stream=True)`; every result type is exported."""
    from rag import Answer, AnswerStream, Citation, FileResult, Filters, Hit, IngestReport, SourceText

    stream = demo.ask_stream("How are citations verified?", collection="demo", use_cache=False)
    assert isinstance(stream, AnswerStream)
    text = "".join(stream)
    assert isinstance(stream.answer, Answer) and text.strip() == stream.answer.text
    assert stream.answer.citations and all(isinstance(c, Citation) for c in stream.answer.citations)
    assert isinstance(demo.ask("What is BM25?", collection="demo"), Answer)
    hits = demo.search("BM25", collection="demo", filters=Filters())
    assert hits and all(isinstance(h, Hit) for h in hits)
    report = demo.ingest_texts([SourceText(source="note://a", text="Typed results come from the rag package.")],
                               collection="typed")
    assert isinstance(report, IngestReport) and all(isinstance(f, FileResult) for f in report.files)


def test_unknown_provider_is_a_clear_error(demo: RAG) -> None:
    with pytest.raises(ConfigError, match="unknown provider 'gpt'; configured: ex"):
        demo.ask("x y z", collection="demo", providers=["gpt"])
