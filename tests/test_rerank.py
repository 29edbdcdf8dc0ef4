"""Reranker plumbing with a real CrossEncoder built locally.

No cross-encoder weights can be had offline here (no PyPI package ships one), so the model is a tiny
BertForSequenceClassification with untrained weights, saved and loaded through the real
sentence-transformers CrossEncoder path: it proves the plumbing, not the quality.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from rag import RAG, SourceText
from rag.config import RerankSettings
from rag.errors import ModelLoadError
from rag.rerank import CrossEncoderReranker


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rag.embed import resolve_model_path

    folder = tmp_path_factory.mktemp("tiny-ce")
    tok = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def corpus_rag(rag: RAG) -> RAG:
    texts = ["BM25 weighs term frequency against document length.",
             "Dense retrievers embed queries and passages in one vector space.",
             "Reciprocal rank fusion sums one over k plus rank.",
             "Cross-encoders read the query and passage together.",
             "The cafeteria serves soup on Mondays."]
    rag.ingest_texts([SourceText(source=f"d{i}", text=t) for i, t in enumerate(texts)], collection="c")
    return rag


def test_rerank_orders_by_the_cross_encoder_scores(corpus_rag: RAG, tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    corpus_rag.settings.rerank.model = str(tiny_cross_encoder)
    hits = corpus_rag.search("how do retrievers rank passages", collection="c", k=4, rerank=True, rerank_depth=5)
    assert len(hits) == 4
    assert all("rerank" in h.ranks and "fused" in h.ranks for h in hits)
    assert [h.ranks["rerank"] for h in hits] == [1, 2, 3, 4]
    direct = CrossEncoder(str(tiny_cross_encoder)).predict(
        [("how do retrievers rank passages", h.text) for h in hits])
    assert np.allclose(direct, [h.scores["rerank"] for h in hits], atol=1e-5)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_rerank_depth_limits_the_rescored_head(tiny_cross_encoder: Path, corpus_rag: RAG) -> None:
    fused = corpus_rag.search("passages", collection="c", k=5)
    rr = CrossEncoderReranker(RerankSettings(model=str(tiny_cross_encoder)))
    out = rr.rerank("passages", fused, depth=2)
    assert {h.chunk_id for h in out[:2]} == {h.chunk_id for h in fused[:2]}
    assert [h.chunk_id for h in out[2:]] == [h.chunk_id for h in fused[2:]]


def test_missing_reranker_warns_once_and_search_goes_on(corpus_rag: RAG, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    corpus_rag.settings.rerank.model = str(tmp_path / "no-such-model")
    plain = corpus_rag.search("rank fusion", collection="c", k=3)
    with caplog.at_level(logging.WARNING, logger="rag.rerank"):
        first = corpus_rag.search("rank fusion", collection="c", k=3, rerank=True)
        corpus_rag.search("rank fusion", collection="c", k=3, rerank=True)
    assert [h.chunk_id for h in first] == [h.chunk_id for h in plain]
    warnings = [r for r in caplog.records if "could not be loaded" in r.getMessage()]
    assert len(warnings) == 1


def test_required_reranker_fails_loudly(tmp_path: Path) -> None:
    rr = CrossEncoderReranker(RerankSettings(model=str(tmp_path / "missing"), required=True))
    with pytest.raises(ModelLoadError, match="RAG_RERANK__MODEL"):
        rr.scores("q", ["passage"])
