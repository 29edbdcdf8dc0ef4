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

import hashlib
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from rag.config import Settings
from rag.contextual import index_text
from rag.errors import CollectionNotFoundError, ConfigError, IndexMismatchError, NotFoundError
from rag.filters import Filters
from rag.store import index as idx
from rag.store.db import open_engine, session_factory
from rag.store.doc_fields import metadata_rows, modified_at
from rag.store.ledger import (
    Chunk,
    Collection,
    Document,
    DocumentMeta,
    DocumentTag,
    Embedding,
    IndexBuild,
    document_tags,
)
from rag.store.live import ROW_COLS, LiveIndex
from rag.store.local_filters import allowed_document_ids
from rag.store.segment import AllowedIds
from rag.types import Hit

ALLOWED_CACHE = 32  # filters whose allowed-id sets are kept (bytes: 8 per id + 1 per indexed row)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_collection_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"collection name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit"
        )
    return name


@dataclass
class DocumentWrite:
    """A document's new version, ready to replace the old one in one transaction."""

    source: str
    content_hash: str
    media_type: str
    size_bytes: int
    title: str | None
    metadata: dict[str, Any]
    chunks: Sequence[Any]  # rag.types.ChunkDraft
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # text hash -> vector, new ones only


class LocalStore:
    """Ledger + index folders for every collection under one data home."""

    def __init__(self, settings: Settings, *, embedder_id: str, dim: int) -> None:
        self.settings = settings
        self.embedder_id = embedder_id
        self.dim = dim
        self.engine = open_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        self._live: LiveIndex | None = None  # built on first index use: PgStore reuses this class for its ledger
        self._allowed: OrderedDict[tuple[Any, ...], AllowedIds] = OrderedDict()  # recent filters' id sets
        self._allowed_lock = threading.Lock()

    @property
    def live(self) -> LiveIndex:
        if self._live is None:
            self._live = LiveIndex(self)
        return self._live

    # -- collections -----------------------------------------------------------------
    def collection(self, name: str, *, create: bool = False) -> Collection:
        check_collection_name(name)
        with self.sessions.begin() as s:
            row = s.scalar(select(Collection).where(Collection.name == name))
            if row is None and create:
                row = Collection(name=name, revision=0, metadata_={})
                s.add(row)
                s.flush()
            if row is None:
                names = ", ".join(self.collection_names()) or "none"
                where = (f"data home {self.settings.home.resolve()}" if not self.settings.db_url
                         else "this database")
                raise CollectionNotFoundError(name, f"no collection named {name!r} in {where} (existing: "
                                              f"{names}); point at another data home with --home DIR or RAG_HOME")
            s.expunge(row)
            return row

    def collection_names(self) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(Collection.name).order_by(Collection.name)))

    def delete_collection(self, name: str) -> None:
        coll = self.collection(name)
        with self.live.writer(name):
            with self.sessions.begin() as s:
                s.execute(delete(Collection).where(Collection.id == coll.id))
            self.live.forget(name)
            for path in (self.settings.index_root / name).iterdir():
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def check_embedder(self, coll: Collection) -> None:
        """Refuse to mix two vector spaces in one collection."""
        if coll.embedder_id and coll.embedder_id != self.embedder_id:
            raise IndexMismatchError(
                f"collection {coll.name!r} holds vectors of {coll.embedder_id!r}, the configured "
                f"embedder is {self.embedder_id!r}: set {idx.embedder_env(coll.embedder_id)} "
                f"to use it again, or run `rag delete {coll.name} --yes` and ingest again with the new embedder "
                f"(or ingest into a new collection)"
            )

    # -- documents ---------------------------------------------------------------------
    def document_hashes(self, coll: Collection) -> dict[str, str]:
        """source -> content hash of every successfully ingested document."""
        with self.sessions() as s:
            rows = s.execute(select(Document.source_uri, Document.content_hash)
                             .where(Document.collection_id == coll.id, Document.status == "ok"))
            return {src: h for src, h in rows}

    def documents(self, name: str) -> list[Document]:
        coll = self.collection(name)
        with self.sessions() as s:
            rows = s.scalars(select(Document).where(Document.collection_id == coll.id)
                             .order_by(Document.source_uri)).all()
            for row in rows:
                s.expunge(row)
            return list(rows)

    def cached_vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already embedded by this model, by text hash."""
        wanted = list(set(hashes))
        out: dict[str, np.ndarray] = {}
        with self.sessions() as s:
            for i in range(0, len(wanted), 500):
                rows = s.execute(select(Embedding.text_hash, Embedding.vector).where(
                    Embedding.model_id == self.embedder_id, Embedding.text_hash.in_(wanted[i:i + 500])))
                out.update({h: np.frombuffer(v, dtype=np.float32) for h, v in rows})
        return out

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
            for src in removed:
                if src in existing:
                    s.delete(existing.pop(src))
            for src, chash, reason, size in failed:
                old = existing.get(src)
                if old is None:
                    s.add(Document(collection_id=coll.id, source_uri=src, content_hash=chash,
                                   media_type="application/octet-stream", size_bytes=size,
                                   status="failed", error=reason, metadata_={}, chunk_count=0))
                elif old.status == "failed":
                    old.error, old.content_hash = reason, chash
            for d in docs:
                if d.source in existing:
                    s.delete(existing[d.source])
            s.flush()
            rows = [Document(collection_id=coll.id, source_uri=d.source, content_hash=d.content_hash,
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
    def revision(self, coll: Collection) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(Collection.revision).where(Collection.id == coll.id)) or 0)

    def rebuild_index(self, name: str) -> dict[str, Any]:
        """Replace every segment with one built from the ledger (`rag reindex`; after changing index settings)."""
        t0 = time.perf_counter()
        coll = self.collection(name)
        with self.live.writer(name):
            snap = self.live.rebuild(name, coll=coll)
        self._record_build(coll, snap, time.perf_counter() - t0)
        return dict(snap.manifest)

    def compact(self, name: str) -> dict[str, Any]:
        """Merge all segments into one, dropping deleted rows (`rag compact`); searches go on meanwhile."""
        t0 = time.perf_counter()
        coll = self.collection(name)
        self.index(name)
        snap = self.live.compact(name)
        if snap is None:
            raise NotFoundError(f"collection {name!r} has no index yet: run `rag ingest PATH --collection {name}`")
        self._record_build(coll, snap, time.perf_counter() - t0)
        return dict(snap.manifest)

    def _record_build(self, coll: Collection, snap: idx.Snapshot, seconds: float) -> None:
        with self.sessions.begin() as s:
            s.add(IndexBuild(collection_id=coll.id, revision=snap.revision, manifest_hash=idx.manifest_hash(snap.manifest),
                             folder=snap.name, chunk_count=int(snap.manifest["chunks"]), seconds=seconds))

    def index(self, name: str) -> idx.Snapshot:
        """The last published snapshot; never rebuilt here (a lagging one is caught up in the background)."""
        coll = self.collection(name)  # one query: the row carries the revision
        self.check_embedder(coll)
        return self.live.snapshot(name, int(coll.revision or 0))

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
                if got is not None:
                    self._allowed.move_to_end(key)
                    return got
        with self.sessions() as s:
            got = AllowedIds(allowed_document_ids(s, coll.id, filters))
        if key is not None:
            with self._allowed_lock:
                self._allowed[key] = got
                while len(self._allowed) > ALLOWED_CACHE:
                    self._allowed.popitem(last=False)
        return got

    def hits(self, ids: Sequence[int], scores: Sequence[float], ranks: dict[str, dict[int, int]],
             raw: dict[str, dict[int, float]]) -> list[Hit]:
        """Attach text and source metadata to ranked ids (done last, off the hot path)."""
        if not len(ids):
            return []
        cols = (Chunk.id, Chunk.text, Chunk.page, Chunk.heading_path, Chunk.char_start, Chunk.char_end,
                Document.id, Document.source_uri, Document.title, Document.media_type, Document.metadata_)
        with self.sessions() as s:  # plain columns: ORM objects cost more than the search itself
            rows = s.execute(select(*cols).join(Document, Chunk.document_id == Document.id)
                             .where(Chunk.id.in_([int(i) for i in ids]))).all()
        by_id = {r[0]: r for r in rows}
        out = []
        for cid, score in zip(ids, scores, strict=True):
            r = by_id.get(int(cid))
            if r is None:  # deleted since the snapshot was published
                continue
            out.append(Hit(chunk_id=r[0], score=float(score), text=r[1], document_id=r[6],
                           source=r[7], title=r[8], page=r[2],
                           heading_path=tuple(r[3] or ()), char_start=r[4],
                           char_end=r[5], media_type=r[9],
                           ranks={n: rk[int(cid)] for n, rk in ranks.items() if int(cid) in rk},
                           scores={n: v[int(cid)] for n, v in raw.items() if int(cid) in v},
                           metadata=dict(r[10] or {})))
        return out

    def chunk_count(self, name: str) -> int:
        coll = self.collection(name)
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Chunk).where(Chunk.collection_id == coll.id)) or 0)
