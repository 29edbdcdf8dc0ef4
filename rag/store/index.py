"""A collection's index: a folder of plain files, swapped in atomically.

Layout under `<home>/indexes/<collection>/`:
    CURRENT              name of the live version folder (replaced by rename)
    v00000012-1a2b3c/    dense.faiss, bm25/, bm25_ids.npy, manifest.json
A build writes a hidden temp folder, fsyncs it, renames it to its version
name, then replaces CURRENT. Readers see the old version or the new one,
never a half-written one; a crash leaves at most an orphan temp folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import IndexSettings
from rag.errors import IndexMismatchError, NotFoundError
from rag.store.dense import DenseIndex
from rag.store.sparse import SparseIndex

FORMAT_VERSION = 1


@dataclass(frozen=True)
class LoadedIndex:
    folder: Path
    manifest: dict[str, Any]
    dense: DenseIndex
    sparse: SparseIndex

    @property
    def revision(self) -> int:
        return int(self.manifest["ledger_revision"])


def manifest_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def write_index(
    root: Path,
    *,
    ids: np.ndarray,
    vectors: np.ndarray,
    texts: list[str],
    cfg: IndexSettings,
    manifest: dict[str, Any],
) -> tuple[Path, dict[str, Any]]:
    """Build both indexes into a new version folder and make it current."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        dense = DenseIndex.build(ids, vectors, int(manifest["dim"]), cfg)
        sparse = SparseIndex.build(ids, texts, cfg)
        dense.save(tmp)
        sparse.save(tmp)
        full = {
            **manifest,
            "format_version": FORMAT_VERSION,
            "chunks": int(len(ids)),
            "bm25_vocab": sparse.vocab_size,
            "dense": {"kind": cfg.dense, "hnsw_m": cfg.hnsw_m, "ef_search": cfg.hnsw_ef_search},
            "bm25": {"k1": cfg.bm25_k1, "b": cfg.bm25_b, "language": cfg.bm25_language, "engine": "bm25s",
                     "neighbours": cfg.bm25_neighbours},
            "created_at": time.time(),
        }
        (tmp / "manifest.json").write_text(json.dumps(full, indent=2, sort_keys=True))
        _fsync_tree(tmp)
        final = root / f"v{int(manifest['ledger_revision']):08d}-{uuid.uuid4().hex[:6]}"
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".CURRENT-{uuid.uuid4().hex[:8]}"
    pointer.write_text(final.name)
    with open(pointer, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(pointer, root / "CURRENT")
    _collect_garbage(root, keep={final.name})
    return final, full


def _collect_garbage(root: Path, keep: set[str], keep_previous: int = 1) -> None:
    """Drop old versions (one previous kept for readers still loading it) and stale temps."""
    versions = sorted((p for p in root.glob("v*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    old = [p for p in versions if p.name not in keep]
    for path in old[: max(0, len(old) - keep_previous)]:
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".tmp-*"):
        if time.time() - path.stat().st_mtime > 3600:
            shutil.rmtree(path, ignore_errors=True)


def current_folder(root: Path) -> Path | None:
    pointer = root / "CURRENT"
    if not pointer.exists():
        return None
    folder = root / pointer.read_text().strip()
    return folder if folder.is_dir() else None


def read_manifest(root: Path) -> dict[str, Any] | None:
    folder = current_folder(root)
    if folder is None:
        return None
    return dict(json.loads((folder / "manifest.json").read_text()))


def embedder_env(embedder_id: str) -> str:
    """The settings that select the embedder with this id (`model#backend` for other backends)."""
    model, _, backend = embedder_id.partition("#")
    return f"RAG_EMBEDDER__MODEL={model} RAG_EMBEDDER__BACKEND={backend or 'sentence-transformers'}"


def load_index(root: Path, *, embedder_id: str, dim: int, collection: str,
               search_threads: int = 1) -> LoadedIndex:
    """Load the current version, refusing one built for another vector space."""
    folder = current_folder(root)
    if folder is None:
        raise NotFoundError(f"collection {collection!r} has no index yet: run `rag ingest PATH --collection {collection}`")
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"index {folder} has format {manifest.get('format_version')}, this version reads "
            f"{FORMAT_VERSION}: run `rag reindex {collection}`"
        )
    if manifest["embedder_id"] != embedder_id or int(manifest["dim"]) != dim:
        raise IndexMismatchError(
            f"collection {collection!r} was indexed with embedder {manifest['embedder_id']!r} "
            f"(dim {manifest['dim']}) but the configured embedder is {embedder_id!r} (dim {dim}): "
            f"set {embedder_env(manifest['embedder_id'])} or run `rag reindex {collection}` "
            f"to re-embed with the new model"
        )
    dense = DenseIndex.load(folder, manifest["dense"]["kind"], int(manifest["dense"]["ef_search"]), search_threads)
    sparse = SparseIndex.load(folder)
    return LoadedIndex(folder, manifest, dense, sparse)
