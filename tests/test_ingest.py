"""Incremental re-ingestion, per-file errors, the embedding cache and index agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from rag import RAG
from rag.store.ledger import Chunk, Document, IngestFile, IngestRun

ALPHA = "# Alpha\n\nThe alpha service stores invoices in PostgreSQL and retries failed payments nightly.\n"
BETA = "# Beta\n\nBeta handles login: passwords are hashed with argon2 and sessions expire after 30 minutes.\n"
GAMMA = "Gamma is a plain text note about the office coffee machine, descaled every Friday.\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    write(folder, "alpha.md", ALPHA)
    write(folder, "beta.md", BETA)
    write(folder, "notes/gamma.txt", GAMMA)
    return folder


def ledger_chunk_ids(rag: RAG, collection: str = "c") -> set[int]:
    coll = rag.store.collection(collection)
    with rag.store.sessions() as s:
        return set(s.scalars(select(Chunk.id).where(Chunk.collection_id == coll.id)))


def index_ids(rag: RAG, collection: str = "c") -> tuple[set[int], set[int]]:
    index = rag.store.index(collection)
    dense_ids, _ = index.dense.search(np.ones(index.dense.dim, np.float32), index.dense.size)
    return set(int(i) for i in dense_ids), set(int(i) for i in index.sparse.ids)


def assert_consistent(rag: RAG, collection: str = "c") -> None:
    ledger = ledger_chunk_ids(rag, collection)
    dense, sparse = index_ids(rag, collection)
    assert ledger == dense == sparse


def test_first_ingest_indexes_every_file(rag: RAG, corpus: Path) -> None:
    report = rag.ingest([corpus], collection="c")
    assert report.summary() == {"ok": 3, "skipped": 0, "failed": 0, "removed": 0}
    assert report.chunks_added >= 3 and not report.index_rebuilt, "each batch publishes its own segment"
    assert_consistent(rag)
    hits = rag.search("how are passwords stored?", collection="c", k=1)
    assert hits[0].source.endswith("beta.md")


def test_reingest_unchanged_skips_and_embeds_nothing(settings, counting, corpus: Path) -> None:
    rag = RAG.open(settings=settings, embedder=counting)
    rag.ingest([corpus], collection="c")
    first = counting.encoded
    report = rag.ingest([corpus], collection="c")
    assert report.summary()["skipped"] == 3 and report.summary()["ok"] == 0
    assert counting.encoded == first, "unchanged files must not be re-embedded"
    assert not report.index_rebuilt


def test_changed_file_replaces_its_chunks_in_both_indexes(rag: RAG, corpus: Path) -> None:
    rag.ingest([corpus], collection="c")
    before = ledger_chunk_ids(rag)
    write(corpus, "beta.md", "# Beta\n\nBeta now signs users in with WebAuthn passkeys only.\n")
    report = rag.ingest([corpus], collection="c")
    assert report.summary() == {"ok": 1, "skipped": 2, "failed": 0, "removed": 0}
    after = ledger_chunk_ids(rag)
    assert before - after, "old beta chunks must be gone"
    assert_consistent(rag)
    hits = rag.search("passkeys", collection="c", k=3, mode="bm25")
    assert hits and hits[0].source.endswith("beta.md") and "WebAuthn" in hits[0].text
    assert not rag.search("argon2", collection="c", k=3, mode="bm25"), "old text still searchable"


def test_only_changed_text_is_embedded_again(settings, counting, corpus: Path) -> None:
    rag = RAG.open(settings=settings, embedder=counting)
    rag.ingest([corpus], collection="c")
    n = counting.encoded
    write(corpus, "copy-of-alpha.md", ALPHA)  # same text, new file: the cache serves it
    report = rag.ingest([corpus], collection="c")
    assert report.summary()["ok"] == 1
    assert counting.encoded == n


def test_prune_removes_deleted_files_only_under_given_roots(rag: RAG, corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other, "delta.md", "# Delta\n\nDelta is unrelated and lives elsewhere.\n")
    rag.ingest([corpus], collection="c")
    rag.ingest([other], collection="c")
    (corpus / "alpha.md").unlink()
    kept = rag.ingest([corpus], collection="c")
    assert kept.summary()["removed"] == 0, "without --prune nothing is removed"
    report = rag.ingest([corpus], collection="c", prune=True)
    assert report.summary()["removed"] == 1
    sources = {Path(d.source_uri).name for d in rag.documents("c")}
    assert sources == {"beta.md", "gamma.txt", "delta.md"}
    assert_consistent(rag)


def test_bad_files_are_reported_and_the_rest_ingested(rag: RAG, corpus: Path) -> None:
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    report = rag.ingest([corpus], collection="c")
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert set(failed) == {"empty.txt", "broken.pdf"}
    assert all(failed.values())
    assert report.summary()["ok"] == 3
    docs = {Path(d.source_uri).name: d for d in rag.documents("c")}
    assert docs["broken.pdf"].status == "failed" and docs["broken.pdf"].error
    assert_consistent(rag)


def test_a_file_that_turns_bad_keeps_its_good_version(rag: RAG, corpus: Path) -> None:
    rag.ingest([corpus], collection="c")
    (corpus / "beta.md").write_bytes(b"")
    report = rag.ingest([corpus], collection="c")
    assert [Path(f.source).name for f in report.failed] == ["beta.md"]
    hits = rag.search("argon2 password hashing", collection="c", k=1, mode="bm25")
    assert hits and hits[0].source.endswith("beta.md"), "the last good version stays searchable"


def test_run_and_per_file_rows_are_recorded(rag: RAG, corpus: Path) -> None:
    (corpus / "empty.md").write_bytes(b"")
    report = rag.ingest([corpus], collection="c")
    with rag.store.sessions() as s:
        run = s.get(IngestRun, report.run_id)
        assert run is not None and run.status == "ok" and run.finished_at is not None
        assert (run.files_ok, run.files_failed) == (3, 1)
        rows = s.scalars(select(IngestFile).where(IngestFile.run_id == report.run_id)).all()
        assert {r.outcome for r in rows} == {"ok", "failed"} and len(rows) == 4


def test_chunks_carry_offsets_into_the_document(rag: RAG, corpus: Path) -> None:
    rag.ingest([corpus], collection="c")
    hit = rag.search("coffee machine", collection="c", k=1)[0]
    assert hit.source.endswith("gamma.txt")
    assert GAMMA.strip()[hit.char_start:hit.char_end].strip() == hit.text.strip()


def test_ingest_texts_and_force(settings, counting) -> None:
    from rag import SourceText

    rag = RAG.open(settings=settings, embedder=counting)
    docs = [SourceText(source=f"doc-{i}", title=f"Title {i}", text=f"Body number {i} about topic {i}.")
            for i in range(5)]
    assert rag.ingest_texts(docs, collection="t").summary()["ok"] == 5
    assert rag.ingest_texts(docs, collection="t").summary()["skipped"] == 5
    n = counting.encoded
    forced = rag.ingest_texts(docs, collection="t", force=True)
    assert forced.summary()["ok"] == 5 and counting.encoded == n, "force re-writes but the cache still serves"
    with rag.store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 5
