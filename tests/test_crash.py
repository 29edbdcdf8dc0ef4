"""A SIGKILL at any point leaves ledger and index agreeing after the next run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from rag import RAG, SourceText
from rag.config import IndexSettings, IngestSettings, Settings
from rag.store.ledger import Chunk, Document

N_DOCS = 40


def corpus() -> list[SourceText]:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    return [SourceText(source=f"doc-{i:03d}", title=f"Doc {i}",
                       text=" ".join(f"{words[(i * j) % len(words)]}{j % 7}" for j in range(120 + i)))
            for i in range(N_DOCS)]


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, {tests!r})
    import numpy as np
    from test_crash import corpus
    from rag import RAG
    from rag.config import IndexSettings, IngestSettings, Settings
    import rag.store.index as idx
    import rag.store.segment as sg

    mode, calls = {mode!r}, [0]
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "segment-write":  # the third batch's segment: some files written, never renamed into place
        real_save = sg.save
        def save_then_die(seg, parent):
            calls[0] += 1
            if calls[0] == 3:
                tmp = parent / (".tmp-" + seg.name)
                tmp.mkdir(parents=True)
                np.save(tmp / "ids.npy", seg.ids)
                die()
            return real_save(seg, parent)
        sg.save = save_then_die
    if mode == "index-swap":  # the third snapshot is written but CURRENT never points at it
        real_replace = idx.os.replace
        def replace_then_die(src, dst):
            calls[0] += str(dst).endswith("CURRENT")
            if calls[0] == 3:
                die()
            return real_replace(src, dst)
        idx.os.replace = replace_then_die
    if mode == "merge":  # a background merge dies after building its segment, before saving it
        real_merge = sg.merge
        def merge_then_die(*a, **kw):
            real_merge(*a, **kw)
            die()
        sg.merge = merge_then_die
    index = IndexSettings(merge_factor=2, merge_floor_rows=1) if mode == "merge" else IndexSettings()
    rag = RAG.open(settings=Settings(home={home!r}, ingest=IngestSettings(batch_files=4), index=index))
    rag.ingest_texts(corpus(), collection="c")
    rag.store.wait_background()
""")


def docs_in_db(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("select count(*) from documents").fetchone()[0])
    except sqlite3.Error:
        return 0


def run_and_kill(home: Path, *, mode: str) -> int:
    code = SCRIPT.format(tests=str(Path(__file__).parent), home=str(home), mode=mode)
    proc = _run_and_kill(code, lambda p: mode == "mid-batches" and 0 < docs_in_db(home / "rag.db") < N_DOCS)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    return docs_in_db(home / "rag.db")


def _run_and_kill(code: str, when: Callable[[subprocess.Popen[bytes]], bool]) -> subprocess.Popen[bytes]:
    """Run `code` in a child and SIGKILL it the moment `when(child)` holds (or let it die by itself)."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while proc.poll() is None and time.time() < deadline:
            if when(proc):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc


def assert_agree(rag: RAG) -> None:
    coll = rag.store.collection("c")
    with rag.store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == N_DOCS
        orphans = s.scalar(select(func.count()).select_from(Chunk).outerjoin(
            Document, Chunk.document_id == Document.id).where(Document.id.is_(None)))
        assert orphans == 0
        per_doc = dict(s.execute(select(Chunk.document_id, func.count()).group_by(Chunk.document_id)).all())
        for doc in s.scalars(select(Document)):
            assert per_doc.get(doc.id, 0) == doc.chunk_count > 0, doc.source_uri
        ledger = set(s.scalars(select(Chunk.id).where(Chunk.collection_id == coll.id)))
    index = rag.store.index("c")
    dense_ids, _ = index.dense.search(np.ones(index.dense.dim, np.float32), index.dense.size)
    assert set(dense_ids.tolist()) == ledger == set(index.sparse.ids.tolist())
    assert index.dense.size == len(ledger) == index.sparse.size, "no duplicates in the indexes"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["mid-batches", "segment-write", "index-swap", "merge"])
def test_sigkill_then_rerun_converges(tmp_path: Path, embedder, mode: str) -> None:
    home = tmp_path / "home"
    committed = run_and_kill(home, mode=mode)
    if mode in ("segment-write", "index-swap"):
        assert committed == 12, "three batches of four reached the ledger; the third never reached the index"
    else:
        assert 0 < committed <= N_DOCS
    settings = Settings(home=home, ingest=IngestSettings(batch_files=4),
                        index=IndexSettings(merge_factor=2, merge_floor_rows=1))
    rag = RAG.open(settings=settings, embedder=embedder)
    report = rag.ingest_texts(corpus(), collection="c")
    assert report.count("skipped") == committed
    assert report.count("ok") == N_DOCS - committed
    rag.store.wait_background()
    assert_agree(rag)
    rag.store.compact("c")
    assert_agree(rag)
    assert len(rag.store.index("c").segments) == 1
    hits = rag.search("doc 7", collection="c", k=3, mode="bm25")
    assert hits, "the recovered index answers queries"


FILES_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    from rag import RAG
    from rag.config import IngestSettings, Settings
    rag = RAG.open(settings=Settings(home={home!r}, ingest=IngestSettings(batch_files=4)))
    rag.ingest([{folder!r}], collection="c")
""")


def _workers_of(pid: int) -> list[int]:
    """Loader workers started by `pid` (their command line names it) that are still alive."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"rag_platform.ingest.worker" in cmd and str(pid).encode() in cmd:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_sigkill_while_workers_load_files_then_rerun_converges(tmp_path: Path, embedder) -> None:
    """Files go through the loader pool; the killed run's workers die with it; the rerun converges."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for doc in corpus():
        (folder / f"{doc.source}.txt").write_text(f"{doc.title}\n\n{doc.text}")
    home = tmp_path / "home"
    code = FILES_SCRIPT.format(home=str(home), folder=str(folder))
    proc = _run_and_kill(code, lambda p: 0 < docs_in_db(home / "rag.db") < N_DOCS and bool(_workers_of(p.pid)))
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    end = time.time() + 10
    while _workers_of(proc.pid) and time.time() < end:
        time.sleep(0.1)
    assert not _workers_of(proc.pid), "loader workers die with their parent"
    committed = docs_in_db(home / "rag.db")
    assert 0 < committed < N_DOCS
    rag = RAG.open(settings=Settings(home=home, ingest=IngestSettings(batch_files=4)), embedder=embedder)
    report = rag.ingest([folder], collection="c")
    assert report.count("skipped") == committed and report.count("ok") == N_DOCS - committed
    assert_agree(rag)
