"""A collection's index: immutable segments plus deletions, published as snapshots.

Layout under `<home>/indexes/<collection>/`:
    CURRENT                     name of the live snapshot file (replaced by rename)
    snap-00000012-1a2b3c.json   ledger revision, embedder, and the list of segments with their deletes
    seg/<name>/                 one segment (rag.store.segment): ids, vectors, BM25 postings
    del/<segment>-<uuid>.npy    sorted deleted rows of one segment (a new file per change)
    .lock                       writers of this collection hold it (fcntl), in any process
A write or merge writes its new files first (fsynced), then a new snapshot file, then
swaps CURRENT. Readers load whatever CURRENT names and reuse the segments they already
hold, so a reader sees the old snapshot or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import IndexSettings
from rag.errors import IndexMismatchError, NotFoundError
from rag.store import segment as sg
from rag.store.base import embedder_env
from rag.store.bm25 import SparseView
from rag.store.dense import DenseView, SegmentDense

FORMAT_VERSION = 2
KEEP_SNAPSHOTS = 3  # files of the last few snapshots stay on disk for readers still loading them


@dataclass(frozen=True)
class Snapshot:
    """What `LocalStore.index` returns: both retrievers over one published state."""

    folder: Path
    name: str
    manifest: dict[str, Any]
    segments: tuple[sg.Segment, ...]
    live: tuple[np.ndarray | None, ...]
    dense: DenseView
    sparse: SparseView

    @property
    def revision(self) -> int:
        return int(self.manifest["ledger_revision"])


LoadedIndex = Snapshot  # the name earlier versions used


def _fsync_write(path: Path, data: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def current_name(root: Path) -> str | None:
    """The snapshot file CURRENT names, or None (no index, or one in the pre-segment format)."""
    try:
        name = (root / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return name if name.startswith("snap-") and (root / name).is_file() else None


def name_revision(name: str) -> int:
    """The ledger revision a snapshot file's name carries (`snap-00000012-1a2b3c.json` -> 12)."""
    return int(name.split("-")[1])


def read_named(root: Path, name: str) -> dict[str, Any] | None:
    """The manifest of snapshot `name`, or None when it is gone (collected) or unreadable."""
    try:
        return dict(json.loads((root / name).read_text()))
    except (OSError, ValueError):
        return None


def read_manifest(root: Path) -> dict[str, Any] | None:
    for _ in range(5):  # CURRENT may move on between reading it and reading its file
        name = current_name(root)
        if name is None:
            return None
        try:
            return dict(json.loads((root / name).read_text()))
        except FileNotFoundError:
            continue
    return None


def current_folder(root: Path) -> Path | None:
    """The folder holding the live index (all segments), or None when there is none."""
    return root if current_name(root) else None


@contextlib.contextmanager
def writer_lock(root: Path, local: threading.Lock) -> Iterator[None]:
    """The collection's writer lock: a thread lock, then an fcntl lock other processes see too."""
    root.mkdir(parents=True, exist_ok=True)
    with local, open(root / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_deletes(root: Path, seg_name: str, rows: np.ndarray) -> str:
    """A new immutable deletes file for one segment; returns its name."""
    (root / "del").mkdir(parents=True, exist_ok=True)
    name = f"{seg_name}-{uuid.uuid4().hex[:8]}.npy"
    tmp = root / "del" / f".tmp-{name}"
    with open(tmp, "wb") as fh:
        np.save(fh, np.unique(np.asarray(rows, np.int32)), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, root / "del" / name)
    return name


def publish(root: Path, manifest: dict[str, Any]) -> str:
    """Write a snapshot file and point CURRENT at it (atomic rename); returns its name."""
    full = {**manifest, "format_version": FORMAT_VERSION, "created_at": time.time(),
            "chunks": int(sum(s["rows"] - s["deleted"] for s in manifest["segments"]))}
    name = f"snap-{int(full['ledger_revision']):08d}-{uuid.uuid4().hex[:6]}.json"
    _fsync_write(root / f".tmp-{name}", json.dumps(full, indent=1, sort_keys=True))
    os.rename(root / f".tmp-{name}", root / name)
    pointer = root / f".CURRENT-{uuid.uuid4().hex[:8]}"
    _fsync_write(pointer, name)
    os.replace(pointer, root / "CURRENT")
    collect_garbage(root)
    return name


def _mtime(path: Path) -> float | None:
    """Modification time, or None when the path vanished meanwhile (another writer renamed or collected it)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def collect_garbage(root: Path) -> None:
    """Drop files no recent snapshot names, the pre-segment format's folders, and stale temp files.

    A segment leaves with the last snapshot that named it (a reader still loading an older snapshot
    retries with CURRENT: `load_current`); one that no snapshot has named yet waits an hour.

    Other writers (a background merge, another process) rename and remove files here at the same time,
    so a path that vanishes between listing and checking is skipped, never an error.
    """
    current = current_name(root)  # never collected, whatever the clock says
    dated = [(t, p) for p in root.glob("snap-*.json") if p.name != current and (t := _mtime(p)) is not None]
    snaps = [p for _t, p in sorted(dated)]
    if current:
        snaps.append(root / current)
    keep, used_segs, used_dels = snaps[-KEEP_SNAPSHOTS:], set(), set()
    for path in keep:
        with contextlib.suppress(OSError, ValueError):
            for s in json.loads(path.read_text())["segments"]:
                used_segs.add(s["name"])
                used_dels.add(s.get("deletes"))
    now = time.time()

    def old(path: Path) -> bool:  # an hour untouched: no merge or write is about to publish it
        t = _mtime(path)
        return t is not None and now - t > 3600

    superseded: set[str] = set()  # published once, named by no kept snapshot: no writer will publish them again
    for path in snaps[:-KEEP_SNAPSHOTS]:
        with contextlib.suppress(OSError, ValueError):
            superseded |= {s["name"] for s in json.loads(path.read_text())["segments"]} - used_segs
        path.unlink(missing_ok=True)
    for path in (root / "seg").glob("*") if (root / "seg").is_dir() else []:
        # A segment no snapshot names yet may be a write or merge about to publish: those wait an hour.
        if path.name not in used_segs and (path.name in superseded or old(path)):
            shutil.rmtree(path, ignore_errors=True)
    for path in (root / "del").glob("*") if (root / "del").is_dir() else []:
        if path.name not in used_dels and (not path.name.startswith(".tmp-") or old(path)):
            path.unlink(missing_ok=True)
    for path in root.glob("v*"):  # folders of the pre-segment format
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".tmp-*"):
        if old(path):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def check_manifest(manifest: dict[str, Any], *, embedder_id: str, dim: int, collection: str) -> None:
    """Refuse a snapshot of another format or vector space, naming the fix."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(f"index of {collection!r} has format {manifest.get('format_version')}, this "
                                 f"version reads {FORMAT_VERSION}: run `rag reindex {collection}`")
    if manifest["embedder_id"] != embedder_id or int(manifest["dim"]) != dim:
        raise IndexMismatchError(
            f"collection {collection!r} was indexed with embedder {manifest['embedder_id']!r} "
            f"(dim {manifest['dim']}) but the configured embedder is {embedder_id!r} (dim {dim}): "
            f"set {embedder_env(manifest['embedder_id'])} to use it again, or run `rag delete {collection} --yes` "
            f"and ingest again with the new model (or ingest into a new collection)")


