"""Retrieval: modes, fusion, per-retriever fields, and filters applied before scoring."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rag import RAG, Filters, SourceText
from rag.errors import ConfigError

TOPICS = ["solar panels convert sunlight into electricity", "wind turbines generate power from moving air",
          "hydroelectric dams use falling water", "geothermal plants tap heat from the earth"]


@pytest.fixture
def kb(rag: RAG) -> RAG:
    docs = []
    for i in range(60):
        topic = TOPICS[i % len(TOPICS)]
        tags = ["energy", "even"] if i % 2 == 0 else ["energy"]
        year = 2020 + i % 5
        docs.append(SourceText(source=f"kb/{'reports' if i < 50 else 'archive'}/doc-{i:02d}.txt",
                               title=f"Note {i}", text=f"Note {i}: {topic}. Reference number {i * 7}.",
                               metadata={"tags": tags, "modified": f"{year}-06-01T00:00:00+00:00"}))
    rag.ingest_texts(docs, collection="kb")
    return rag


def test_every_hit_carries_sources_and_per_retriever_fields(kb: RAG) -> None:
    hits = kb.search("electricity from sunlight", collection="kb", k=5)
    assert len(hits) == 5
    for h in hits:
        assert h.text and h.source.startswith("kb/") and h.title and h.char_end > h.char_start
        assert set(h.ranks) <= {"dense", "bm25"} and h.ranks, "each retriever's rank"
        assert set(h.scores) == set(h.ranks)
    assert "solar" in hits[0].text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_single_modes_report_only_their_retriever(kb: RAG, mode: str) -> None:
    hits = kb.search("wind turbines", collection="kb", k=3, mode=mode)
    assert all(set(h.ranks) == {mode} for h in hits)
    assert "wind" in hits[0].text


def test_convex_fusion_weight_extremes_equal_single_modes(kb: RAG) -> None:
    q = "falling water dams"
    dense = [h.chunk_id for h in kb.search(q, collection="kb", k=5, mode="dense")]
    only_dense = [h.chunk_id for h in kb.search(q, collection="kb", k=5, fusion="convex", dense_weight=1.0)]
    assert only_dense[:3] == dense[:3]


def test_filtered_query_still_returns_k_hits(kb: RAG) -> None:
    """Only 10 of 60 docs are in archive/: filtering the unfiltered top k afterwards would return
    fewer than k. Filtering before scoring returns k."""
    f = Filters(source_glob="kb/archive/*")
    unfiltered = kb.search("solar panels sunlight", collection="kb", k=8, fetch_k=5)
    assert sum("/archive/" in h.source for h in unfiltered) < 8, "a post-filter would lose hits"
    hits = kb.search("solar panels sunlight", collection="kb", k=8, filters=f, fetch_k=5)
    assert len(hits) == 8
    assert all("/archive/" in h.source for h in hits)


def test_tag_and_date_filters(kb: RAG) -> None:
    even = kb.search("power", collection="kb", k=10, filters=Filters(tags=("even",)))
    assert len(even) == 10 and all(int(h.source[-6:-4]) % 2 == 0 for h in even)
    recent = kb.search("power", collection="kb", k=50,
                       filters=Filters(modified_after=datetime(2023, 1, 1, tzinfo=UTC)))
    assert recent and all(int(h.source[-6:-4]) % 5 >= 3 for h in recent)
    none = kb.search("power", collection="kb", k=5, filters=Filters(tags=("no-such-tag",)))
    assert none == []


def test_media_type_filter(kb: RAG) -> None:
    assert kb.search("solar", collection="kb", k=3, filters=Filters(media_types=("application/pdf",))) == []
    assert len(kb.search("solar", collection="kb", k=3, filters=Filters(media_types=("text/plain",)))) == 3


def test_bad_arguments_are_clear(kb: RAG) -> None:
    with pytest.raises(ConfigError, match="mode 'fuzzy'"):
        kb.search("x", collection="kb", mode="fuzzy")
    with pytest.raises(ConfigError, match="empty"):
        kb.search("   ", collection="kb")


def test_reopened_store_gives_identical_results(kb: RAG, embedder) -> None:
    before = [(h.chunk_id, round(h.score, 6)) for h in kb.search("geothermal heat", collection="kb", k=5)]
    again = RAG.open(settings=kb.settings, embedder=embedder)
    after = [(h.chunk_id, round(h.score, 6)) for h in again.search("geothermal heat", collection="kb", k=5)]
    assert before == after
