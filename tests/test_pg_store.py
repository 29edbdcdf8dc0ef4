"""The PostgreSQL store on a real server with pgvector: schema, writes, filters, concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import func, select, text

from rag import SourceText
from rag.filters import Filters
from rag.store.base import store_kind
from rag.store.ledger import Chunk, Document, DocumentTag, Embedding, document_tags
from rag.store.local import DocumentWrite, text_hash
from rag.types import ChunkDraft


def _texts(n: int, prefix: str = "d") -> list[SourceText]:
    topics = ["vitamin D and bone density", "insulin resistance in obesity", "tumour suppressor genes"]
    return [SourceText(source=f"{prefix}{i:03d}", title=f"Study {i}",
                       text=f"This study {i} reports on {topics[i % 3]}. " * 4,
                       metadata={"tags": ["odd" if i % 2 else "even"], "lab": f"lab{i % 3}"})
            for i in range(n)]


def _vector_count(store) -> int:
    with store.sessions() as s:
        return int(s.scalar(text("SELECT count(*) FROM chunk_vectors")))


def test_store_is_picked_by_database_url() -> None:
    assert store_kind("postgresql+psycopg://u@h/db") == "postgresql"
    assert store_kind("postgres://u@h/db") == "postgresql"
    assert store_kind("sqlite:////tmp/x.db") == "local"


def test_migrations_on_postgres_match_models(pg_url) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from rag.store.db import alembic_config, current_revision, head_revision, make_engine, open_engine
    from rag.store.ledger import Base
    from rag.store.pg_schema import include_object

    pytest.importorskip("pgvector.sqlalchemy")  # teaches SQLAlchemy's reflection the `vector` type
    engine = open_engine(pg_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": include_object}),
                                Base.metadata)
    assert diff == [], f"models and migrations differ on PostgreSQL: {diff}"
    command.downgrade(alembic_config(engine.url.render_as_string(hide_password=False)), "base")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT to_regclass('chunk_vectors')")) is None
    engine.dispose()
    engine = open_engine(pg_url)
    assert current_revision(make_engine(pg_url)) == head_revision()
    engine.dispose()


def test_ingest_search_and_sql_filters(pg_rag) -> None:
    from rag.store.postgres import PgStore

    report = pg_rag.ingest_texts(_texts(30), collection="c")
    assert isinstance(pg_rag.store, PgStore)
    assert report.summary() == {"ok": 30, "skipped": 0, "failed": 0, "removed": 0}
    assert pg_rag.store.chunk_count("c") == _vector_count(pg_rag.store) > 0
    hits = pg_rag.search("insulin resistance obesity", collection="c", k=5)
    assert len(hits) == 5 and all("insulin" in h.text for h in hits)
    assert all({"dense", "bm25"} <= set(h.ranks) for h in hits[:3])
    odd = pg_rag.search("vitamin D bone", collection="c", k=30, filters=Filters(tags=("odd",)))
    assert odd and all(int(h.source[1:]) % 2 == 1 for h in odd)
    glob = pg_rag.search("study", collection="c", k=30, filters=Filters(source_glob="d01?"), mode="dense")
    assert sorted(h.source for h in glob) == [f"d01{i}" for i in range(10)]
    lab = pg_rag.search("study", collection="c", k=30, filters=Filters(metadata=(("lab", "lab1"),)), mode="bm25")
    assert lab and all(h.metadata["lab"] == "lab1" for h in lab)
    ids = tuple(d.id for d in pg_rag.documents("c")[:2])
    assert {h.document_id for h in pg_rag.search("study", collection="c", k=10,
                                                 filters=Filters(document_ids=ids))} == set(ids)
    assert pg_rag.search("study", collection="c", filters=Filters(media_types=("application/pdf",))) == []


def _tag_rows(store) -> set[tuple[int, str]]:
    with store.sessions() as s:
        return {(d, t) for d, t in s.execute(select(DocumentTag.document_id, DocumentTag.tag))}


def test_delete_and_reingest_are_idempotent(pg_rag) -> None:
    docs = _texts(12)
    pg_rag.ingest_texts(docs, collection="c")
    chunks = pg_rag.store.chunk_count("c")
    assert pg_rag.ingest_texts(docs, collection="c").summary()["skipped"] == 12
    changed = [*docs[:11], SourceText(source=docs[11].source, text="A new text about tumour suppressor genes.")]
    assert pg_rag.ingest_texts(changed, collection="c").summary()["ok"] == 1
    with pg_rag.store.sessions() as s:
        dupes = s.execute(select(Chunk.document_id, Chunk.ordinal).group_by(Chunk.document_id, Chunk.ordinal)
                          .having(func.count() > 1)).all()
    assert dupes == [] and pg_rag.store.chunk_count("c") == _vector_count(pg_rag.store)
    assert _tag_rows(pg_rag.store) == {(d.id, t) for d in pg_rag.documents("c") for t in document_tags(d.metadata)}
    assert len(_tag_rows(pg_rag.store)) == 11  # the upsert replaced the changed document's tags (it has none now)
    pg_rag.delete_collection("c")
    assert _vector_count(pg_rag.store) == 0 and _tag_rows(pg_rag.store) == set()
    pg_rag.ingest_texts(docs, collection="c")
    assert pg_rag.store.chunk_count("c") == chunks == _vector_count(pg_rag.store)
    assert pg_rag.search("vitamin D", collection="c", k=3)


def _write(source: str, body: str, dim: int) -> DocumentWrite:
    parts = [f"{body} part {j}" for j in range(3)] + ["shared boilerplate text"]  # same text in every doc
    chunks = [ChunkDraft(ordinal=j, text=t, char_start=0, char_end=len(t), token_count=4) for j, t in enumerate(parts)]
    rng = np.random.default_rng(abs(hash(source)) % 2**32)
    vectors = {}
    for t in parts:
        v = rng.standard_normal(dim).astype(np.float32)
        vectors[text_hash(t)] = v / np.linalg.norm(v)
    return DocumentWrite(source=source, content_hash=text_hash(body), media_type="text/plain", size_bytes=len(body),
                         title=None, metadata={}, chunks=chunks, vectors=vectors)


def test_concurrent_writers_lose_and_double_nothing(pg_settings) -> None:
    """Two workers (own engines) write different documents, and both rewrite one shared document, at once."""
    from rag.store.postgres import PgStore

    dim = 8
    stores = [PgStore(pg_settings, embedder_id="fake", dim=dim) for _ in range(2)]
    coll = stores[0].collection("c", create=True)
    start, errors = threading.Barrier(2), []

    def worker(w: int) -> None:
        try:
            start.wait()
            for b in range(8):
                batch = [_write(f"w{w}-b{b}-d{i}", f"worker {w} batch {b} doc {i}", dim) for i in range(4)]
                batch.append(_write("shared", f"shared version {w}-{b}", dim))
                stores[w].write_batch(coll, batch)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = stores[0]
    assert len(store.ledger.documents("c")) == 2 * 8 * 4 + 1
    assert store.chunk_count("c") == (2 * 8 * 4 + 1) * 4 == _vector_count(store)
    with store.sessions() as s:
        # 64 documents x 3 own texts + 16 'shared' versions x 3 + one boilerplate text: each cached once
        assert s.scalar(select(func.count()).select_from(Embedding)) == 64 * 3 + 16 * 3 + 1
        assert s.scalar(text("SELECT count(*) FROM chunks c LEFT JOIN chunk_vectors v ON v.chunk_id = c.id"
                             " WHERE v.chunk_id IS NULL")) == 0
    assert store.revision(coll) == 16
    shared = [d for d in store.ledger.documents("c") if d.source_uri == "shared"]
    assert len(shared) == 1 and shared[0].chunk_count == 4
    for st in stores:
        st.engine.dispose()


# No stop words in either analyser, so bm25s (rag.store.sparse) and PostgreSQL see the same tokens.
BM25_TEXTS = {"a": "insulin insulin insulin insulin levels measured", "b": "glucagon levels rose sharply",
              "c": "insulin dosing clinics", "d": "insulin pumps patients", "e": "insulin resistance obesity"}


def _one_chunk(source: str, body: str, dim: int) -> DocumentWrite:
    v = np.ones(dim, np.float32) / np.sqrt(dim)
    chunk = ChunkDraft(ordinal=0, text=body, char_start=0, char_end=len(body), token_count=len(body.split()))
    return DocumentWrite(source=source, content_hash=text_hash(body), media_type="text/plain", size_bytes=len(body),
                         title=None, metadata={}, chunks=[chunk], vectors={text_hash(body): v})


def _bm25_reference(store, coll_name: str, query: str) -> dict[int, float]:
    from rag.config import IndexSettings
    from rag.store.sparse import SparseIndex

    with store.sessions() as s:
        rows = s.execute(select(Chunk.id, Chunk.text).join(Chunk.document).where(
            Document.collection_id == store.collection(coll_name).id)).all()
    ids = np.array([r[0] for r in rows])
    scores = SparseIndex.build(ids, [r[1] for r in rows], IndexSettings(bm25_k1=1.2, bm25_b=0.75)).scores(query)
    return {int(i): float(x) for i, x in zip(ids, scores, strict=True) if x > 0}


def test_pg_bm25_scores_match_the_embedded_bm25(pg_settings) -> None:
    """A rare term outranks a common one repeated (ts_rank_cd gets this wrong); scores equal bm25s's."""
    from rag.store.postgres import PgStore

    store = PgStore(pg_settings, embedder_id="fake", dim=4)
    coll = store.collection("c", create=True)
    store.write_batch(coll, [_one_chunk(s, t, 4) for s, t in BM25_TEXTS.items()])
    with store.sessions() as s:
        chunk_of = dict(s.execute(select(Document.source_uri, Chunk.id).join(Chunk.document)).all())
    query = "glucagon and insulin"
    ids, scores = store.index("c").sparse.search(query, 10)
    ref = _bm25_reference(store, "c", query)
    assert ids[0] == chunk_of["b"] and set(ids.tolist()) == set(ref)
    assert np.allclose(scores, [ref[int(i)] for i in ids], rtol=1e-5)
    assert store.index("c").manifest["ledger_revision"] == store.revision(coll)

    ts = store.settings.model_copy(deep=True)
    ts.index.pg_sparse = "ts_rank_cd"
    old = PgStore(ts, embedder_id="fake", dim=4)
    assert old.index("c").sparse.search(query, 10)[0][0] == chunk_of["a"]  # no IDF: the repeated common term wins
    assert old.manifest(coll)["sparse"]["rank"] == "ts_rank_cd"

    # a write bumps the revision: N, avgdl and df are counted afresh (glucagon is no longer rare)
    store.write_batch(coll, [_one_chunk(f"g{i}", f"glucagon secretion study {i}", 4) for i in range(4)])
    ids, scores = store.index("c").sparse.search(query, 10)
    ref = _bm25_reference(store, "c", query)
    assert set(ids.tolist()) == set(ref) and np.allclose(scores, [ref[int(i)] for i in ids], rtol=1e-5)
    allowed = np.array([chunk_of["a"], chunk_of["c"]])
    got, _ = store.index("c").sparse.search(query, 10, allowed)
    assert got.tolist() == [chunk_of["a"], chunk_of["c"]]
    assert store.index("c").sparse.search("the of and", 10)[0].size == 0  # stop words only: nothing to match
    store.engine.dispose()
    old.engine.dispose()


