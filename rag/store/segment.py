"""One immutable index segment: chunk ids, vectors and BM25 postings, as plain files.

A write batch becomes one small segment; merges fold several into one. Nothing
in a segment changes after it is written: deletions live beside it as sorted
row arrays (`rag.store.index`), so a change costs what it changes.

Layout of `seg/<name>/`:
    ids.npy            int64 chunk ids, ascending (row i is chunk ids[i])
    vectors.npy        float32 (rows, dim), L2-normalised; mmapped on load
    dense.faiss        HNSW graph over the vectors (only for large segments)
    terms.json         the segment's vocabulary, sorted
    post_indptr.npy    CSC column pointers: postings of term t are [indptr[t], indptr[t+1])
    post_rows.npy      int32 rows of each posting
    post_tf.npy        uint16 term frequency of each posting
    doclen.npy         int32 tokens per row (BM25 length normalisation)
    docs.npy           int64 document id of each row (filters map documents to rows with it);
                       segments written before it existed get theirs from the ledger on load
    segment.json       rows, dim, dense kind
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.priority import pause_for_searches
from rag.store.allowed import sorted_unique

# Always written; docs.npy is written whenever the rows' document ids are known (every store write).
FILES = ("ids.npy", "vectors.npy", "terms.json", "post_indptr.npy", "post_rows.npy", "post_tf.npy",
         "doclen.npy", "segment.json")


@dataclass
class Segment:
    """Arrays of one segment; `term_col` maps a term to its postings column."""

    name: str
    ids: np.ndarray
    vectors: np.ndarray
    terms: list[str]
    indptr: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    doclen: np.ndarray
    dense_kind: str = "flat"
    faiss_index: Any = None
    term_col: dict[str, int] = field(default_factory=dict)
    docs: np.ndarray | None = None  # document id per row (-1: chunk no longer in the ledger)

    def __post_init__(self) -> None:
        if not self.term_col:
            self.term_col = {t: i for i, t in enumerate(self.terms)}

    @property
    def size(self) -> int:
        return len(self.ids)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, tf) of one term; empty when the segment never saw it."""
        col = self.term_col.get(term)
        if col is None:
            return np.zeros(0, np.int32), np.zeros(0, np.uint16)
        a, b = int(self.indptr[col]), int(self.indptr[col + 1])
        return self.rows[a:b], self.tf[a:b]

    def rows_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Rows holding these chunk ids (ids not here are dropped); ids are sorted, so a binary search."""
        chunk_ids = np.asarray(chunk_ids, np.int64)
        if not self.size or not len(chunk_ids):
            return np.zeros(0, np.int64)
        pos = np.clip(np.searchsorted(self.ids, chunk_ids), 0, self.size - 1)
        return sorted_unique(pos[self.ids[pos] == chunk_ids])


def postings_from_tokens(docs: list[list[str]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSC postings of tokenised rows: (terms, indptr, rows, tf, doclen). Empty rows count length 1 as bm25s does."""
    lens = [len(d) for d in docs]
    doclen = np.maximum(np.array(lens, dtype=np.int32), 1)
    seen: dict[str, int] = {}  # term -> number in order of first sight
    flat: list[int] = []
    for i, d in enumerate(docs):
        if i % 64 == 0:
            pause_for_searches()  # pure Python: searches in this process go first
        flat.extend([seen.setdefault(t, len(seen)) for t in d])
    terms = sorted(seen)
    to_sorted = np.empty(len(terms), dtype=np.int64)
    to_sorted[[seen[t] for t in terms]] = np.arange(len(terms))
    row = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
    return (terms, *_csc(to_sorted[np.array(flat, dtype=np.int64)], row, len(terms), len(docs)), doclen)


def _csc(term: np.ndarray, row: np.ndarray, n_terms: int, n_rows: int,
         counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group (term, row) pairs into CSC arrays, summing `counts` (default 1) of repeated pairs."""
    key = term * max(n_rows, 1) + row
    if counts is None:
        uniq, tf = np.unique(key, return_counts=True)
    else:  # sort and add runs: np.unique(return_inverse=True) kept the interpreter lock ~40 ms per 2M postings,
        order = np.argsort(key)  # stalling searches beside a merge; this lets go of it, and takes a third of the time
        sorted_key = key[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_key[1:] != sorted_key[:-1]))) if len(key) else \
            np.zeros(0, np.int64)
        uniq = sorted_key[starts]
        tf = np.add.reduceat(np.asarray(counts, np.int64)[order], starts) if len(key) else np.zeros(0, np.int64)
    t = uniq // max(n_rows, 1)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(t, minlength=n_terms), out=indptr[1:])
    return indptr, (uniq % max(n_rows, 1)).astype(np.int32), np.minimum(tf, 65535).astype(np.uint16)


def build(ids: np.ndarray, vectors: np.ndarray, tokens: list[list[str]], *, dense_kind: str,
          hnsw_m: int = 32, ef_construction: int = 80, docs: np.ndarray | None = None) -> Segment:
    """A segment from rows in any order (sorted by chunk id here); `docs`: each row's document id."""
    order = np.argsort(np.asarray(ids, np.int64), kind="stable")
    ids = np.asarray(ids, np.int64)[order]
    vectors = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(len(order), -1)[order])
    terms, indptr, rows, tf, doclen = postings_from_tokens([tokens[i] for i in order])
    seg = Segment(f"s{uuid.uuid4().hex[:16]}", ids, vectors, terms, indptr, rows, tf, doclen, dense_kind,
                  docs=None if docs is None else np.asarray(docs, np.int64)[order])
    if dense_kind == "hnsw" and len(ids):
        seg.faiss_index = _hnsw(vectors, hnsw_m, ef_construction)
    return seg


