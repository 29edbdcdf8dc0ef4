"""One ingestion batch: hash, skip or replace, chunk, embed, write, index.

Files are processed in groups of `ingest.batch_files`; each group is one
ledger transaction, so a crash loses at most the group in flight and the
next run redoes just that. Bad files become a `failed` row with the reason;
they never stop the run or touch what is already ingested.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.contextual import index_text
from rag.errors import LoaderError, RagError
from rag.priority import pause_for_searches
from rag.report import FileResult, IngestReport, NullProgress, Progress
from rag.store.base import DocumentWrite, Store, text_hash
from rag.types import SourceText
from rag_platform.ingest.chunking import Chunker
from rag_platform.ingest.sources import Item, TextItem, discover, under_roots
from rag_platform.ingest.workers import FileLoading, Pending

log = logging.getLogger(__name__)
EMBED_SLICE = 64  # texts per encode call: searches in this process may run between slices


class LocalIngestor:
    """Runs batches in this process. `rag.RAG.ingest` reaches it through the registry.

    Example:
        >>> ing = LocalIngestor(settings, embedder, store)
        >>> report = ing.ingest_paths(["docs/"], collection="handbook")
        >>> report.summary()
        {'ok': 12, 'skipped': 0, 'failed': 1, 'removed': 0}
    """

    engine_name = "local"  # recorded on the IngestRun row

    def __init__(self, settings: Settings, embedder: Any, store: Store) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.chunker = Chunker(settings.chunking, embedder)

    def ingest_paths(self, paths: Iterable[str | Path], *, collection: str, glob: str | None = None,
                     prune: bool = False, force: bool = False, progress: Progress | None = None) -> IngestReport:
        files, roots = discover(paths, glob)
        files = [dataclasses.replace(f, ocr=self.settings.ocr) for f in files]
        report = self._run(files, collection, prune_roots=roots if prune else None, force=force,
                           progress=progress or NullProgress())
        if not prune:  # say what --prune would remove: a deleted file otherwise stays searchable unnoticed
            seen = {f.source for f in files}
            known = self.store.document_hashes(self.store.collection(collection))
            report.missing = sorted(s for s in known if s not in seen and under_roots(s, roots)
                                    and not Path(s).exists())
        return report

    def ingest_texts(self, docs: Iterable[SourceText], *, collection: str, force: bool = False,
                     progress: Progress | None = None) -> IngestReport:
        return self._run([TextItem(d) for d in docs], collection, prune_roots=None, force=force,
                         progress=progress or NullProgress())

    def _run(self, items: Sequence[Item], collection: str, *, prune_roots: list[Path] | None,
             force: bool, progress: Progress) -> IngestReport:
        t0 = time.perf_counter()
        coll = self.store.collection(collection, create=True)
        self.store.check_embedder(coll)
        chunking = self.settings.chunking.config_hash(self.store.embedder_id)
        if not force and coll.chunking_hash and coll.chunking_hash != chunking:
            log.warning("collection %r was chunked with other settings (%s, now %s): re-chunking and "
                        "re-embedding every document in this run; documents left out of it keep their "
                        "old chunks until they are ingested again", collection, coll.chunking_hash, chunking)
            force = True
        run_id = self.store.ledger.start_ingest_run(collection, self.engine_name)
        report = IngestReport(collection=collection, run_id=run_id)
        try:
            self._process(items, coll, report, prune_roots, force, progress)
            rev = self.store.revision(coll)
            live = bool(getattr(self.store, "live_index", False))  # PostgreSQL keeps its indexes current itself
            manifest = None if live else self.store.index_manifest(collection)
            if live:
                self.store.index(collection)
            elif manifest is None or int(manifest["ledger_revision"]) != rev:
                progress.stage("index")
                ts = time.perf_counter()
                self.store.rebuild_index(collection)
                report.stage_seconds["index"] += time.perf_counter() - ts
                report.index_rebuilt = True
            status, error = "ok", None
        except BaseException as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.seconds = time.perf_counter() - t0
            self._finish_run(run_id, report, status, error)
        return report

    def _process(self, items: Sequence[Item], coll: Any, report: IngestReport,
                 prune_roots: list[Path] | None, force: bool, progress: Progress) -> None:
        # Pruning needs every known source; otherwise only the incoming ones (an indexed lookup).
        known = self.store.document_hashes(coll, None if prune_roots is not None else [i.source for i in items])
        progress.start(len(items))
        max_bytes = int(self.settings.ingest.max_file_mb * 1024 * 1024)
        todo: list[tuple[Item, str, int]] = []
        for item in items:
            try:
                size = item.size()
                chash = item.content_hash()
            except OSError as exc:
                self._emit(report, progress, FileResult(item.source, "failed", f"cannot read: {exc}"))
                continue
            if not force and known.get(item.source) == chash:
                self._emit(report, progress, FileResult(item.source, "skipped", "unchanged"))
            else:
                todo.append((item, chash, size))
        self._run_batches(todo, coll, report, progress, max_bytes)
        if prune_roots is not None:
            seen = {i.source for i in items}
            gone = [s for s in known if s not in seen and under_roots(s, prune_roots)
                    and not Path(s).exists()]
            if gone:
                ts = time.perf_counter()
                self.store.write_batch(coll, [], removed=gone)
                report.stage_seconds["ledger"] += time.perf_counter() - ts
                for src in gone:
                    self._emit(report, progress, FileResult(src, "removed", "file no longer exists"))

    def _run_batches(self, todo: list[tuple[Item, str, int]], coll: Any, report: IngestReport,
                     progress: Progress, max_bytes: int) -> None:
        """Load, chunk, embed and write `todo` in groups (the Ray engine overrides this).

        Files are parsed by bounded worker processes (ingest.workers); the next
        group is handed to them before this one is embedded, so parsing overlaps
        embedding.
        """
        step = self.settings.ingest.batch_files
        groups = [todo[i:i + step] for i in range(0, len(todo), step)]
        loading = FileLoading(self.settings.limits, max_bytes)
        ahead = loading.start(groups[0]) if groups else []
        try:
            for n, group in enumerate(groups):
                current, ahead = ahead, loading.start(groups[n + 1]) if n + 1 < len(groups) else []
                self._batch(group, coll, report, progress, max_bytes, current)
        finally:
            loading.cancel(ahead)

    def _batch(self, group: list[tuple[Item, str, int]], coll: Any, report: IngestReport,
               progress: Progress, max_bytes: int, loads: list[Pending] | None = None) -> None:
        writes: list[DocumentWrite] = []
        failed: list[tuple[str, str, str, int]] = []
        timing: dict[str, float] = {}
        notes: dict[str, str] = {}
        loading = FileLoading(self.settings.limits, max_bytes)
        for (item, chash, size), pending in zip(group, loads or [None] * len(group), strict=True):
            pause_for_searches()
            ts = time.perf_counter()
            loaded = loading.result(item, pending)
            parse_s = loaded.seconds  # in its worker: waiting here overlaps the previous batch's embedding
            try:
                if loaded.note:
                    notes[item.source] = loaded.note
                    log.info("%s: %s", item.source, loaded.note)
                if loaded.doc is None:
                    raise LoaderError(item.source, loaded.reason or "could not be loaded")
                parsed = loaded.doc
                tl = time.perf_counter()
                chunks = self.chunker.chunk(parsed)
                if not chunks:
                    raise LoaderError(item.source, "no text to index after chunking")
            except LoaderError as exc:
                failed.append((item.source, chash, exc.reason, size))
                timing[item.source] = parse_s + time.perf_counter() - ts
                continue
            except RagError as exc:
                failed.append((item.source, chash, str(exc), size))
                continue
            report.stage_seconds["load"] += tl - ts
            report.stage_seconds["chunk"] += time.perf_counter() - tl
            timing[item.source] = parse_s + time.perf_counter() - tl
            writes.append(DocumentWrite(source=item.source, content_hash=chash, media_type=parsed.media_type,
                                        size_bytes=size, title=parsed.title, metadata=parsed.metadata,
                                        chunks=chunks))
        self._embed(writes, report, progress)
        self._write(coll, writes, failed, timing, report, progress, notes)

    def _write(self, coll: Any, writes: list[DocumentWrite], failed: list[tuple[str, str, str, int]],
               timing: dict[str, float], report: IngestReport, progress: Progress,
               notes: dict[str, str] | None = None) -> None:
        """One ledger transaction for the batch, then one report row per file."""
        if not writes and not failed:
            return
        ts = time.perf_counter()
        self.store.write_batch(coll, writes, failed=failed)
        report.stage_seconds["ledger"] += time.perf_counter() - ts
        for w in writes:
            report.chunks_added += len(w.chunks)
            self._emit(report, progress, FileResult(w.source, "ok", None, len(w.chunks), timing[w.source],
                                                    (notes or {}).get(w.source)))
        for src, _h, reason, _s in failed:
            self._emit(report, progress, FileResult(src, "failed", reason, 0, timing.get(src, 0.0),
                                                    (notes or {}).get(src)))

    def _encode(self, texts: list[str]) -> np.ndarray:
        pause_for_searches()  # between slices: a search in this process runs first (rag.priority)
        return np.asarray(self.embedder.encode(texts), np.float32).reshape(len(texts), -1)

    def _embed(self, writes: list[DocumentWrite], report: IngestReport, progress: Progress) -> None:
        """Embed only texts the cache does not hold, in slices of `EMBED_SLICE` texts.

        What is embedded is the chunk with its context header (rag.contextual); the
        cache and the ledger key vectors by the hash of exactly that text.
        """
        header = self.settings.chunking.context_header
        keyed: list[list[tuple[str, str, int]]] = []  # per write: (hash, embedded text, tokens) per chunk
        for w in writes:
            texts_of = [index_text(w.title, c.heading_path, c.text, header=header) for c in w.chunks]
            keyed.append([(text_hash(t), t, c.token_count) for t, c in zip(texts_of, w.chunks, strict=True)])
        texts = {h: (t, n) for rows in keyed for h, t, n in rows}
        cached = self.store.cached_vectors(texts)
        # similar lengths share a slice: less padding, ~15% less CPU on SciFact chunks (bench/ingest.py)
        todo = sorted((h for h in texts if h not in cached), key=lambda h: texts[h][1])
        if todo:
            ts = time.perf_counter()
            vecs = np.concatenate([self._encode([texts[h][0] for h in todo[i:i + EMBED_SLICE]])
                                   for i in range(0, len(todo), EMBED_SLICE)])
            secs = time.perf_counter() - ts
            tokens = sum(texts[h][1] for h in todo)
            report.stage_seconds["embed"] += secs
            report.texts_embedded += len(todo)
            report.tokens_embedded += tokens
            progress.embedded(len(todo), tokens, secs)
            fresh = dict(zip(todo, vecs, strict=True))
            for w, rows in zip(writes, keyed, strict=True):
                w.vectors = {h: fresh[h] for h, _t, _n in rows if h in fresh}

    @staticmethod
    def _emit(report: IngestReport, progress: Progress, result: FileResult) -> None:
        report.files.append(result)
        progress.file_done(result)

    def _finish_run(self, run_id: int, report: IngestReport, status: str, error: str | None) -> None:
        self.store.ledger.finish_ingest_run(run_id, report, status, error)


