"""Filters of the embedded store: documents resolved in SQL, mapped to rows per segment, equal to a brute-force check.

The reference is independent of the code under test: `Filters.match_document` over every
ledger row in Python, turned into chunk ids, and handed to the retrievers as a bare id
array (which they intersect with each segment's chunk ids, not through document ids).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from rag import RAG, SourceText
from rag.config import IndexSettings, IngestSettings, Settings
from rag.filters import Filters
from rag.store.ledger import Chunk, Document, DocumentTag, document_tags

WORDS = ["solar", "wind", "water", "battery", "grid", "heat", "pump", "panel", "storm", "river", "coal", "nuclear"]
QUERIES = ["solar panel", "wind storm", "river water grid", "heat pump battery"]
CASES = [Filters(tags=("red",)), Filters(tags=("red", "blue")), Filters(tags=("solo",)), Filters(tags=("none",)),
         Filters(tags=("blue",), media_types=("text/plain",)), Filters(tags=("red",), source_glob="d1*"),
         Filters(source_glob="d0?"), Filters(metadata=(("team", "t1"),)),
         Filters(tags=("blue",), modified_after=datetime(2022, 1, 1, tzinfo=UTC))]


def doc(i: int, version: int = 0) -> SourceText:
    rng = np.random.default_rng(100 * version + i)
    text = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 40 + 7 * i))
    tags: object = [["red"], ["blue", "red"], "solo", ["blue", "blue"], [], [3, "blue"]][(i + version) % 6]
    return SourceText(source=f"d{i:02d}", title=None, text=text,
                      metadata={"tags": tags, "team": f"t{i % 3}", "modified": f"202{i % 5}-03-01T00:00:00+00:00"})


def open_rag(home: Path, embedder: object) -> RAG:
    index = IndexSettings(background_merge=False)
    return RAG.open(settings=Settings(home=home, ingest=IngestSettings(batch_files=3), index=index),
                    embedder=embedder)


def brute_force_chunks(rag: RAG, f: Filters) -> np.ndarray:
    coll = rag.store.collection("c")
    with rag.store.sessions() as s:
        docs = s.scalars(select(Document).where(Document.collection_id == coll.id, Document.status == "ok")).all()
        keep = [d.id for d in docs if f.match_document(d.source_uri, d.media_type, d.metadata_ or {}, d.updated_at)]
        return np.array(sorted(s.scalars(select(Chunk.id).where(Chunk.document_id.in_(keep)))), np.int64)


def assert_filters_match_brute_force(rag: RAG) -> None:
    snap = rag.store.index("c")
    for f in CASES:
        allowed = rag.store.allowed_chunk_ids("c", f)
        want = brute_force_chunks(rag, f)
        for q in QUERIES:
            qv = rag.embedder.encode_query(q)
            for got, ref in ((snap.dense.search(qv, 50, allowed), snap.dense.search(qv, 50, want)),
                             (snap.sparse.search(q, 50, allowed), snap.sparse.search(q, 50, want))):
                assert got[0].tolist() == ref[0].tolist(), (f, q)
                assert np.allclose(got[1], ref[1]), (f, q)
                assert set(got[0].tolist()) <= set(want.tolist())
        dense_all = snap.dense.search(rag.embedder.encode_query("solar"), 10_000, allowed)[0]
        assert sorted(dense_all.tolist()) == want.tolist(), f  # every allowed chunk, and nothing else, is searched


def tag_rows(rag: RAG) -> set[tuple[int, str]]:
    with rag.store.sessions() as s:
        return {(d, t) for d, t in s.execute(select(DocumentTag.document_id, DocumentTag.tag))}


def expected_tag_rows(rag: RAG) -> set[tuple[int, str]]:
    with rag.store.sessions() as s:
        rows = s.execute(select(Document.id, Document.metadata_).where(Document.status == "ok")).all()
    return {(d, t) for d, meta in rows for t in document_tags(meta)}


@pytest.fixture()
def built(tmp_path: Path, embedder: object) -> RAG:
    """18 documents in batches of 3, then 5 replaced (new tags) and 3 deleted: many segments with deletions."""
    rag = open_rag(tmp_path / "h", embedder)
    rag.ingest_texts([doc(i) for i in range(18)], collection="c")
    rag.ingest_texts([doc(i, version=1) for i in range(0, 10, 2)], collection="c")
    coll = rag.store.collection("c")
    rag.store.write_batch(coll, [], removed=["d03", "d07", "d15"])
    assert len(rag.store.index("c").segments) > 3
    return rag


def test_filtered_search_equals_brute_force(built: RAG) -> None:
    assert tag_rows(built) == expected_tag_rows(built)  # written with each version, gone with deleted ones
    assert_filters_match_brute_force(built)
    built.store.compact("c")  # merged segments carry the document ids over
    assert len(built.store.index("c").segments) == 1
    assert_filters_match_brute_force(built)


def test_upgrade_backfills_tags_and_document_ids(built: RAG, tmp_path: Path, embedder: object) -> None:
    """A store written before migration 0007 and docs.npy: opened again, its filters still agree with brute force."""
    from alembic import command

    from rag.store.db import alembic_config

    home = tmp_path / "h"
    command.downgrade(alembic_config(str(built.store.engine.url)), "0006")  # drops document_tags
    built.store.engine.dispose()
    removed = [p.unlink() for p in (home / "indexes" / "c" / "seg").glob("*/docs.npy")]
    assert removed, "the segments had document ids to remove"
    old = open_rag(home, embedder)  # migrates to head (backfill); loads segments without docs.npy
    assert tag_rows(old) == expected_tag_rows(old) != set()
    assert all(s.docs is not None for s in old.store.index("c").segments)
    assert_filters_match_brute_force(old)
    old.ingest_texts([doc(i, version=2) for i in range(18, 24)] + [doc(0, version=3)], collection="c")
    assert tag_rows(old) == expected_tag_rows(old)
    red = {h.source for h in old.search("solar wind water", collection="c", k=50, mode="bm25",
                                        filters=Filters(tags=("red",)))}
    with old.store.sessions() as s:
        want = {src for src, meta in s.execute(select(Document.source_uri, Document.metadata_))
                if "red" in document_tags(meta)}
    assert red == want and any(int(s[1:]) >= 18 for s in red) and any(int(s[1:]) < 18 for s in red)
    assert_filters_match_brute_force(old)
