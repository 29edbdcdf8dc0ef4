"""`rag sync` (add, replace, remove, move by content hash) and `rag watch` (real file events)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from rag import RAG
from rag.store.ledger import Document, IngestFile
from rag_platform.ingest.sources import under_roots
from rag_platform.ingest.sync import FULL_REBUILD_NOTE, sync_paths
from rag_platform.ingest.watch import Settle, is_temporary, watch_folders
from tests.test_ingest import ALPHA, BETA, GAMMA, assert_consistent, write

DELTA = "# Delta\n\nDelta is the on-call rota: the pager rotates every Monday at nine.\n"


def ledger(rag: RAG, collection: str = "c") -> dict[str, tuple[str, str]]:
    coll = rag.store.collection(collection)
    with rag.store.sessions() as s:
        rows = s.execute(select(Document.source_uri, Document.content_hash, Document.status)
                         .where(Document.collection_id == coll.id))
        return {Path(src).name: (h, status) for src, h, status in rows}


@pytest.fixture
def counted(settings, counting) -> RAG:  # type: ignore[no-untyped-def]
    return RAG.open(settings=settings, embedder=counting)


def test_sync_adds_replaces_removes_and_moves(tmp_path: Path, counted: RAG) -> None:
    folder = tmp_path / "docs"
    write(folder, "alpha.md", ALPHA)
    write(folder, "beta.md", BETA)
    write(folder, "gamma.txt", GAMMA)
    first = sync_paths(counted, [folder], collection="c")
    assert first.summary() == {"added": 3, "replaced": 0, "removed": 0, "moved": 0, "unchanged": 0, "failed": 0}
    assert not first.index_rebuilt and FULL_REBUILD_NOTE not in first.line()  # a new segment, no rebuild

    again = sync_paths(counted, [folder], collection="c")
    assert again.summary()["unchanged"] == 3 and not again.changed and not again.index_rebuilt

    embedded = counted.embedder.encoded
    (folder / "alpha.md").rename(folder / "archive-alpha.md")  # renamed: same bytes
    write(folder, "beta.md", BETA + "\nSessions can be revoked from the admin page.\n")
    (folder / "gamma.txt").unlink()
    write(folder, "sub/delta.md", DELTA)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    third = sync_paths(counted, [folder], collection="c")
    assert third.moved == [(str(folder / "alpha.md"), str(folder / "archive-alpha.md"))]
    assert third.replaced == [str(folder / "beta.md")] and third.added == [str(folder / "sub" / "delta.md")]
    assert third.removed == [str(folder / "gamma.txt")]
    assert [Path(s).name for s, _ in third.failed] == ["broken.pdf"]
    assert counted.embedder.encoded - embedded == 2  # beta's chunk and delta's; the moved file is not embedded
    docs = ledger(counted)
    assert set(docs) == {"archive-alpha.md", "beta.md", "delta.md", "broken.pdf"}
    assert_consistent(counted)
    hit = counted.search("where are invoices stored?", collection="c", k=1)[0]
    assert hit.source == str(folder / "archive-alpha.md")  # the move shows at once

    (folder / "broken.pdf").unlink()  # a failed document's file gone: its row goes too
    fourth = sync_paths(counted, [folder], collection="c")
    assert fourth.removed == [str(folder / "broken.pdf")] and "broken.pdf" not in ledger(counted)


def test_a_move_retires_cached_filters_without_a_rebuild(tmp_path: Path, rag: RAG) -> None:
    """A move changes what a source glob selects: the filter kept for the old revision must not answer after it."""
    from rag import Filters

    folder = tmp_path / "docs"
    write(folder, "drafts/alpha.md", ALPHA)
    write(folder, "beta.md", BETA)
    sync_paths(rag, [folder], collection="c")
    drafts, final = Filters(source_glob=f"{folder}/drafts/*"), Filters(source_glob=f"{folder}/final/*")
    question = "where are invoices stored?"
    assert [h.source for h in rag.search(question, collection="c", filters=drafts)] == [str(folder / "drafts/alpha.md")]
    assert rag.search(question, collection="c", filters=final) == []  # both answers are kept by the store now
    revision = rag.store.revision(rag.store.collection("c"))

    (folder / "final").mkdir()
    (folder / "drafts/alpha.md").rename(folder / "final/alpha.md")
    report = sync_paths(rag, [folder], collection="c")
    assert report.moved == [(str(folder / "drafts/alpha.md"), str(folder / "final/alpha.md"))]
    assert not report.index_rebuilt  # the snapshot follows the new revision; nothing is rebuilt
    assert rag.store.revision(rag.store.collection("c")) > revision
    assert rag.store.index_manifest("c")["ledger_revision"] == rag.store.revision(rag.store.collection("c"))
    assert rag.search(question, collection="c", filters=drafts) == []
    assert [h.source for h in rag.search(question, collection="c", filters=final)] == [str(folder / "final/alpha.md")]


def test_sync_only_touches_its_own_folders(tmp_path: Path, rag: RAG) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "alpha.md", ALPHA)
    write(two, "beta.md", BETA)
    sync_paths(rag, [one, two], collection="c")
    (two / "beta.md").unlink()
    report = sync_paths(rag, [one], collection="c")  # two/ is not synced in this pass
    assert not report.removed and "beta.md" in ledger(rag)


def test_under_roots_is_a_folder_test_not_a_name_prefix(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    assert under_roots(str(root / "a" / "b.md"), [root]) and under_roots(str(root), [root])
    assert not under_roots(str(tmp_path / "docs2" / "b.md"), [root])  # a sibling sharing the name's start
    assert not under_roots("note-7", [root]) and under_roots(str(root / "x.md"), [Path("/")])


def test_temporary_files_and_settling(tmp_path: Path) -> None:
    for name in ("~$report.docx", ".~lock.report.docx#", "notes.md~", ".notes.md.swp", "film.part",
                 "#draft.md#", "4913"):
        assert is_temporary(name), name
    assert not is_temporary("report.docx") and not is_temporary("notes.md")
    path = write(tmp_path, "growing.txt", "a")
    settle = Settle(quiet_s=0.5, max_wait_s=60)
    settle.touch(path, now=0.0)
    assert settle.take(now=0.2) == ([], True)
    path.write_text("ab")  # still growing
    assert settle.take(now=0.6) == ([], True)  # its clock restarted at 0.6
    assert settle.take(now=1.2) == ([path], False)


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the watcher")


def test_watch_follows_create_modify_rename_delete_and_a_slow_write(tmp_path: Path, rag: RAG) -> None:
    folder = tmp_path / "docs"
    write(folder, "alpha.md", ALPHA)
    rag.store.collection("c", create=True)  # open the ledger before two threads use it
    stop = threading.Event()
    reports: list = []
    thread = threading.Thread(target=watch_folders, args=(rag, [folder]), daemon=True,
                              kwargs={"collection": "c", "stop": stop, "on_sync": reports.append,
                                      "settle_s": 0.4, "debounce_ms": 100, "tick_ms": 100})
    thread.start()
    try:
        wait_for(lambda: "alpha.md" in ledger(rag))
        write(folder, "beta.md", BETA)  # create
        write(folder, "~$beta.docx", "an editor's lock file")  # ignored
        wait_for(lambda: "beta.md" in ledger(rag))
        old = ledger(rag)["beta.md"][0]
        write(folder, "beta.md", BETA + "\nTokens are rotated weekly.\n")  # modify
        wait_for(lambda: ledger(rag)["beta.md"][0] != old)
        (folder / "beta.md").rename(folder / "beta-renamed.md")  # rename
        wait_for(lambda: any(r.moved for r in reports))  # a move, not a removal and an addition
        assert "beta-renamed.md" in ledger(rag) and "beta.md" not in ledger(rag)
        (folder / "alpha.md").unlink()  # delete
        wait_for(lambda: "alpha.md" not in ledger(rag))

        slow = folder / "slow.txt"  # written in pieces, 0.25 s apart: read once, complete
        with open(slow, "w", encoding="utf-8") as fh:
            for i in range(5):
                fh.write(f"Part {i} of the slow report about the harbour cranes.\n")
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(0.25)
            fh.write("THE END\n")

        def outcomes() -> list[str]:
            with rag.store.sessions() as s:
                return list(s.scalars(select(IngestFile.outcome).where(IngestFile.source_uri == str(slow))))

        wait_for(lambda: bool(outcomes()))
        assert outcomes() == ["ok"]  # one read, after the last write
        assert "THE END" in rag.search("slow report harbour cranes", collection="c", k=1)[0].text
        assert "~$beta.docx" not in ledger(rag)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert_consistent(rag)


def test_cli_sync_prints_the_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from rag_platform.apps.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    folder = tmp_path / "docs"
    write(folder, "alpha.md", ALPHA)
    args = ["sync", str(folder), "-c", "kb", "--home", str(tmp_path / "home")]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "added    " in out.output and "alpha.md" in out.output and "index rebuilt in full" not in out.output
    (folder / "alpha.md").rename(folder / "renamed.md")
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "moved" in out.output and "from " in out.output and "index rebuilt" not in out.output


def test_cli_watch_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    folder = tmp_path / "docs"
    write(folder, "alpha.md", ALPHA)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-c", "from apps.cli import main; main()", "watch", str(folder),
                             "-c", "w", "--home", str(tmp_path / "home"), "--settle", "0.3"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "added" in line and "unchanged" in line:  # the first pass's status line
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "SIGTERM: stopping" in rest and "stopped after 1 sync passes" in rest
