"""Index folders: BM25 against the rank-bm25 reference, round trips, manifests, atomic swaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.config import IndexSettings
from rag.errors import IndexMismatchError
from rag.store import index as idx
from rag.store.sparse import SparseIndex, analyze

TEXTS = [
    "The cat sat on the mat while the dog slept.",
    "Dense retrieval encodes queries and passages as vectors.",
    "BM25 ranks passages by term frequency and inverse document frequency.",
    "Cats and dogs are common pets; cats sleep a lot.",
    "Reciprocal rank fusion combines rankings from several retrievers.",
]


def test_bm25_matches_rank_bm25_ordering() -> None:
    """Same tokens, same k1/b: the ranking agrees with the reference implementation."""
    from rank_bm25 import BM25Okapi

    ids = np.arange(10, 10 + len(TEXTS))
    ours = SparseIndex.build(ids, TEXTS, IndexSettings(bm25_k1=1.2, bm25_b=0.75))
    ref = BM25Okapi([analyze(t) for t in TEXTS], k1=1.2, b=0.75)
    for query in ["cats sleeping", "rank fusion", "passages vectors", "term frequency"]:
        mine = ours.scores(query)
        theirs = np.asarray(ref.get_scores(analyze(query)))
        assert np.argmax(mine) == np.argmax(theirs), query
        assert set(np.nonzero(mine > 0)[0]) == set(np.nonzero(theirs != 0)[0]), query


def test_bm25_unknown_words_and_filter() -> None:
    ids = np.arange(len(TEXTS))
    sp = SparseIndex.build(ids, TEXTS, IndexSettings())
    assert sp.search("zzzz qqqq", 5)[0].size == 0
    got, _ = sp.search("cats", 5, allowed=np.array([3]))
    assert got.tolist() == [3]


def build(root: Path, dim: int = 8, n: int = 20, rev: int = 1, dense: str = "flat") -> idx.LoadedIndex:
    rng = np.random.default_rng(rev)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(100, 100 + n, dtype=np.int64)
    texts = [f"passage {i} " + TEXTS[i % len(TEXTS)] for i in range(n)]
    idx.write_index(root, ids=ids, vectors=vecs, texts=texts, cfg=IndexSettings(dense=dense),
                    manifest={"collection": "c", "ledger_revision": rev, "embedder_id": "e", "dim": dim,
                              "chunking_hash": "h"})
    return idx.load_index(root, embedder_id="e", dim=dim, collection="c")


@pytest.mark.parametrize("dense", ["flat", "hnsw"])
def test_save_load_round_trip_gives_identical_results(tmp_path: Path, dense: str) -> None:
    loaded = build(tmp_path, dense=dense)
    q = np.ones(8, np.float32) / np.sqrt(8)
    a = loaded.dense.search(q, 5)
    again = idx.load_index(tmp_path, embedder_id="e", dim=8, collection="c")
    b = again.dense.search(q, 5)
    assert a[0].tolist() == b[0].tolist() and np.allclose(a[1], b[1])
    assert loaded.sparse.search("cats", 3)[0].tolist() == again.sparse.search("cats", 3)[0].tolist()
    assert loaded.manifest["dense"]["kind"] == dense


def test_dense_filter_restricts_before_scoring(tmp_path: Path) -> None:
    loaded = build(tmp_path, n=50)
    allowed = np.array([101, 117, 140], np.int64)
    ids, _ = loaded.dense.search(np.ones(8, np.float32), 10, allowed)
    assert sorted(ids.tolist()) == allowed.tolist(), "all allowed ids come back even if they rank low"


def test_manifest_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    build(tmp_path)
    with pytest.raises(IndexMismatchError, match="rag reindex c"):
        idx.load_index(tmp_path, embedder_id="other-model", dim=8, collection="c")
    with pytest.raises(IndexMismatchError, match="dim"):
        idx.load_index(tmp_path, embedder_id="e", dim=16, collection="c")


def test_new_version_replaces_current_and_old_ones_are_collected(tmp_path: Path) -> None:
    for rev in range(1, 5):
        build(tmp_path, rev=rev)
    current = idx.current_folder(tmp_path)
    assert current is not None and json.loads((current / "manifest.json").read_text())["ledger_revision"] == 4
    versions = [p for p in tmp_path.glob("v*") if p.is_dir()]
    assert len(versions) == 2, "current plus one previous version for readers in flight"
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".CURRENT-*"))


def test_failed_build_leaves_current_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path, rev=1)
    before = idx.current_folder(tmp_path)

    def boom(self: SparseIndex, folder: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(SparseIndex, "save", boom)
    with pytest.raises(OSError):
        build(tmp_path, rev=2)
    assert idx.current_folder(tmp_path) == before
    assert not list(tmp_path.glob(".tmp-*")), "the temp folder is removed"
    assert idx.load_index(tmp_path, embedder_id="e", dim=8, collection="c").revision == 1


def test_index_folder_holds_no_pickle(tmp_path: Path) -> None:
    build(tmp_path)
    folder = idx.current_folder(tmp_path)
    for path in folder.rglob("*.npy"):
        np.load(path, allow_pickle=False)  # raises if an object array was pickled
    assert {p.name for p in folder.iterdir()} >= {"dense.faiss", "bm25", "bm25_ids.npy", "manifest.json"}


def test_store_refuses_another_embedder(rag, tmp_path: Path, embedder) -> None:
    from rag import RAG, SourceText
    from rag.config import EmbedderSettings

    rag.ingest_texts([SourceText(source="a", text="alpha beta gamma")], collection="c")

    class Other:
        model_id, dim, max_tokens = "other/model", embedder.dim, embedder.max_tokens

    other = RAG.open(settings=rag.settings.model_copy(update={"embedder": EmbedderSettings(model="other/model")}),
                     embedder=Other())
    with pytest.raises(IndexMismatchError, match="RAG_EMBEDDER__MODEL=sentence-transformers/all-MiniLM-L6-v2"):
        other.search("alpha", collection="c")


def test_empty_collection_builds_and_searches(rag) -> None:
    from rag import SourceText

    rag.ingest_texts([SourceText(source="a", text="alpha beta gamma")], collection="c")
    rag.store.write_batch(rag.store.collection("c"), [], removed=["a"])
    assert rag.search("alpha", collection="c", k=3) == []
    assert rag.store.index("c").manifest["chunks"] == 0
