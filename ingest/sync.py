"""`rag sync`: make a collection mirror folders in one pass.

One pass adds new files, replaces changed ones, removes documents whose
files are gone (failed ones too) and recognises a moved or renamed file by
its content hash: the document keeps its chunks and vectors and only its
source changes in the ledger, so nothing is loaded, embedded or re-indexed
(hits read their source from the ledger). Everything else goes through the
ordinary ingestion batch (`ingest.run.LocalIngestor`), so a sync is as
crash-safe as `rag ingest`.

`sync_paths` walks the folders; `sync_changed` takes just the files a
watcher saw change (ingest.watch) and still finds every deleted document
under the roots with one stat per known document.

Example:
    >>> report = sync_paths(rag, ["docs/"], collection="handbook")
    >>> report.summary()
    {'added': 1, 'replaced': 0, 'removed': 0, 'moved': 1, 'unchanged': 40, 'failed': 0}
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.report import IngestReport, NullProgress, Progress
from rag_platform.ingest.run import LocalIngestor
from rag_platform.ingest.sources import FileItem, discover, under_roots

FULL_REBUILD_NOTE = "index rebuilt in full (an index from an older version, or changed index settings)"
"""Shown after a sync that rebuilt the whole index; a usual change only adds a small segment (rag.store.live)."""


@dataclass
class HashedFile(FileItem):
    """A file whose content hash was computed once in this pass (the ingestor asks again)."""

    digest: str = ""

    def content_hash(self) -> str:
        return self.digest or super().content_hash()


@dataclass
class SyncReport:
    """What one pass changed; `ingest` is the batch run for added and changed files."""

    collection: str
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    index_rebuilt: bool = False
    seconds: float = 0.0
    ingest: IngestReport | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed or self.moved)

    def summary(self) -> dict[str, int]:
        return {"added": len(self.added), "replaced": len(self.replaced), "removed": len(self.removed),
                "moved": len(self.moved), "unchanged": self.unchanged, "failed": len(self.failed)}

    def line(self) -> str:
        """One line for a status bar or a log."""
        s = self.summary()
        text = (f"+{s['added']} added, ~{s['replaced']} replaced, -{s['removed']} removed, {s['moved']} moved, "
                f"{s['unchanged']} unchanged, {s['failed']} failed in {self.seconds:.1f}s")
        return text + (f" ({FULL_REBUILD_NOTE})" if self.index_rebuilt else "")


def sync_paths(rag: Any, paths: Iterable[str | Path], *, collection: str, glob: str | None = None,
               progress: Progress | None = None) -> SyncReport:
    """One full pass over `paths` (files or folders, recursively). `rag` is a `rag.RAG`."""
    files, roots = discover(paths, glob)
    return sync_changed(rag, files, roots, collection=collection, progress=progress)


def sync_changed(rag: Any, files: Iterable[FileItem], roots: list[Path], *, collection: str,
                 progress: Progress | None = None) -> SyncReport:
    """Sync `files` and remove the documents under `roots` whose files are gone.

    `files` is everything under the roots (rag sync) or just what a watcher saw
    change; files not given are not even hashed.
    """
    t0 = time.perf_counter()
    report = SyncReport(collection)
    store = rag.store
    coll = store.collection(collection, create=True)
    known = store.ledger.document_states(collection)
    items: list[HashedFile] = []
    for f in files:
        try:
            items.append(HashedFile(f.path, f.source, rag.settings.ocr, f.content_hash()))
        except OSError:  # gone or unreadable since it was listed: the ingestor reports it
            items.append(HashedFile(f.path, f.source, rag.settings.ocr))
    seen = {i.source for i in items}
    gone = [src for src in known if src not in seen and under_roots(src, roots) and not Path(src).exists()]
    report.moved = _moves(items, gone, known)
    if report.moved:  # the index is untouched: hits read their source from the ledger
        store.ledger.move_documents(collection, report.moved)  # stored answers go: they quote old paths
    moved_from = {old for old, _new in report.moved}
    moved_to = {new for _old, new in report.moved}
    gone = [src for src in gone if src not in moved_from]
    if gone:
        store.write_batch(coll, [], removed=gone)
        report.removed = sorted(gone)
    todo = [i for i in items if i.source not in moved_to]
    ingestor = LocalIngestor(rag.settings, rag.embedder, store)
    run = ingestor._run(todo, collection, prune_roots=None, force=False, progress=progress or NullProgress())
    report.ingest, report.index_rebuilt = run, run.index_rebuilt
    for f in run.files:
        if f.outcome == "ok":
            before = known.get(f.source)
            (report.replaced if before and before[1] == "ok" else report.added).append(f.source)
        elif f.outcome == "failed":
            report.failed.append((f.source, f.reason or ""))
    report.unchanged = run.count("skipped")
    report.seconds = time.perf_counter() - t0
    return report


def _moves(items: list[HashedFile], gone: list[str], known: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """(old source, new source) for each new file whose bytes equal a vanished document's."""
    by_hash: dict[str, list[str]] = {}
    for src in sorted(gone):
        digest, status = known[src]
        if status == "ok":
            by_hash.setdefault(digest, []).append(src)
    moves = []
    for item in items:
        if item.source in known or not item.digest:
            continue
        olds = by_hash.get(item.digest)
        if olds:
            moves.append((olds.pop(0), item.source))
    return moves
