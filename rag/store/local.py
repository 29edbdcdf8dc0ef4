"""The embedded store: SQLite (or any SQL) ledger + a segmented FAISS/BM25 index per collection.

Writes go to the ledger first, one transaction per batch, and bump the
collection's revision; then the batch becomes one new index segment plus
deletions of the chunks it replaced (`rag.store.live`), published as a new
snapshot. Both steps run under the collection's writer lock, which other
processes sharing the data home respect too. Searches read the last published
snapshot and never build in the request path. The ledger is the truth and the
index a cache of it: an index left behind by a crash catches up by diffing ids.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from rag.config import Settings
from rag.contextual import index_text
from rag.errors import NotFoundError
from rag.filters import Filters
from rag.store import field_bits
from rag.store import index as idx
from rag.store.allowed import AllowedIds
from rag.store.base import DocumentWrite, check_collection_name, text_hash
from rag.store.doc_fields import metadata_rows, modified_at
from rag.store.field_bits import document_fields
from rag.store.filter_ids import resolve
from rag.store.ledger import Chunk, Collection, Document, DocumentMeta, DocumentTag, Embedding, document_tags
from rag.store.live import ROW_COLS, LiveIndex
from rag.store.sql_ledger import SqlLedger
from rag.store.sql_reads import SqlReads

ALLOWED_CACHE = 32  # filters whose allowed-id sets are kept (bytes: 8 per id + 1 per indexed row + 1 per document)
__all__ = ["DocumentWrite", "LocalStore", "check_collection_name", "text_hash"]


class LocalLedger(SqlLedger):
    """The embedded store's ledger: a move, which bumps the revision, also republishes the index at it.

    Chunks and vectors do not change in a move, so the new snapshot lists the same segments; without
    it the index would lag the ledger and the next ingest would rebuild it in full.
    """

    def __init__(self, store: LocalStore) -> None:
        super().__init__(store.settings, store.sessions)
        self.store = store

    def move_documents(self, collection: str, moves: Sequence[tuple[str, str]]) -> None:
        if not moves:
            return
        store, live = self.store, self.store.live
        coll = store.collection(collection)
        with live.writer(collection):
            base = live.base_for_write(collection, store.revision(coll))
            super().move_documents(collection, moves)
            if base is not None:
                live.apply(collection, base, store.revision(coll), [], np.zeros(0, np.int64),
                           live.manifest(collection, coll))


class LocalStore(SqlReads):
    """Ledger + index folders for every collection under one data home."""

    def __init__(self, settings: Settings, *, embedder_id: str, dim: int) -> None:
        super().__init__(settings, embedder_id=embedder_id, dim=dim)
        self.ledger = LocalLedger(self)
        self._live: LiveIndex | None = None  # built on first index use
        self._allowed: OrderedDict[tuple[Any, ...], AllowedIds] = OrderedDict()  # recent filters' id sets
        self._allowed_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # resolves filters beside the searches that asked

    @property
    def live(self) -> LiveIndex:
        if self._live is None:
            self._live = LiveIndex(self)
        return self._live

    def delete_collection(self, name: str) -> None:
        coll = self.collection(name)
        with self.live.writer(name):
            self._delete_collection_rows(coll)
            self.live.forget(name)
            for path in (self.settings.index_root / name).iterdir():
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    # -- documents ---------------------------------------------------------------------
    def write_batch(self, coll: Collection, docs: Sequence[DocumentWrite], *,
                    failed: Sequence[tuple[str, str, str, int]] = (), removed: Sequence[str] = ()) -> int:
        """Replace/insert `docs`, record first-time failures, delete `removed`; one transaction.

        `failed` holds (source, content hash, reason, size) for files that could not be
        loaded; a failure never touches an ok version already in the ledger.
        """
        with self.live.writer(coll.name):
            base = self.live.base_for_write(coll.name, self.revision(coll)) if docs or removed else None
            revision, rows, gone = self._write_ledger(coll, docs, failed, removed)
            if docs or removed:
                self.live.apply(coll.name, base, revision, rows, gone, self.live.manifest(coll.name, coll))
        if (docs or removed) and self.settings.index.background_merge:
            self.live.background(coll.name, "merge", lambda: self.live.merge_by_policy(coll.name))
        return len(rows)

    def _write_ledger(self, coll: Collection, docs: Sequence[DocumentWrite], failed: Sequence[tuple[str, str, str, int]],
                      removed: Sequence[str]) -> tuple[int, list[Any], np.ndarray]:
        """The batch's one ledger transaction; returns the new revision, new chunk rows, replaced chunk ids."""
        with self.sessions.begin() as s:
            self._store_vectors(s, docs)
            sources = [d.source for d in docs] + [f[0] for f in failed] + list(removed)
            existing = {d.source_uri: d for d in s.scalars(select(Document).where(
                Document.collection_id == coll.id, Document.source_uri.in_(sources)))}
            old_docs = [existing[src].id for src in [*removed, *(d.source for d in docs)] if src in existing]
            gone = np.array([c for i in range(0, len(old_docs), 500) for c in s.scalars(
                select(Chunk.id).where(Chunk.document_id.in_(old_docs[i:i + 500])))], dtype=np.int64)
            leaving = [existing[src] for src in [*removed, *(w.source for w in docs)] if src in existing]
            unbits = [(f, old.id) for old in leaving if old.status == "ok"
                      for f in document_fields(old.metadata_, old.media_type, old.updated_at)]
            for src in removed:
                if src in existing:
                    s.delete(existing.pop(src))
            for src, chash, reason, size in failed:
                old = existing.get(src)
                if old is None:
                    s.add(Document(collection_id=coll.id, source_uri=src, source_rev=src[::-1], content_hash=chash,
                                   media_type="application/octet-stream", size_bytes=size,
                                   status="failed", error=reason, metadata_={}, chunk_count=0))
                elif old.status == "failed":
                    old.error, old.content_hash = reason, chash
            for d in docs:
                if d.source in existing:
                    s.delete(existing[d.source])
            s.flush()
            rows = [Document(collection_id=coll.id, source_uri=d.source, source_rev=d.source[::-1],
                             content_hash=d.content_hash,
                             media_type=d.media_type, size_bytes=d.size_bytes, title=d.title,
                             metadata_=d.metadata, status="ok", chunk_count=len(d.chunks),
                             modified_at=modified_at(d.metadata)) for d in docs]
            s.add_all(rows)
            s.flush()  # one multi-row INSERT ... RETURNING gives every document its id
            tag_rows = [{"document_id": doc.id, "tag": t, "collection_id": coll.id}
                        for doc in rows for t in document_tags(doc.metadata_)]
            if tag_rows:
                s.execute(insert(DocumentTag), tag_rows)
            meta_rows = [r for doc in rows for r in metadata_rows(doc.id, coll.id, doc.metadata_)]
            if meta_rows:
                s.execute(insert(DocumentMeta), meta_rows)
            added = [(f, doc.id) for doc in rows for f in document_fields(doc.metadata_, doc.media_type,
                                                                                      doc.updated_at)]
            field_bits.change(s, coll.id, added=added, removed=unbits)
            header = self.settings.chunking.context_header
            chunk_rows = [{"document_id": doc.id, "collection_id": coll.id, "ordinal": c.ordinal, "text": c.text,
                           "text_hash": text_hash(index_text(d.title, c.heading_path, c.text, header=header)),
                           "char_start": c.char_start, "char_end": c.char_end,
                           "page": c.page, "heading_path": list(c.heading_path), "token_count": c.token_count}
                          for doc, d in zip(rows, docs, strict=True) for c in d.chunks]
            new_rows: list[Any] = []
            if chunk_rows:
                s.execute(insert(Chunk), chunk_rows)
                q = select(*ROW_COLS).join(Document, Chunk.document_id == Document.id)
                doc_ids = [r.id for r in rows]
                for i in range(0, len(doc_ids), 500):
                    new_rows.extend(s.execute(q.where(Chunk.document_id.in_(doc_ids[i:i + 500]))).all())
            if docs or removed:
                s.execute(update(Collection).where(Collection.id == coll.id).values(
                    revision=Collection.revision + 1, embedder_id=self.embedder_id,
                    chunking_hash=self.settings.chunking.config_hash(self.embedder_id)))
            revision = int(s.scalar(select(Collection.revision).where(Collection.id == coll.id)) or 0)
        return revision, sorted(new_rows, key=lambda r: r[0]), gone

    def _store_vectors(self, s: Session, docs: Sequence[DocumentWrite]) -> None:
        fresh: dict[str, np.ndarray] = {}
        for d in docs:
            fresh.update(d.vectors)
        if not fresh:
            return
        known = set(s.scalars(select(Embedding.text_hash).where(
            Embedding.model_id == self.embedder_id, Embedding.text_hash.in_(list(fresh)))))
        rows = [{"model_id": self.embedder_id, "text_hash": h, "dim": int(v.shape[0]),
                 "vector": np.asarray(v, np.float32).tobytes()} for h, v in fresh.items() if h not in known]
        if rows:
            s.execute(insert(Embedding), rows)

    # -- index -------------------------------------------------------------------------
    def rebuild_index(self, name: str) -> dict[str, Any]:
        """Replace every segment with one built from the ledger (`rag reindex`; after changing index settings)."""
        t0 = time.perf_counter()
        coll = self.collection(name)
        with self.live.writer(name):
            snap = self.live.rebuild(name, coll=coll)
        self._record_build(coll, snap.manifest, snap.name, time.perf_counter() - t0)
        return dict(snap.manifest)

    def compact(self, name: str) -> dict[str, Any]:
        """Merge all segments into one, dropping deleted rows (`rag compact`); searches go on meanwhile."""
        t0 = time.perf_counter()
        coll = self.collection(name)
        self.index(name)
        snap = self.live.compact(name)
        if snap is None:
            raise NotFoundError(f"collection {name!r} has no index yet: run `rag ingest PATH --collection {name}`")
        self._record_build(coll, snap.manifest, snap.name, time.perf_counter() - t0)
        return dict(snap.manifest)

    def index(self, name: str) -> idx.Snapshot:
        """The last published snapshot; never rebuilt here (a lagging one is caught up in the background)."""
        coll = self.collection(name)  # one query: the row carries the revision
        self.check_embedder(coll)
        return self.live.snapshot(name, int(coll.revision or 0))

    def index_manifest(self, name: str) -> dict[str, Any] | None:
        """The published snapshot's manifest as written on disk (None before the first build); reads no segment."""
        return idx.read_manifest(self.settings.index_root / check_collection_name(name))

    def wait_background(self) -> None:
        """Wait for background merges and catch-ups of this process (tests, benchmarks, clean exits)."""
        if self._live is not None:
            self._live.wait()

    def allowed_chunk_ids(self, name: str, filters: Filters | None) -> AllowedIds | None:
        """What passes `filters` (None: no filter, everything allowed), resolved in SQL.

        SQL gives the passing documents; each segment maps them to a row mask through its
        document-id column when a search first needs it (`AllowedIds`). The answer is kept per (collection, ledger revision, filters) for the last
        `ALLOWED_CACHE` filters: any write bumps the revision, so a kept set is never stale,
        and a repeated filter (a UI facet, an API client's scope) skips the SQL and the masks.
        """
        if filters is None or filters.empty:
            return None
        coll = self.collection(name)
        try:
            key: tuple[Any, ...] | None = (coll.id, str(coll.created_at), int(coll.revision or 0), filters)
            hash(key)
        except TypeError:  # a metadata value that is a list or dict: not hashable, not kept
            key = None
        if key is not None:
            with self._allowed_lock:
                got = self._allowed.get(key)
                if got is not None and not got.failed:  # a resolution that raised is tried again
                    self._allowed.move_to_end(key)
                    return got
        pending = self._filter_pool().submit(self._resolve, coll.id, filters)
        got = AllowedIds.later(pending)  # the search embeds and sums BM25 postings meanwhile
        if key is not None:
            with self._allowed_lock:
                self._allowed[key] = got
                while len(self._allowed) > ALLOWED_CACHE:
                    self._allowed.popitem(last=False)
        return got

    def _resolve(self, collection_id: int, filters: Filters) -> np.ndarray:
        with self.sessions() as s:
            return resolve(s, collection_id, filters).ids

    def _filter_pool(self) -> ThreadPoolExecutor:
        with self._allowed_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rag-filter")
            return self._pool
