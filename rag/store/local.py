"""The embedded store: SQLite (or any SQL) ledger + FAISS/BM25 index folders.

Writes go to the ledger first, one transaction per batch, and bump the
collection's revision. The index is then rebuilt from the ledger and stamped
with that revision. A reader that finds the index behind the ledger (a crash
between the two steps, or another process writing) rebuilds it: the ledger
is the truth, the index a cache of it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from rag.config import Settings
from rag.contextual import ChunkRow, index_text, sparse_texts
from rag.errors import CollectionNotFoundError, ConfigError, IndexMismatchError
from rag.filters import Filters
from rag.store import index as idx
from rag.store.db import open_engine, session_factory
from rag.store.ledger import Chunk, Collection, Document, Embedding, IndexBuild
from rag.types import Hit

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
        self._loaded: dict[str, idx.LoadedIndex] = {}
        self._lock = threading.RLock()

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
        with self.sessions.begin() as s:
            s.execute(delete(Collection).where(Collection.id == coll.id))
        with self._lock:
            self._loaded.pop(name, None)
        shutil.rmtree(self.settings.index_root / name, ignore_errors=True)

    def check_embedder(self, coll: Collection) -> None:
        """Refuse to mix two vector spaces in one collection."""
        if coll.embedder_id and coll.embedder_id != self.embedder_id:
            raise IndexMismatchError(
                f"collection {coll.name!r} holds vectors of {coll.embedder_id!r}, the configured "
                f"embedder is {self.embedder_id!r}: set {idx.embedder_env(coll.embedder_id)} "
                f"or run `rag reindex {coll.name}` to re-embed"
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
        with self.sessions.begin() as s:
            self._store_vectors(s, docs)
            sources = [d.source for d in docs] + [f[0] for f in failed] + list(removed)
            existing = {d.source_uri: d for d in s.scalars(select(Document).where(
                Document.collection_id == coll.id, Document.source_uri.in_(sources)))}
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
                             metadata_=d.metadata, status="ok", chunk_count=len(d.chunks)) for d in docs]
            s.add_all(rows)
            s.flush()  # one multi-row INSERT ... RETURNING gives every document its id
            header = self.settings.chunking.context_header
            chunk_rows = [{"document_id": doc.id, "collection_id": coll.id, "ordinal": c.ordinal, "text": c.text,
                           "text_hash": text_hash(index_text(d.title, c.heading_path, c.text, header=header)),
                           "char_start": c.char_start, "char_end": c.char_end,
                           "page": c.page, "heading_path": list(c.heading_path), "token_count": c.token_count}
                          for doc, d in zip(rows, docs, strict=True) for c in d.chunks]
            if chunk_rows:
                s.execute(insert(Chunk), chunk_rows)
            added = len(chunk_rows)
            if docs or removed:
                s.execute(update(Collection).where(Collection.id == coll.id).values(
                    revision=Collection.revision + 1, embedder_id=self.embedder_id,
                    chunking_hash=self.settings.chunking.config_hash(self.embedder_id)))
        return added

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
        """Write a fresh index version from the ledger and make it current."""
        t0 = time.perf_counter()
        coll = self.collection(name)
        with self.sessions() as s:
            rev = self.revision(coll)
            rows = s.execute(select(Chunk.id, Chunk.text, Chunk.text_hash, Chunk.document_id, Chunk.ordinal,
                                    Chunk.heading_path, Document.title)
                             .join(Document, Chunk.document_id == Document.id)
                             .where(Chunk.collection_id == coll.id).order_by(Chunk.id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        texts = sparse_texts([ChunkRow(r[0], r[3], r[4], r[1], r[6], tuple(r[5] or ())) for r in rows],
                             neighbours=self.settings.index.bm25_neighbours,
                             header=self.settings.chunking.context_header)
        cache = self.cached_vectors(r[2] for r in rows)
        missing = [r[2] for r in rows if r[2] not in cache]
        if missing:
            raise IndexMismatchError(
                f"{len(missing)} chunks of {name!r} have no {self.embedder_id!r} vector: "
                f"run `rag reindex {name}` to embed them")
        vectors = np.stack([cache[r[2]] for r in rows]) if rows else np.zeros((0, self.dim), np.float32)
        manifest = {"collection": name, "ledger_revision": rev, "embedder_id": self.embedder_id,
                    "dim": self.dim, "chunking_hash": self.settings.chunking.config_hash(self.embedder_id)}
        folder, full = idx.write_index(self.settings.index_root / name, ids=ids, vectors=vectors,
                                       texts=texts, cfg=self.settings.index, manifest=manifest)
        seconds = time.perf_counter() - t0
        with self.sessions.begin() as s:
            s.add(IndexBuild(collection_id=coll.id, revision=rev, manifest_hash=idx.manifest_hash(full),
                             folder=folder.name, chunk_count=len(ids), seconds=seconds))
        with self._lock:
            self._loaded.pop(name, None)
        return full

    def index(self, name: str) -> idx.LoadedIndex:
        """The current index, rebuilt first when it lags the ledger."""
        coll = self.collection(name)  # one query: the row carries the revision
        self.check_embedder(coll)
        rev = int(coll.revision or 0)
        root = self.settings.index_root / name
        with self._lock:
            cached = self._loaded.get(name)
            if cached is not None and cached.revision == rev and idx.current_folder(root) == cached.folder:
                return cached
            manifest = idx.read_manifest(root)
            if manifest is None or int(manifest["ledger_revision"]) != rev:
                self.rebuild_index(name)
            loaded = idx.load_index(root, embedder_id=self.embedder_id, dim=self.dim, collection=name,
                                    search_threads=self.settings.index.search_threads)
            self._loaded[name] = loaded
            return loaded

    def allowed_chunk_ids(self, name: str, filters: Filters | None) -> np.ndarray | None:
        """Chunk ids that pass `filters` (None: no filter, everything allowed)."""
        if filters is None or filters.empty:
            return None
        coll = self.collection(name)
        with self.sessions() as s:
            q = select(Document.id, Document.source_uri, Document.media_type, Document.metadata_,
                       Document.updated_at).where(Document.collection_id == coll.id, Document.status == "ok")
            if filters.document_ids:
                q = q.where(Document.id.in_(filters.document_ids))
            if filters.media_types:
                q = q.where(Document.media_type.in_(filters.media_types))
            doc_ids = [d for d, src, mt, meta, upd in s.execute(q)
                       if filters.match_document(src, mt, meta or {}, upd)]
            ids: list[int] = []
            for i in range(0, len(doc_ids), 500):
                ids.extend(s.scalars(select(Chunk.id).where(Chunk.document_id.in_(doc_ids[i:i + 500]))))
        return np.array(sorted(ids), dtype=np.int64)

    def hits(self, ids: Sequence[int], scores: Sequence[float], ranks: dict[str, dict[int, int]],
             raw: dict[str, dict[int, float]]) -> list[Hit]:
        """Attach text and source metadata to ranked ids (done last, off the hot path)."""
        if not len(ids):
            return []
        with self.sessions() as s:
            rows = s.execute(select(Chunk, Document).join(Document, Chunk.document_id == Document.id)
                             .where(Chunk.id.in_([int(i) for i in ids]))).all()
        by_id = {c.id: (c, d) for c, d in rows}
        out = []
        for cid, score in zip(ids, scores, strict=True):
            if int(cid) not in by_id:  # deleted since the index was built
                continue
            c, d = by_id[int(cid)]
            out.append(Hit(chunk_id=c.id, score=float(score), text=c.text, document_id=d.id,
                           source=d.source_uri, title=d.title, page=c.page,
                           heading_path=tuple(c.heading_path or ()), char_start=c.char_start,
                           char_end=c.char_end, media_type=d.media_type,
                           ranks={n: r[int(cid)] for n, r in ranks.items() if int(cid) in r},
                           scores={n: v[int(cid)] for n, v in raw.items() if int(cid) in v},
                           metadata=dict(d.metadata_ or {})))
        return out

    def chunk_count(self, name: str) -> int:
        coll = self.collection(name)
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Chunk).where(Chunk.collection_id == coll.id)) or 0)