def merge(parts: list[tuple[Segment, np.ndarray]], *, dense_kind: str, hnsw_m: int = 32,
          ef_construction: int = 80) -> Segment:
    """One segment from the live rows (`live` boolean per row) of several; postings are remapped, not re-analysed."""
    vocab = sorted({t for seg, _ in parts for t in seg.terms})
    col = {t: i for i, t in enumerate(vocab)}
    ids, vecs, lens, t_all, r_all, c_all = [], [], [], [], [], []
    docs: list[np.ndarray] = []  # every part's document ids, or none at all
    base = 0
    for seg, live in parts:
        pause_for_searches()  # a merge runs beside searches in this process: they go first
        new_row = np.full(seg.size, -1, dtype=np.int64)
        new_row[live] = np.arange(base, base + int(live.sum()))
        ids.append(seg.ids[live])
        vecs.append(np.asarray(seg.vectors[live], np.float32))
        lens.append(seg.doclen[live])
        if seg.docs is not None:
            docs.append(seg.docs[live])
        remap = np.array([col[t] for t in seg.terms], dtype=np.int64)
        term_of = np.repeat(remap, np.diff(seg.indptr)) if len(remap) else np.zeros(0, np.int64)
        rows = new_row[seg.rows]
        keep = rows >= 0
        t_all.append(term_of[keep])
        r_all.append(rows[keep])
        c_all.append(seg.tf[keep].astype(np.int64))
        base += int(live.sum())
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    order = np.argsort(all_ids, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    term = np.concatenate(t_all) if t_all else np.zeros(0, np.int64)
    row = inverse[np.concatenate(r_all)] if r_all else np.zeros(0, np.int64)
    used = np.unique(term)  # terms only deleted rows held leave the vocabulary
    vocab, term = [vocab[i] for i in used], np.searchsorted(used, term)
    indptr, rows, tf = _csc(term, row, len(vocab), len(order), np.concatenate(c_all) if c_all else None)
    dim = parts[0][0].vectors.shape[1] if parts else 0
    vectors = np.ascontiguousarray(np.concatenate(vecs)[order]) if vecs else np.zeros((0, dim), np.float32)
    seg = Segment(f"s{uuid.uuid4().hex[:16]}", all_ids[order], vectors, vocab, indptr, rows, tf,
                  np.concatenate(lens)[order] if lens else np.zeros(0, np.int32), dense_kind,
                  docs=np.concatenate(docs)[order] if docs and len(docs) == len(parts) else None)
    if dense_kind == "hnsw" and len(order):
        seg.faiss_index = _hnsw(vectors, hnsw_m, ef_construction)
    return seg


def _hnsw(vectors: np.ndarray, m: int, ef_construction: int) -> Any:
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(vectors)
    return index


def save(seg: Segment, parent: Path) -> Path:
    """Write to a temp folder, fsync every file, rename into place: a crash leaves only a temp folder."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{seg.name}"
    tmp.mkdir()
    try:
        for fname, arr in (("ids.npy", seg.ids), ("vectors.npy", seg.vectors), ("post_indptr.npy", seg.indptr),
                           ("post_rows.npy", seg.rows), ("post_tf.npy", seg.tf), ("doclen.npy", seg.doclen),
                           ("docs.npy", seg.docs)):
            if arr is not None:
                np.save(tmp / fname, arr, allow_pickle=False)
        (tmp / "terms.json").write_text(json.dumps(seg.terms, ensure_ascii=False))
        if seg.faiss_index is not None:
            import faiss

            faiss.write_index(seg.faiss_index, str(tmp / "dense.faiss"))
        (tmp / "segment.json").write_text(json.dumps({"rows": seg.size, "dim": int(seg.vectors.shape[1]),
                                                      "dense": seg.dense_kind}))
        for path in tmp.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        final = parent / seg.name
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(folder: Path) -> Segment:
    """Read a segment; vectors and postings stay memory-mapped.

    The dense search copies the vectors into FAISS once; a BM25 query reads only its own terms'
    postings, so a reader loading another process's merged segment reads its term list and
    small arrays, not its postings (13-40 ms for a 20k-row segment before).
    """
    meta = json.loads((folder / "segment.json").read_text())

    def arr(name: str, mmap: bool = False) -> np.ndarray:
        out: np.ndarray = np.load(folder / name, allow_pickle=False, mmap_mode="r" if mmap else None)
        return out

    faiss_index = None
    if meta["dense"] == "hnsw" and (folder / "dense.faiss").exists():
        import faiss

        faiss_index = faiss.read_index(str(folder / "dense.faiss"))
    return Segment(folder.name, arr("ids.npy"), arr("vectors.npy", mmap=True),
                   json.loads((folder / "terms.json").read_text()), arr("post_indptr.npy"),
                   arr("post_rows.npy", mmap=True), arr("post_tf.npy", mmap=True), arr("doclen.npy"), meta["dense"],
                   faiss_index,
                   docs=arr("docs.npy") if (folder / "docs.npy").exists() else None)
