"""Filters of the embedded store: documents resolved in SQL, mapped to rows per segment, equal to a brute-force check.

The reference is independent of the code under test: `Filters.match_document` over every
ledger row in Python, turned into chunk ids, and handed to the retrievers as a bare id
array (which they intersect with each segment's chunk ids, not through document ids).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from rag import RAG, SourceText
from rag.config import IndexSettings, IngestSettings, Settings
from rag.filters import Filters
from rag.store.doc_fields import metadata_rows, modified_at
from rag.store.ledger import Chunk, Collection, Document, DocumentMeta, DocumentTag, document_tags

WORDS = ["solar", "wind", "water", "battery", "grid", "heat", "pump", "panel", "storm", "river", "coal", "nuclear"]
QUERIES = ["solar panel", "wind storm", "river water grid", "heat pump battery"]
AFTER, BEFORE = datetime(2022, 1, 1, tzinfo=UTC), datetime(2023, 6, 1, tzinfo=UTC)
CASES = [Filters(tags=("red",)), Filters(tags=("red", "blue")), Filters(tags=("solo",)), Filters(tags=("none",)),
         Filters(media_types=("text/markdown",)), Filters(media_types=("text/plain", "text/html")),
         Filters(media_types=("application/pdf",)),
         Filters(source_glob="d0?"), Filters(source_glob="d1*"), Filters(source_glob="*5"), Filters(source_glob="*"),
         Filters(source_glob="d[0-1][!3]"), Filters(source_glob="d?[^2]"), Filters(source_glob="x*"),
         Filters(source_glob="*07"), Filters(source_glob="*[!0]7"), Filters(source_glob="*d1?"),
         Filters(source_glob="*[a]1"), Filters(source_glob="?0[0-4]"),
         Filters(metadata=(("team", "t1"),)), Filters(metadata=(("n", 1),)), Filters(metadata=(("n", 1.0),)),
         Filters(metadata=(("flag", True),)), Filters(metadata=(("flag", 1),)), Filters(metadata=(("score", 0.5),)),
         Filters(metadata=(("team", None),)), Filters(metadata=(("missing", None),)), Filters(metadata=(("n", None),)),
         Filters(metadata=(("team", "t1"), ("n", 2))), Filters(metadata=(("list", [1]),)),
         Filters(metadata=(("n", "1"),)), Filters(metadata=(("team", float("nan")),)),
         Filters(modified_after=AFTER), Filters(modified_before=BEFORE),
         Filters(modified_after=AFTER, modified_before=BEFORE), Filters(modified_after=datetime(2022, 1, 1)),
         Filters(modified_before=datetime(2021, 3, 1, 5, 30, tzinfo=timezone(timedelta(hours=6)))),
         Filters(tags=("blue",), media_types=("text/plain",)), Filters(tags=("red",), source_glob="d1*"),
         Filters(tags=("blue",), modified_after=AFTER),
         Filters(tags=("red", "blue"), media_types=("text/plain", "text/markdown"), source_glob="d*",
                 metadata=(("team", "t0"),), modified_before=BEFORE),
         Filters(source_glob="*[0-4]", metadata=(("list", [0]),), modified_after=datetime(2020, 1, 1, tzinfo=UTC))]
MODIFIED = ["2020-03-01T00:00:00+00:00", "2021-03-01T02:00:00+05:00", "2022-03-01", "2023-03-01T00:00:00+00:00",
            "2024-03-01T00:00:00-08:00", "yesterday", None, 20220301]


def doc(i: int, version: int = 0, nan: bool = True) -> SourceText:
    rng = np.random.default_rng(100 * version + i)
    text = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 40 + 7 * i))
    tags: object = [["red"], ["blue", "red"], "solo", ["blue", "blue"], [], [3, "blue"]][(i + version) % 6]
    meta: dict[str, object] = {"tags": tags, "team": f"t{i % 3}", "n": (i + version) % 4, "flag": i % 2 == 1,
                               "score": [0.5, 1.0, 2][i % 3]}
    if i % 5 != 4:
        meta["list"] = [(i + version) % 2]
    if MODIFIED[(i + version) % len(MODIFIED)] is not None:
        meta["modified"] = MODIFIED[(i + version) % len(MODIFIED)]
    if i % 7 == 6:
        meta["team"] = None
    if i % 9 == 8 and nan:  # PostgreSQL's JSON has no NaN
        meta["n"] = float("nan")  # equals nothing, and is not None
    return SourceText(source=f"d{i:02d}", title=None, text=text, media_type=["text/plain", "text/markdown",
                      "text/html"][(i + version) % 3], metadata=meta)


def open_rag(home: Path, embedder: object) -> RAG:
    index = IndexSettings(background_merge=False)
    return RAG.open(settings=Settings(home=home, ingest=IngestSettings(batch_files=3), index=index),
                    embedder=embedder)


def brute_force_chunks(rag: RAG, f: Filters) -> np.ndarray:
    coll = rag.store.collection("c")
    with rag.store.sessions() as s:
        docs = s.scalars(select(Document).where(Document.collection_id == coll.id, Document.status == "ok")).all()
        keep = [d.id for d in docs if f.match_document(d.source_uri, d.media_type, d.metadata_ or {}, d.updated_at,
                                                          document_id=d.id)]
        return np.array(sorted(s.scalars(select(Chunk.id).where(Chunk.document_id.in_(keep)))), np.int64)


def id_cases(rag: RAG) -> list[Filters]:
    """Document-id filters: live ids, deleted or replaced ones, and one of another collection."""
    with rag.store.sessions() as s:
        ids = {src: d for src, d in s.execute(select(Document.source_uri, Document.id).join(Collection)
                                              .where(Collection.name == "c"))}
        other = s.scalars(select(Document.id).join(Collection).where(Collection.name == "other")).first()
        every = set(s.scalars(select(Document.id)))
    gone = sorted(set(range(1, max(every))) - every)[:3]
    assert gone and other is not None
    live = [ids[k] for k in sorted(ids)[:6:2]]
    return [Filters(document_ids=(*live, *gone, 10**6)), Filters(document_ids=(live[0], other)),
            Filters(document_ids=tuple(ids.values()), tags=("red",), source_glob="d0*")]


def assert_filters_match_brute_force(rag: RAG) -> None:
    snap = rag.store.index("c")
    for f in CASES + id_cases(rag):
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


def field_rows(rag: RAG) -> tuple[set[tuple[int, str, str]], dict[int, datetime | None]]:
    """(document_metadata rows, documents.modified_at per ok document) as stored."""
    with rag.store.sessions() as s:
        meta = {(d, k, v) for d, k, v in s.execute(select(DocumentMeta.document_id, DocumentMeta.key,
                                                          DocumentMeta.value))}
        when = {d: None if w is None else w.replace(tzinfo=UTC)
                for d, w in s.execute(select(Document.id, Document.modified_at).where(Document.status == "ok"))}
    return meta, when


def expected_field_rows(rag: RAG) -> tuple[set[tuple[int, str, str]], dict[int, datetime | None]]:
    with rag.store.sessions() as s:
        rows = s.execute(select(Document.id, Document.collection_id, Document.metadata_)
                         .where(Document.status == "ok")).all()
    meta = {(r["document_id"], r["key"], r["value"]) for d, c, m in rows for r in metadata_rows(d, c, m)}
    return meta, {d: modified_at(m) for d, _, m in rows}


def tag_rows(rag: RAG) -> set[tuple[int, str]]:
    with rag.store.sessions() as s:
        return {(d, t) for d, t in s.execute(select(DocumentTag.document_id, DocumentTag.tag))}


def expected_tag_rows(rag: RAG) -> set[tuple[int, str]]:
    with rag.store.sessions() as s:
        rows = s.execute(select(Document.id, Document.metadata_).where(Document.status == "ok")).all()
    return {(d, t) for d, meta in rows for t in document_tags(meta)}


def bit_rows(rag: RAG) -> set[tuple[int, str, int]]:
    """(collection, field, document) as `field_bits` holds them."""
    from rag.store.field_bits import BLOCK_SHIFT, decode
    from rag.store.ledger import FieldBits

    with rag.store.sessions() as s:
        return {(c, f, int(o) + (b << BLOCK_SHIFT)) for c, f, b, bits in
                s.execute(select(FieldBits.collection_id, FieldBits.field, FieldBits.block, FieldBits.bits))
                for o in decode(bits)}


def expected_bit_rows(rag: RAG) -> set[tuple[int, str, int]]:
    from rag.store.field_bits import document_fields

    with rag.store.sessions() as s:
        rows = s.execute(select(Document.id, Document.collection_id, Document.metadata_, Document.media_type,
                                Document.updated_at).where(Document.status == "ok")).all()
    return {(c, f, d) for d, c, meta, media, when in rows for f in document_fields(meta, media, when)}


@pytest.fixture()
def built(tmp_path: Path, embedder: object) -> RAG:
    """18 documents in batches of 3, then 5 replaced (new tags) and 3 deleted: many segments with deletions."""
    rag = open_rag(tmp_path / "h", embedder)
    rag.ingest_texts([doc(i) for i in range(18)], collection="c")
    rag.ingest_texts([doc(i) for i in range(6)], collection="other")  # same sources and metadata: never leak in
    rag.ingest_texts([doc(i, version=1) for i in range(0, 10, 2)], collection="c")
    coll = rag.store.collection("c")
    rag.store.write_batch(coll, [], removed=["d03", "d07", "d15"])
    assert len(rag.store.index("c").segments) > 3
    return rag


@pytest.mark.parametrize("lookup_max", [4096, 0], ids=["tightest-field-drives", "fields-intersected"])
def test_filtered_search_equals_brute_force(built: RAG, lookup_max: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.store import filter_ids

    monkeypatch.setattr(filter_ids, "LOOKUP_MAX", lookup_max)  # both ways of combining fields, same answers
    assert tag_rows(built) == expected_tag_rows(built)  # written with each version, gone with deleted ones
    assert field_rows(built) == expected_field_rows(built)
    assert bit_rows(built) == expected_bit_rows(built) != set()
    assert_filters_match_brute_force(built)
    built.store.compact("c")  # merged segments carry the document ids over
    assert len(built.store.index("c").segments) == 1
    assert_filters_match_brute_force(built)
    other = built.store.collection("other").id
    assert any(c == other for c, _f, _d in bit_rows(built))
    built.store.delete_collection("other")  # its field_bits go with it
    assert bit_rows(built) == expected_bit_rows(built) and all(c != other for c, _f, _d in bit_rows(built))


def test_upgrade_backfills_filter_rows_and_document_ids(built: RAG, tmp_path: Path, embedder: object) -> None:
    """A store written before migrations 0007-0009 and docs.npy: opened again, its filters agree with brute force."""
    from alembic import command

    from rag.store.db import alembic_config

    home = tmp_path / "h"
    command.downgrade(alembic_config(str(built.store.engine.url)), "0006")  # drops document_tags, field_bits
    built.store.engine.dispose()
    removed = [p.unlink() for p in (home / "indexes" / "c" / "seg").glob("*/docs.npy")]
    assert removed, "the segments had document ids to remove"
    old = open_rag(home, embedder)  # migrates to head (backfill); loads segments without docs.npy
    assert tag_rows(old) == expected_tag_rows(old) != set()
    meta, when = field_rows(old)  # migration 0008 backfilled the metadata rows and modified_at
    assert (meta, when) == expected_field_rows(old) and meta and any(when.values()) and None in when.values()
    assert all(s.docs is not None for s in old.store.index("c").segments)
    assert bit_rows(old) == expected_bit_rows(old) != set()  # migration 0009 filled field_bits
    assert_filters_match_brute_force(old)
    old.ingest_texts([doc(i, version=2) for i in range(18, 24)] + [doc(0, version=3)], collection="c")
    assert tag_rows(old) == expected_tag_rows(old)
    assert field_rows(old) == expected_field_rows(old)
    assert bit_rows(old) == expected_bit_rows(old)
    red = {h.source for h in old.search("solar wind water", collection="c", k=50, mode="bm25",
                                        filters=Filters(tags=("red",)))}
    with old.store.sessions() as s:
        want = {src for src, meta in s.execute(select(Document.source_uri, Document.metadata_).join(Collection)
                                               .where(Collection.name == "c")) if "red" in document_tags(meta)}
    assert red == want and any(int(s[1:]) >= 18 for s in red) and any(int(s[1:]) < 18 for s in red)
    assert_filters_match_brute_force(old)


PLAN_CASES = {"tags": Filters(tags=("red", "blue")), "metadata": Filters(metadata=(("team", "t1"),)),
              "metadata list": Filters(metadata=(("list", [1]),)), "metadata none": Filters(metadata=(("team", None),)),
              "media": Filters(media_types=("text/plain",)),
              "glob prefix": Filters(source_glob="docs/2024/*.md"), "glob suffix": Filters(source_glob="*.md"),
              "after": Filters(modified_after=AFTER), "between": Filters(modified_after=AFTER, modified_before=BEFORE),
              "ids": Filters(document_ids=(1, 2, 3)),
              "all": Filters(tags=("red",), media_types=("text/plain",), source_glob="d*", modified_before=BEFORE,
                             metadata=(("team", "t1"),), document_ids=(1, 2))}


def test_every_filter_field_is_an_index_lookup(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN: each field's query searches an index (a range where the field gives one), never scans;
    asked about given documents only, each field is a primary-key lookup per document."""
    from sqlalchemy import text

    from rag.store.db import make_engine, upgrade
    from rag.store.local_filters import field_queries

    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(engine)

    def plan(f: Filters, among: list[int] | None = None) -> list[str]:
        out = []
        with engine.connect() as conn:
            for q in field_queries(1, f, among=among)[0]:
                sql = q.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
                out += [r[3] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
        return out

    plans = {name: plan(f) for name, f in PLAN_CASES.items()}
    given = "SCAN json_each VIRTUAL TABLE"  # the id list handed over as one JSON parameter, not a table
    for name, steps in plans.items():
        steps = [p for p in steps if p.startswith(("SEARCH", "SCAN")) and not p.startswith(given)]
        indexed = all(p.startswith("SEARCH") and ("INDEX" in p or "PRIMARY KEY" in p) for p in steps)
        assert steps and indexed, (name, steps)
        looked_up = [p for p in plan(PLAN_CASES[name], among=[4, 9, 12])
                     if p.startswith(("SEARCH", "SCAN")) and not p.startswith(given)]
        by_key = ("INTEGER PRIMARY KEY (rowid=?)", "sqlite_autoindex_document_tags_1 (document_id=? AND tag=?)",
                  "sqlite_autoindex_document_metadata_1 (document_id=? AND key=?)")
        assert looked_up and all(p.startswith("SEARCH") and p.endswith(by_key) for p in looked_up), (name, looked_up)
    assert any("ix_document_tags_collection_tag (collection_id=? AND tag=?)" in p for p in plans["tags"])
    assert any("(collection_id=? AND key=? AND value=?)" in p for p in plans["metadata"])
    assert any("source_uri>? AND source_uri<?" in p for p in plans["glob prefix"])
    assert any("ix_documents_collection_status_source_rev" in p and "source_rev>? AND source_rev<?" in p
               for p in plans["glob suffix"])
    assert any("ix_documents_collection_status_media" in p and "media_type=?" in p for p in plans["media"])
    assert any("modified_at>? AND modified_at<?" in p for p in plans["between"])
    assert any("modified_at=? AND updated_at>? AND updated_at<?" in p for p in plans["between"])  # IS NULL branch
    by_id = [p for p in plans["ids"] if p.startswith("SEARCH")]
    assert by_id == ["SEARCH documents USING INTEGER PRIMARY KEY (rowid=?)"]
    assert len([p for p in plans["all"] if p.startswith("SEARCH")]) == 7


def test_reversed_globs_match_reversed_strings_as_fnmatch_does() -> None:
    import fnmatch

    from rag.store.local_filters import reversed_glob

    names = ["a.md", "docs/a.md", "x[1].md", "a]b[c", "[", "]", "ab", "ba", "a-b", "a.txt", "b/c/d.pdf", ""]
    patterns = ["*.md", "*/*.md", "*[1].md", "*[[]1]*", "a]b[c", "*[", "*]", "*[!b]", "?b", "*[a-b]", "*b[",
                "[ab]*", "*d.pdf", "*", "*[]", "[!", "*]b[c"]
    for pat in patterns:
        back = reversed_glob(pat)
        for name in names:
            assert fnmatch.fnmatchcase(name[::-1], back) == fnmatch.fnmatchcase(name, pat), (pat, back, name)


def test_glob_translation_agrees_with_fnmatch() -> None:
    """SQLite GLOB over the translated pattern matches exactly what fnmatch matches (or the caller uses fnmatch)."""
    import fnmatch
    import random
    import sqlite3

    from rag.store.local_filters import glob_for_sqlite, literal_prefix

    rng = random.Random(13)
    names = ["".join(rng.choice("ab-]^![.") for _ in range(rng.randint(0, 5))) for _ in range(300)]
    db = sqlite3.connect(":memory:")
    translated = 0
    for _ in range(1500):
        pattern = "".join(rng.choice("ab-]^![*?.") for _ in range(rng.randint(1, 6)))
        glob = glob_for_sqlite(pattern)
        for name in names:
            want = fnmatch.fnmatchcase(name, pattern)
            assert not want or name.startswith(literal_prefix(pattern)), (pattern, name)
            if glob is not None:
                assert (db.execute("SELECT ? GLOB ?", (name, glob)).fetchone()[0] == 1) == want, (pattern, glob, name)
        translated += glob is not None
    assert translated > 1300


def test_metadata_values_encode_equal_exactly_when_python_finds_them_equal() -> None:
    from rag.store.doc_fields import encode_value

    values = [None, 0, 1, 1.0, True, False, 0.0, -0.0, 2, 2.5, "1", "", "a", 10**20, 1e20, float(10**20 + 1),
              2**60 + 1, float(2**60), float("inf"), -float("inf"), "x" * 300, "x" * 299 + "y", 1e-300, 5e-324]
    for a in values:
        for b in values:
            assert (encode_value(a) == encode_value(b)) == (a == b), (a, b)


def test_match_document_checks_document_ids() -> None:
    """A document-id filter passes only the documents whose ledger id it names (it was ignored)."""
    now = datetime.now(UTC)
    ids = Filters(document_ids=(3, 5), tags=("x",))
    assert ids.match_document("a", "text/plain", {"tags": ["x"]}, now, document_id=3)
    assert not ids.match_document("a", "text/plain", {"tags": ["x"]}, now, document_id=4)
    assert not ids.match_document("a", "text/plain", {"tags": ["x"]}, now)  # no id: cannot be among them
    assert Filters(tags=("x",)).match_document("a", "text/plain", {"tags": ["x"]}, now)  # no id filter, no id needed


def test_a_failed_filter_resolution_is_not_kept(built: RAG, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL runs in another thread; what it raised reaches the search, and the next search tries again."""
    from rag.store import local

    real, calls = local.resolve, []

    def failing_once(*args: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "resolve", failing_once)
    red = Filters(tags=("red",))
    with pytest.raises(RuntimeError, match="locked"):
        built.search("solar panel", collection="c", filters=red)
    hits = built.search("solar panel", collection="c", filters=red)
    assert hits and len(calls) == 2


def test_field_bits_blocks_round_trip_and_follow_changes(tmp_path: Path) -> None:
    """Array blocks under 4,096 ids, bitmaps above, across block edges; a removal before an addition of the same id
    (SQLite may give a deleted document's id to the next one) leaves it set; an emptied block is gone."""
    from rag.store import field_bits as fb
    from rag.store.db import open_engine, session_factory
    from rag.store.ledger import Collection as Coll

    for offsets in (np.array([0, 7, 65535]), np.arange(0, 65536, 16), np.arange(4095), np.arange(4096)):
        blob = fb.encode(offsets)
        assert (len(blob) == fb.DENSE_BYTES) == (len(offsets) > fb.SPARSE_MAX)
        assert fb.decode(blob).tolist() == offsets.tolist()
    sessions = session_factory(open_engine(f"sqlite:///{tmp_path / 'b.db'}"))
    rng = np.random.default_rng(0)
    with sessions.begin() as s:
        s.add(Coll(id=1, name="c"))
    want: dict[str, set[int]] = {"t\x1fa": set(), "t\x1fb": set()}
    for step in range(6):
        added = [(f, int(d)) for f in want for d in rng.integers(0, 3 * fb.BLOCK, 3000 if step < 3 else 40)]
        held = sorted((f, d) for f in want for d in want[f])
        removed = [held[int(i)] for i in rng.integers(0, len(held), len(held) // 2)] if held else []
        with sessions.begin() as s:
            fb.change(s, 1, added=added, removed=removed)
        for f, d in removed:
            want[f].discard(d)
        for f, d in added:
            want[f].add(d)
        with sessions() as s:
            for f, ids in want.items():
                assert fb.field_ids(s, 1, [f]).tolist() == sorted(ids), (step, f)
            assert fb.field_ids(s, 1, list(want)).tolist() == sorted(want["t\x1fa"] | want["t\x1fb"])
    with sessions.begin() as s:
        fb.change(s, 1, removed=[(f, d) for f, ids in want.items() for d in ids])
    with sessions() as s:
        assert fb.count_rows(s, 1) == 0


def test_date_ranges_at_month_edges_equal_brute_force(tmp_path: Path, embedder: object) -> None:
    """A date range reads whole months from field_bits and its partial months through the dates index: ranges that
    start or end on a month's first instant, its last microsecond, inside one month, reversed, unbounded, around
    documents dated by `modified` (any offset) and by when they were written."""
    from rag.store.filter_ids import allowed_document_ids

    stamps = ["2021-01-31T23:59:59.999999+00:00", "2021-02-01T00:00:00+00:00", "2021-02-15T12:00:00",
              "2021-03-01T00:30:00+01:00", "2021-03-01T00:00:00+00:00", "2021-12-31T23:00:00-02:00",
              "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", None, "not a date"]
    rag = open_rag(tmp_path / "h", embedder)
    rag.ingest_texts([SourceText(source=f"e{i}", title=None, text=f"solar wind {i}",
                                 metadata={} if m is None else {"modified": m}) for i, m in enumerate(stamps)],
                     collection="c")
    now = datetime.now(UTC)
    edges = [datetime(2021, 2, 1, tzinfo=UTC), datetime(2021, 2, 1, tzinfo=UTC) - timedelta(microseconds=1),
             datetime(2021, 2, 15, 12, tzinfo=UTC), datetime(2021, 3, 1, tzinfo=UTC), datetime(2021, 2, 10),
             datetime(2022, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))), datetime(1, 1, 1, tzinfo=UTC),
             datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), now - timedelta(days=1), now + timedelta(days=1)]
    coll = rag.store.collection("c")
    with rag.store.sessions() as s:
        docs = s.scalars(select(Document).where(Document.collection_id == coll.id)).all()
        for after in [None, *edges]:
            for before in [None, *edges]:
                if after is None and before is None:
                    continue
                f = Filters(modified_after=after, modified_before=before)
                want = sorted(d.id for d in docs if f.match_document(d.source_uri, d.media_type, d.metadata_ or {},
                                                                     d.updated_at, document_id=d.id))
                assert allowed_document_ids(s, coll.id, f).tolist() == want, (after, before)