def test_sql_filters_equal_brute_force(pg_rag) -> None:
    """Every filter field and combination on PostgreSQL (document_tags, document_metadata, modified_at) against
    `Filters.match_document` over the ledger rows; replaced and deleted documents included."""
    from test_local_filters import CASES, doc

    pg_rag.ingest_texts([doc(i, nan=False) for i in range(14)], collection="c")
    pg_rag.ingest_texts([doc(i, version=1, nan=False) for i in range(0, 8, 2)], collection="c")
    pg_rag.ingest_texts([doc(i, nan=False) for i in range(4)], collection="other")
    pg_rag.store.write_batch(pg_rag.store.collection("c"), [], removed=["d03", "d07"])
    coll = pg_rag.store.collection("c")
    with pg_rag.store.sessions() as s:
        docs = s.scalars(select(Document).where(Document.collection_id == coll.id, Document.status == "ok")).all()
        chunks = {d: set(s.scalars(select(Chunk.id).where(Chunk.document_id == d))) for d in (x.id for x in docs)}
    ids = sorted(chunks)
    snap = pg_rag.store.index("c")
    qv = pg_rag.embedder.encode_query("solar")
    for f in [*CASES, Filters(document_ids=(ids[0], ids[2], 10**6)), Filters(document_ids=tuple(ids), tags=("red",))]:
        keep = [d.id for d in docs if f.match_document(d.source_uri, d.media_type, d.metadata_ or {}, d.updated_at,
                                                           document_id=d.id)]
        want = set().union(*(chunks[d] for d in keep)) if keep else set()
        got = set(snap.dense.search(qv, 10_000, pg_rag.store.allowed_chunk_ids("c", f))[0].tolist())
        assert got == want, f
