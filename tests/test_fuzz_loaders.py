"""Fuzzed loaders: seeded mutants of the real documents end as ok or failed-with-reason, never a crash or hang.

The larger run (5,000+ mutants, worst time and memory) is bench/fuzz_loaders.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fuzz_mutants import mutants
from sqlalchemy import func, select

from rag import RAG
from rag.config import LimitsSettings, Settings
from rag.store.ledger import Document
from rag_platform.ingest.workers import LoaderPool

DOCS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "docs"
SOURCES = sorted(DOCS.iterdir())
LIMITS = LimitsSettings(file_timeout_s=30, file_memory_mb=1024)


@pytest.mark.slow
def test_two_hundred_mutants_end_ok_or_failed_with_a_reason(tmp_path: Path) -> None:
    cases = list(mutants(SOURCES, 200, seed=15, out=tmp_path / "m"))
    pool = LoaderPool(LIMITS)
    try:
        results = [(path, how, pool.submit(path, path.name, 50 << 20)) for path, how in cases]
        outcomes: Counter[str] = Counter()
        for path, how, fut in results:
            loaded = fut.result(timeout=600)
            assert (loaded.doc is None) != (loaded.reason is None), (path.name, how)
            assert loaded.doc is None or loaded.doc.text.strip(), (path.name, how)
            assert not (loaded.reason or "").startswith(("the loader process died", "took longer")), \
                (path.name, how, loaded.reason)
            outcomes["ok" if loaded.doc else "failed"] += 1
    finally:
        pool.close()
    assert outcomes["ok"] >= 20 and outcomes["failed"] >= 20, outcomes  # the mutants do reach the parsers


@pytest.mark.slow
def test_mutants_through_ingest_leave_one_ledger_row_each(tmp_path: Path, embedder) -> None:
    folder = tmp_path / "m"
    cases = list(mutants(SOURCES, 30, seed=1515, out=folder))
    rag = RAG.open(settings=Settings(home=tmp_path / "home", limits=LIMITS), embedder=embedder)
    report = rag.ingest([folder], collection="c")
    assert len(report.files) == len(cases)
    assert all(f.outcome == "ok" or (f.outcome == "failed" and f.reason) for f in report.files)
    with rag.store.sessions() as s:
        rows = dict(s.execute(select(Document.status, func.count()).group_by(Document.status)).all())
    assert rows == {k: v for k, v in {"ok": report.count("ok"), "failed": report.count("failed")}.items() if v}
    again = rag.ingest([folder], collection="c")  # failed files are tried again, and fail the same way
    assert again.count("skipped") == report.count("ok")
    assert {(f.source, f.reason) for f in again.failed} == {(f.source, f.reason) for f in report.failed}
