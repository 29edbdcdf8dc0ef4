"""Keeping the embedded store's segmented index in step with its ledger.

- `apply`: after a write batch commits, add one segment for its new chunks and mark the
  chunks it replaced or removed as deleted (cost: the batch, not the collection).
- `snapshot`: what a search uses: the last published state. It never builds in the
  request path; if it finds the index behind the ledger (a writer crashed between its
  commit and its publish) it asks a background thread to catch up.
- `sync`: catch up by diffing ledger ids against indexed ids (crash recovery, first use
  after upgrading from the single-folder format); `rebuild`: one fresh segment.
- `merge`: fold segments per `rag.store.merge`, in a background thread after writes
  and on `rag compact`; the merged segment is built without the writer lock and
  committed under it, carrying over deletions that happened meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from rag.contextual import ChunkRow, sparse_texts
from rag.errors import IndexMismatchError
from rag.priority import pause_for_searches
from rag.store import index as idx
from rag.store import merge as mp
from rag.store import segment as sg
from rag.store.dense import dense_kind
from rag.store.ledger import Chunk, Document
from rag.store.sparse import analyze

log = logging.getLogger(__name__)
ROW_COLS = (Chunk.id, Chunk.text, Chunk.text_hash, Chunk.document_id, Chunk.ordinal, Chunk.heading_path,
            Document.title)


class LiveIndex:
    """Snapshots, writer locks and merges of every collection under one data home (one per store)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.cfg = store.settings.index
        self.cache = idx.SegmentCache(doc_ids=self.document_ids)
        self._snaps: dict[str, idx.Snapshot] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._guard = threading.Lock()
        self._publishing: dict[str, int] = {}  # collection -> writers of this process publishing now

    def root(self, name: str) -> Path:
        return Path(self.store.settings.index_root) / name

    def writer(self, name: str) -> Any:
        """The collection's writer lock (threads of this process and other processes)."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        return idx.writer_lock(self.root(name), lock)

    def forget(self, name: str) -> None:
        with self._guard:
            self._snaps.pop(name, None)

    # -- reading -----------------------------------------------------------------------
    def load(self, name: str, *, publishing: bool = False) -> idx.Snapshot | None:
        """The published snapshot, reusing the one held when CURRENT has not moved.

        While a writer of this process publishes (`_publish`), readers keep the snapshot held
        until the writer has loaded the new one for them: a search never loads one itself
        after this process's own writes and merges (it cost ~100 ms beside an ingest). A merge
        published by another process holds the same ledger revision: the held snapshot answers
        alike until a background thread has loaded the merged one (a cold 10k-row segment costs
        ~200 ms). Another process's new write does load here: the search must see it.
        """
        root = self.root(name)
        current = idx.current_name(root)
        with self._guard:
            held = self._snaps.get(name)
            busy = self._publishing.get(name, 0) > 0
        if held is not None and (held.name == current or (busy and not publishing)):
            return held
        if held is not None and current is not None and not publishing and republished(root, current, held):
            # A merge (this process's or another's) republished the same ledger state of the same collection:
            # what is held gives the same hits, so the merged segments load in the background, not here.
            def refresh() -> None:
                self.load(name, publishing=True)

            self.background(name, "refresh", refresh)
            return held
        snap = idx.load_current(root, self.cache, self.cfg, embedder_id=self.store.embedder_id,
                                dim=self.store.dim, collection=name)
        if snap is not None:
            with self._guard:
                self._snaps[name] = snap
        return snap

    def snapshot(self, name: str, ledger_revision: int) -> idx.Snapshot:
        snap = self.load(name)
        if snap is None:  # never indexed (or the pre-segment format): build once, under the writer lock
            with self.writer(name):
                snap = self.load(name) or self.sync(name)
        elif snap.revision < ledger_revision:
            self.background(name, "sync", lambda: self._sync_if_behind(name))
        return snap

    def document_ids(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Document id of each chunk id (sorted ids; -1 for chunks the ledger no longer holds)."""
        out = np.full(len(chunk_ids), -1, dtype=np.int64)
        if not len(chunk_ids):
            return out
        with self.store.sessions() as s:  # one range scan of the primary key
            got = s.execute(select(Chunk.id, Chunk.document_id).where(
                Chunk.id >= int(chunk_ids[0]), Chunk.id <= int(chunk_ids[-1])).order_by(Chunk.id)).all()
        if got:
            cid = np.array([r[0] for r in got], np.int64)
            did = np.array([r[1] for r in got], np.int64)
            pos = np.minimum(np.searchsorted(cid, chunk_ids), len(cid) - 1)
            found = cid[pos] == chunk_ids
            out[found] = did[pos[found]]
        return out

    # -- writing -----------------------------------------------------------------------
    def base_for_write(self, name: str, ledger_revision: int) -> idx.Snapshot | None:
        """Under the writer lock: the snapshot a write builds on, caught up with the ledger first."""
        snap = self.load(name)
        if snap is None and ledger_revision == 0:  # a new collection: the first batch is the first segment
            return None
        if snap is None or snap.revision != ledger_revision:
            snap = self.sync(name)
        return snap

    def apply(self, name: str, base: idx.Snapshot | None, revision: int, rows: Sequence[Any],
              gone: np.ndarray, manifest: dict[str, Any]) -> idx.Snapshot:
        """Publish `base` + one segment of `rows` (ROW_COLS tuples) - deletions of chunk ids `gone`."""
        root = self.root(name)
        refs = [dict(r) for r in base.manifest["segments"]] if base is not None else []
        if base is not None and len(gone):
            for ref, seg, live in zip(refs, base.segments, base.live, strict=True):
                rows_gone = seg.rows_of(gone)
                if live is not None:
                    rows_gone = rows_gone[live[rows_gone]]
                if len(rows_gone):
                    old = self.cache.deletes(root, ref.get("deletes"))
                    both = np.union1d(old, rows_gone)
                    ref["deletes"], ref["deleted"] = idx.write_deletes(root, seg.name, both), int(len(both))
        refs = [r for r in refs if r["rows"] > r["deleted"]]  # a fully deleted segment just leaves
        if len(rows):
            seg = self.build_segment(name, rows)
            sg.save(seg, root / "seg")
            self.cache.put(root, seg)
            refs.append({"name": seg.name, "rows": seg.size, "deleted": 0, "deletes": None,
                         "dense": seg.dense_kind})
        return self._publish(name, {**manifest, "ledger_revision": revision, "segments": refs})

    def _publish(self, name: str, manifest: dict[str, Any]) -> idx.Snapshot:
        """Publish a snapshot and load it here before readers of this process switch to it."""
        with self._guard:
            self._publishing[name] = self._publishing.get(name, 0) + 1
        try:
            snap_name = idx.publish(self.root(name), manifest)
            return self.load(name, publishing=True) or _never(snap_name)
        finally:
            with self._guard:
                self._publishing[name] -= 1

    def build_segment(self, name: str, rows: Sequence[Any]) -> sg.Segment:
        """A segment from ledger rows: BM25 text with neighbours, vectors from the embedding cache."""
        header = self.store.settings.chunking.context_header
        texts = sparse_texts([ChunkRow(r[0], r[3], r[4], r[1], r[6], tuple(r[5] or ())) for r in rows],
                             neighbours=self.cfg.bm25_neighbours, header=header)
        cache = self.store.cached_vectors(r[2] for r in rows)
        missing = [r[2] for r in rows if r[2] not in cache]
        if missing:
            raise IndexMismatchError(f"{len(missing)} chunks of {name!r} have no {self.store.embedder_id!r} "
                                     f"vector: set the embedder the collection was built with, or run "
                                     f"`rag delete {name} --yes` and ingest again")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        docs = np.array([r[3] for r in rows], dtype=np.int64)
        vectors = np.stack([cache[r[2]] for r in rows]).astype(np.float32)
        kind = dense_kind(len(rows), self.cfg.dense, self.cfg.hnsw_min_rows)
        tokens = []
        for i, text in enumerate(texts):
            if i % 8 == 0:
                pause_for_searches()  # tokenising is pure Python: searches in this process go first
            tokens.append(analyze(text, self.cfg.bm25_language))
        return sg.build(ids, vectors, tokens, dense_kind=kind, docs=docs,
                        hnsw_m=self.cfg.hnsw_m, ef_construction=self.cfg.hnsw_ef_construction)

    # -- catching up and rebuilding (callers hold the writer lock) ---------------------
    def _rows(self, coll_id: int, *, ids: np.ndarray | None = None) -> list[Any]:
        """Ledger rows of the collection, or of the documents holding `ids`, ordered by chunk id."""
        q = select(*ROW_COLS).join(Document, Chunk.document_id == Document.id).where(Chunk.collection_id == coll_id)
        with self.store.sessions() as s:
            if ids is None:
                return list(s.execute(q.order_by(Chunk.id)).all())
            out: list[Any] = []
            id_list = [int(i) for i in ids]
            docs: set[int] = set()
            for i in range(0, len(id_list), 500):
                docs.update(s.scalars(select(Chunk.document_id).where(Chunk.id.in_(id_list[i:i + 500]))))
            doc_list = sorted(docs)
            for i in range(0, len(doc_list), 500):
                out.extend(s.execute(q.where(Chunk.document_id.in_(doc_list[i:i + 500]))).all())
            return sorted(out, key=lambda r: r[0])

    def sync(self, name: str) -> idx.Snapshot:
        """Make the index agree with the ledger: index the missing chunks, delete the orphans."""
        coll = self.store.collection(name)
        revision = self.store.revision(coll)
        snap = self.load(name)
        with self.store.sessions() as s:
            ledger = np.array(sorted(s.scalars(select(Chunk.id).where(Chunk.collection_id == coll.id))), np.int64)
        indexed = np.sort(snap.sparse.ids) if snap is not None else np.zeros(0, np.int64)
        new = np.setdiff1d(ledger, indexed, assume_unique=True)
        if snap is None or len(new) > len(ledger) // 2:
            return self.rebuild(name, coll=coll, revision=revision)
        gone = np.setdiff1d(indexed, ledger, assume_unique=True)
        rows = self._rows(coll.id, ids=new) if len(new) else []
        keep = set(new.tolist())
        rows = [r for r in rows if r[0] in keep]
        return self.apply(name, snap, revision, rows, gone, self.manifest(name, coll))

    def rebuild(self, name: str, *, coll: Any = None, revision: int | None = None) -> idx.Snapshot:
        """One segment from the whole ledger, replacing every segment."""
        coll = coll or self.store.collection(name)
        revision = self.store.revision(coll) if revision is None else revision
        return self.apply(name, None, revision, self._rows(coll.id), np.zeros(0, np.int64), self.manifest(name, coll))

    def manifest(self, name: str, coll: Any) -> dict[str, Any]:
        cfg = self.cfg
        created = getattr(coll, "created_at", None)
        return {"collection": name, "collection_id": int(coll.id),  # with its creation time: which collection
                "collection_created": created.isoformat() if created is not None else None,  # of this name it is
                "embedder_id": self.store.embedder_id, "dim": self.store.dim,
                "chunking_hash": self.store.settings.chunking.config_hash(self.store.embedder_id),
                "dense": {"kind": cfg.dense, "hnsw_m": cfg.hnsw_m, "ef_search": cfg.hnsw_ef_search,
                          "hnsw_min_rows": cfg.hnsw_min_rows},
                "bm25": {"k1": cfg.bm25_k1, "b": cfg.bm25_b, "language": cfg.bm25_language,
                         "engine": "segments", "neighbours": cfg.bm25_neighbours}}

    def _sync_if_behind(self, name: str) -> None:
        with self.writer(name):
            coll = self.store.collection(name)
            snap = self.load(name)
            if snap is None or snap.revision != self.store.revision(coll):
                self.sync(name)

    # -- merging -----------------------------------------------------------------------
    def merge(self, name: str, choose: Callable[[list[dict[str, Any]]], list[str]]) -> bool:
        """Merge the segments `choose` picks; False when it picks none or the snapshot moved under us."""
        root = self.root(name)
        snap = self.load(name)
        if snap is None:
            return False
        picked = set(choose(snap.manifest["segments"]))
        if not picked:
            return False
        parts = [(seg, live if live is not None else np.ones(seg.size, bool))
                 for seg, live in zip(snap.segments, snap.live, strict=True) if seg.name in picked]
        rows = sum(int(live.sum()) for _, live in parts)
        kind = dense_kind(rows, self.cfg.dense, self.cfg.hnsw_min_rows)
        merged = sg.merge(parts, dense_kind=kind, hnsw_m=self.cfg.hnsw_m, ef_construction=self.cfg.hnsw_ef_construction)
        if merged.size:
            sg.save(merged, root / "seg")
            self.cache.put(root, merged)
        with self.writer(name):
            cur = self.load(name)
            if cur is None or not picked <= {r["name"] for r in cur.manifest["segments"]}:
                return False
            now_live = {s.name: live for s, live in zip(cur.segments, cur.live, strict=True)}
            late = [seg.ids[before & ~live] for seg, before in parts  # deleted while we merged
                    if (live := now_live[seg.name]) is not None]
            refs, placed = [], False
            for ref in cur.manifest["segments"]:
                if ref["name"] not in picked:
                    refs.append(ref)
                elif not placed and merged.size:
                    placed = True
                    gone = merged.rows_of(np.concatenate(late)) if late else np.zeros(0, np.int64)
                    refs.append({"name": merged.name, "rows": merged.size, "deleted": int(len(gone)),
                                 "deletes": idx.write_deletes(root, merged.name, gone) if len(gone) else None,
                                 "dense": merged.dense_kind})
            self._publish(name, {**cur.manifest, "segments": refs})
        return True

    def compact(self, name: str) -> idx.Snapshot | None:
        """Merge every segment into one (the `rag compact` command)."""
        while self.merge(name, mp.plan_all):
            pass
        return self.load(name)

    def merge_by_policy(self, name: str) -> None:
        cfg = self.cfg

        def choose(refs: list[dict[str, Any]]) -> list[str]:
            return mp.plan(refs, factor=cfg.merge_factor, floor_rows=cfg.merge_floor_rows,
                           deleted_ratio=cfg.merge_deleted_ratio)

        while self.merge(name, choose):
            pass

    def background(self, name: str, kind: str, fn: Callable[[], None]) -> None:
        """Run `fn` in one thread per (collection, kind); a second request while it runs is dropped."""
        with self._guard:
            running = self._threads.get((name, kind))
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(target=_logged, args=(fn, f"{kind} of {name!r}"), name=f"rag-{kind}-{name}")
            self._threads[(name, kind)] = thread
        thread.start()

    def wait(self) -> None:
        """Join background work (tests, benchmarks, and a clean exit)."""
        with self._guard:
            threads = list(self._threads.values())
        for t in threads:
            t.join()


def _logged(fn: Callable[[], None], what: str) -> None:
    try:
        fn()
    except Exception:  # a background merge must never take the process down; the next one retries
        log.exception("background %s failed", what)


def republished(root: Path, current: str, held: idx.Snapshot) -> bool:
    """Whether snapshot `current` holds `held`'s ledger revision of the same collection (not one deleted and
    made again under its name since): a merge or a rebuild, whose hits are `held`'s."""
    if idx.name_revision(current) != held.revision:
        return False
    got = idx.read_named(root, current)
    keys = ("collection_id", "collection_created")
    return got is not None and all(got.get(k) is not None and got.get(k) == held.manifest.get(k) for k in keys)


def _never(name: str) -> idx.Snapshot:
    raise RuntimeError(f"snapshot {name} was published but cannot be read back")