class SegmentCache:
    """Segments (and their FAISS indexes) loaded once per process and shared by every snapshot.

    `doc_ids` maps chunk ids to document ids (-1 when gone); it fills the document-id column
    of segments written before that column existed, once per load (the next merge writes it).
    """

    def __init__(self, doc_ids: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self._doc_ids = doc_ids
        self._segs: dict[tuple[str, str], tuple[sg.Segment, SegmentDense]] = {}
        self._dels: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def put(self, root: Path, seg: sg.Segment) -> None:
        with self._lock:
            self._segs[(str(root), seg.name)] = (seg, SegmentDense(seg))

    def segment(self, root: Path, name: str) -> tuple[sg.Segment, SegmentDense]:
        key = (str(root), name)
        with self._lock:
            got = self._segs.get(key)
        if got is None:
            seg = sg.load(root / "seg" / name)
            if seg.docs is None and self._doc_ids is not None:
                seg.docs = self._doc_ids(seg.ids)
            got = (seg, SegmentDense(seg))
            with self._lock:
                self._segs[key] = got
        return got

    def deletes(self, root: Path, name: str | None) -> np.ndarray:
        if name is None:
            return np.zeros(0, np.int32)
        key = (str(root), name)
        with self._lock:
            got = self._dels.get(key)
        if got is None:
            got = np.load(root / "del" / name, allow_pickle=False)
            with self._lock:
                self._dels[key] = got
        return got

    def forget(self, root: Path, keep: set[str]) -> None:
        """Drop segments of this collection that the current snapshot no longer uses."""
        with self._lock:
            for key in [k for k in self._segs if k[0] == str(root) and k[1] not in keep]:
                del self._segs[key]
            for key in [k for k in self._dels if k[0] == str(root) and k[1].split("-")[0] not in keep]:
                del self._dels[key]


def load_snapshot(root: Path, name: str, manifest: dict[str, Any], cache: SegmentCache,
                  cfg: IndexSettings) -> Snapshot:
    """Build the retrievers of one snapshot from cached or freshly loaded segments."""
    segs, dense_parts, lives = [], [], []
    for ref in manifest["segments"]:
        seg, dense = cache.segment(root, ref["name"])
        deleted = cache.deletes(root, ref.get("deletes"))
        live = None
        if len(deleted):
            live = np.ones(seg.size, dtype=bool)
            live[deleted] = False
        segs.append(seg)
        lives.append(live)
        dense_parts.append((dense, live))
    cache.forget(root, {s["name"] for s in manifest["segments"]})
    dense_view = DenseView(dense_parts, int(manifest["dim"]), cfg.hnsw_ef_search, cfg.search_threads)
    sparse_view = SparseView(list(zip(segs, lives, strict=True)), k1=cfg.bm25_k1, b=cfg.bm25_b,
                             language=cfg.bm25_language)
    return Snapshot(root, name, manifest, tuple(segs), tuple(lives), dense_view, sparse_view)


def load_current(root: Path, cache: SegmentCache, cfg: IndexSettings, *, embedder_id: str, dim: int,
                  collection: str) -> Snapshot | None:
    """The snapshot CURRENT names (None when there is none); retried if a merge removes files meanwhile."""
    for attempt in range(5):
        name = current_name(root)
        if name is None:
            return None
        try:
            manifest = json.loads((root / name).read_text())
            check_manifest(manifest, embedder_id=embedder_id, dim=dim, collection=collection)
            return load_snapshot(root, name, manifest, cache, cfg)
        except FileNotFoundError:
            if attempt == 4:
                raise
    raise NotFoundError(f"collection {collection!r} has no readable index: run `rag reindex {collection}`")
