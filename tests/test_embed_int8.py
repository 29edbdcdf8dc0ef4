"""The int8 embedder quantized here from the packaged fp32 model, against fp32 (both real models)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from rag.config import EmbedderSettings  # noqa: E402
from rag.embed import make_embedder  # noqa: E402
from rag.errors import IndexMismatchError  # noqa: E402

SAMPLE = [
    "Vitamin D deficiency is associated with a higher risk of hip fractures in elderly women.",
    "The mitochondria produce most of the cell's supply of adenosine triphosphate.",
    "BM25 ranks passages by term frequency and inverse document frequency.",
    "How do I reset my password if I no longer have access to my email?",
    "Aspirin lowers the risk of a second heart attack in patients with coronary disease.",
    "Die Katze sitzt auf der Matte.",
    "short",
    "Transcription factors bind promoter regions and recruit RNA polymerase II. " * 6,
]


def test_int8_agrees_with_fp32(int8_embedder, fp32_embedder) -> None:
    a, b = fp32_embedder.encode(SAMPLE), int8_embedder.encode(SAMPLE)
    assert b.shape == (len(SAMPLE), 384) and b.dtype == np.float32
    cos = np.sum(a * b, axis=1)
    # measured here: mean 0.992, min 0.986 (the one-word "short"); SciFact abstracts mean 0.992
    assert cos.mean() >= 0.99 and cos.min() >= 0.98, cos
    assert (np.argmax(b @ a.T, axis=1) == np.arange(len(SAMPLE))).all()
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    # activations are quantized with one scale per batch, so a text's vector depends a little on its batch
    assert float(int8_embedder.encode_query(SAMPLE[0]) @ b[0]) >= 0.99


def test_a_texts_vector_does_not_depend_on_its_batch_mates(int8_embedder) -> None:
    """Activations are quantized per model call: batched with others (and their padding), a text would get
    another vector (cosine ~0.991 measured), so a query could rank differently under load."""
    alone = int8_embedder.encode([SAMPLE[0]])[0]
    beside = int8_embedder.encode([SAMPLE[0], *SAMPLE[1:], "x " * 200], batch_size=64)[0]
    query = int8_embedder.encode_query(SAMPLE[0])
    assert np.allclose(alone, beside, atol=1e-6) and np.allclose(alone, query, atol=1e-6)


def test_int8_identity_and_limits(int8_embedder, fp32_embedder) -> None:
    from rag.protocols import Embedder

    assert isinstance(int8_embedder, Embedder)
    assert int8_embedder.model_id == f"{fp32_embedder.model_id.split('#')[0]}#int8" != fp32_embedder.model_id
    assert (int8_embedder.dim, int8_embedder.max_tokens) == (384, 254)
    assert int8_embedder.count_tokens(SAMPLE) == fp32_embedder.count_tokens(SAMPLE)


def test_graph_is_built_once_and_cached(int8_embedder, tmp_path) -> None:
    from rag.embed import resolve_model_path
    from rag.embed_int8 import int8_graph

    settings = int8_embedder.settings
    graph = int8_graph(settings, resolve_model_path(settings.model))
    # int8 MatMul weights (a quarter of their fp32 size); the 47 MB word-embedding table stays fp32
    assert graph.is_file() and graph.stat().st_size < 60e6  # the fp32 graph is 90 MB
    before = graph.stat().st_mtime_ns
    assert int8_graph(settings, resolve_model_path(settings.model)) == graph
    assert graph.stat().st_mtime_ns == before  # reused, not rebuilt
    assert not [p for p in graph.parent.iterdir() if p.name.startswith(".build-")]  # no leftovers


def test_not_a_model_folder_is_a_clear_error(tmp_path) -> None:
    from rag.errors import ModelLoadError

    emb = make_embedder(EmbedderSettings(backend="int8", model=str(tmp_path), cache_dir=tmp_path / "c"))
    with pytest.raises(ModelLoadError, match="not a model folder"):
        emb.encode(["x"])


def test_fp32_collection_refuses_int8_and_says_how_to_fix(fp32_embedder, int8_embedder, tmp_path) -> None:
    """A collection keeps its vector space: another embedder is refused with the fix in the message."""
    from rag import RAG, SourceText
    from rag.config import Settings

    settings = Settings(home=tmp_path / "home")
    old = RAG.open(settings=settings, embedder=fp32_embedder)
    old.ingest_texts([SourceText(source="a", text=SAMPLE[0])], collection="old")
    new = RAG.open(settings=settings, embedder=int8_embedder)
    with pytest.raises(IndexMismatchError, match=r"RAG_EMBEDDER__BACKEND=sentence-transformers.*rag delete old --yes"):
        new.search("vitamin D", collection="old")
    assert old.search("vitamin D", collection="old", k=1)[0].source == "a"  # still readable the old way


def test_old_home_keeps_its_vector_space_when_the_default_changes(fp32_embedder, int8_embedder, tmp_path,
                                                                 caplog) -> None:
    """A home filled with the non-default backend reopens with that backend unless one is chosen explicitly."""
    from rag import RAG, SourceText
    from rag.config import EmbedderSettings, Settings

    default = EmbedderSettings().backend
    other, emb = (("int8", int8_embedder) if default != "int8" else ("sentence-transformers", fp32_embedder))
    home = tmp_path / "home"
    old = RAG.open(settings=Settings(home=home, embedder=EmbedderSettings(backend=other)), embedder=emb)
    old.ingest_texts([SourceText(source="a", text=SAMPLE[0])], collection="old")

    with caplog.at_level("WARNING", logger="rag.embed"):
        reopened = RAG.open(settings=Settings(home=home))
    assert reopened.settings.embedder.backend == other and reopened.embedder.model_id == emb.model_id
    assert f"backend {other!r}" in caplog.text and "RAG_EMBEDDER__BACKEND" in caplog.text
    explicit = RAG.open(settings=Settings(home=home, embedder=EmbedderSettings(backend=default)))
    assert explicit.settings.embedder.backend == default  # an explicit choice is never overridden
    assert RAG.open(settings=Settings(home=tmp_path / "new")).settings.embedder.backend == default
