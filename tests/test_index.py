"""Index segments: BM25 against the references, collection-wide statistics, deletes, merges, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import IndexSettings
from rag.errors import IndexMismatchError
from rag.store import index as idx
from rag.store import segment as sg
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


def vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def texts(n: int) -> list[str]:
    return [f"passage {i} " + TEXTS[i % len(TEXTS)] for i in range(n)]


def publish(root: Path, batches: list[tuple[np.ndarray, np.ndarray, list[str]]], dense: str = "flat",
            deleted: np.ndarray | None = None) -> idx.Snapshot:
    """Segments of the batches (ids, vectors, texts), with chunk ids `deleted` tombstoned, as one snapshot."""
    refs = []
    for ids, vecs, txts in batches:
        seg = sg.build(ids, vecs, [analyze(t) for t in txts], dense_kind=dense)
        sg.save(seg, root / "seg")
        ref = {"name": seg.name, "rows": seg.size, "deleted": 0, "deletes": None, "dense": dense}
        gone = seg.rows_of(deleted) if deleted is not None else np.zeros(0)
        if len(gone):
            ref.update(deleted=len(gone), deletes=idx.write_deletes(root, seg.name, gone))
        refs.append(ref)
    idx.publish(root, {"collection": "c", "ledger_revision": 1, "embedder_id": "e", "dim": 8, "segments": refs})
    return idx.load_current(root, idx.SegmentCache(), IndexSettings(dense=dense), embedder_id="e", dim=8,
                            collection="c")


def test_bm25_over_segments_scores_like_bm25s(tmp_path: Path) -> None:
    """Collection-wide statistics: three segments score exactly as one bm25s index over the same rows."""
    n = 30
    ids, vecs, txts = np.arange(n), vectors(n), texts(n)
    snap = publish(tmp_path, [(ids[:10], vecs[:10], txts[:10]), (ids[10:12], vecs[10:12], txts[10:12]),
                              (ids[12:], vecs[12:], txts[12:])])
    ref = SparseIndex.build(ids, txts, IndexSettings())
    for query in ["cats sleeping", "rank fusion passage", "passages vectors", "term frequency 7"]:
        got_ids, got = snap.sparse.search(query, 10)
        want = ref.scores(query)
        assert np.allclose(got, want[got_ids], rtol=1e-5), query
        assert set(got_ids.tolist()) == set(np.argsort(-want, kind="stable")[:10].tolist()) or \
            np.allclose(np.sort(got)[::-1], np.sort(want)[::-1][:len(got)], rtol=1e-5), query


def test_deleted_rows_vanish_and_statistics_follow(tmp_path: Path) -> None:
    n = 30
    ids, vecs, txts = np.arange(n), vectors(n), texts(n)
    gone = np.array([3, 8, 13, 21], np.int64)
    snap = publish(tmp_path / "a", [(ids[:15], vecs[:15], txts[:15]), (ids[15:], vecs[15:], txts[15:])], deleted=gone)
    keep = np.setdiff1d(ids, gone)
    fresh = publish(tmp_path / "b", [(keep, vecs[keep], [txts[i] for i in keep])])
    assert snap.sparse.size == snap.dense.size == len(keep)
    for query in ["cats", "rank fusion", "term frequency"]:
        a, sa = snap.sparse.search(query, 10)
        b, sb = fresh.sparse.search(query, 10)
        assert a.tolist() == b.tolist() and np.allclose(sa, sb), query
    q = vecs[3]
    a, _ = snap.dense.search(q, 10)
    b, _ = fresh.dense.search(q, 10)
    assert a.tolist() == b.tolist() and 3 not in a.tolist()


@pytest.mark.parametrize("dense", ["flat", "hnsw"])
def test_merge_keeps_results_and_drops_deleted_rows(tmp_path: Path, dense: str) -> None:
    n = 40
    ids, vecs, txts = np.arange(100, 100 + n), vectors(n), texts(n)
    parts = [(ids[i:i + 10], vecs[i:i + 10], txts[i:i + 10]) for i in range(0, n, 10)]
    snap = publish(tmp_path, parts, dense=dense, deleted=np.array([101, 125]))
    merged = sg.merge([(s, live if live is not None else np.ones(s.size, bool))
                       for s, live in zip(snap.segments, snap.live, strict=True)], dense_kind=dense)
    assert merged.size == n - 2 and np.all(np.diff(merged.ids) > 0)
    one = publish(tmp_path / "m", [(merged.ids, np.asarray(merged.vectors), [txts[i - 100] for i in merged.ids])],
                  dense=dense)
    q = np.ones(8, np.float32) / np.sqrt(8)
    assert snap.dense.search(q, 5)[0].tolist() == one.dense.search(q, 5)[0].tolist()
    for query in ["cats", "passage 7 vectors"]:
        assert snap.sparse.search(query, 8)[0].tolist() == one.sparse.search(query, 8)[0].tolist()
    rows_m = {t: merged.postings(t)[0].size for t in merged.terms}
    fresh = sg.build(merged.ids, np.asarray(merged.vectors), [analyze(txts[i - 100]) for i in merged.ids],
                     dense_kind="flat")
    assert rows_m == {t: fresh.postings(t)[0].size for t in fresh.terms}, "merged postings equal a fresh build's"


def test_dense_filter_restricts_before_scoring(tmp_path: Path) -> None:
    n = 50
    snap = publish(tmp_path, [(np.arange(100, 100 + n), vectors(n), texts(n))])
    allowed = np.array([101, 117, 140], np.int64)
    ids, _ = snap.dense.search(np.ones(8, np.float32), 10, allowed)
    assert sorted(ids.tolist()) == allowed.tolist(), "all allowed ids come back even if they rank low"
    ids, _ = snap.sparse.search("cats", 10, np.array([103, 108, 111]))
    assert set(ids.tolist()) <= {103, 108, 111} and ids.size


def test_manifest_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    publish(tmp_path, [(np.arange(5), vectors(5), texts(5))])
    with pytest.raises(IndexMismatchError, match="rag delete c --yes"):
        idx.load_current(tmp_path, idx.SegmentCache(), IndexSettings(), embedder_id="other", dim=8, collection="c")
    with pytest.raises(IndexMismatchError, match="dim"):
        idx.load_current(tmp_path, idx.SegmentCache(), IndexSettings(), embedder_id="e", dim=16, collection="c")


def test_old_snapshots_are_collected_and_no_temp_files_stay(tmp_path: Path) -> None:
    for _ in range(6):
        publish(tmp_path, [(np.arange(5), vectors(5), texts(5))])
    assert len(list(tmp_path.glob("snap-*.json"))) == idx.KEEP_SNAPSHOTS
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".CURRENT-*"))
    assert idx.read_manifest(tmp_path)["format_version"] == idx.FORMAT_VERSION


def test_failed_segment_write_leaves_current_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(tmp_path, [(np.arange(5), vectors(5), texts(5))])
    before = idx.current_name(tmp_path)

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(sg.np, "save", boom)
    with pytest.raises(OSError):
        publish(tmp_path, [(np.arange(5), vectors(5), texts(5))])
    assert idx.current_name(tmp_path) == before
    assert not list((tmp_path / "seg").glob(".tmp-*")), "the temp folder is removed"


def test_index_folder_holds_no_pickle(tmp_path: Path) -> None:
    publish(tmp_path, [(np.arange(5), vectors(5), texts(5))], deleted=np.array([2]))
    for path in tmp_path.rglob("*.npy"):
        np.load(path, allow_pickle=False)  # raises if an object array was pickled
    seg = next((tmp_path / "seg").iterdir())
    assert {p.name for p in seg.iterdir()} == set(sg.FILES)


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


def test_bm25_sums_postings_the_same_dense_or_sorted() -> None:
    """Both ways of summing postings per row (a dense bincount for many, a sort for few) agree exactly."""
    from rag.store.bm25 import _accumulate

    rng = np.random.default_rng(3)
    for size, n in ((50, 400), (100_000, 300), (100_000, 20_000)):
        rows = rng.integers(0, size, n)
        vals = rng.random(n).astype(np.float32) + 0.1
        got_rows, got = _accumulate(rows, vals, size)
        want_rows, inv = np.unique(rows, return_inverse=True)
        np.testing.assert_array_equal(got_rows, want_rows)
        np.testing.assert_array_equal(got, np.bincount(inv, weights=vals).astype(np.float32))


def test_garbage_collection_skips_files_another_writer_removed(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A background merge or another process renames and removes files while a publish collects garbage:
    a path listed a moment ago and gone now is skipped (it failed the ingest whose publish ran into it)."""
    from rag.store.index import collect_garbage

    for sub in ("seg", "del"):
        (tmp_path / sub).mkdir()
    real_glob = Path.glob

    def glob(self: Path, pattern: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        yield from real_glob(self, pattern, *args, **kwargs)
        yield self / f"{'.tmp-' if pattern.startswith('.tmp') else ''}vanished-{pattern.strip('*.')}"

    monkeypatch.setattr(Path, "glob", glob)
    collect_garbage(tmp_path)  # no FileNotFoundError
