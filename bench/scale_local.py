"""The embedded store at scale: what one change costs, search latency, recall, memory and disk per chunk.

Size figures use a *hash-seeded* embedder (bag-of-words random projection: a word's vector is
seeded by its hash, a text's vector is the normalised sum), so only the ledger and the index
are timed and texts that share words still land near each other. For each size:
  * add one document, replace one, delete one (median of 5, through `RAG.ingest_texts` /
    `write_batch`, i.e. ledger transaction + new segment + tombstones + snapshot publish);
  * hybrid search p50/p99 (k=10, query embedding included), a repeated filter and a filter seen for the
    first time (measured query by query beside the unfiltered search), each filter kind (tags, media type,
    metadata, source glob by prefix and by suffix, dates, document ids, a combination) against the unfiltered
    p50 with the filter cache emptied before every search, and dense recall@10 of the index against exact
    search over the same vectors (hash vectors: see bench/hnsw_recall.py for real ones);
  * search p99 while a 10k-chunk ingest runs into the same collection, against idle p99;
  * RSS and disk bytes per chunk.
Quality (`--quality`, the real model): SciFact test nDCG@10 of the default search and of BM25
with the segmented index against the previous single bm25s index, same run, same vectors.
Other work shares the CPU here: read latencies as ratios. Run:
`.venv/bin/python bench/scale_local.py --sizes 10000 100000 [--quality]`; for 1M chunks
`--sizes 10000 1000000 --home DIR` keeps the built corpus in DIR, so a rerun measures without rebuilding.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rag import RAG, Filters, SourceText  # noqa: E402
from rag.config import IngestSettings, Settings  # noqa: E402

WORD = re.compile(r"\w+")
VOCAB = [f"w{i}" for i in range(20_000)]
console = Console()


class HashEmbedder:
    """Deterministic stand-in for a model: each word's vector is seeded by its CRC32."""

    model_id, dim, max_tokens = "bench/hash-seeded-bow", 384, 256

    def __init__(self) -> None:
        self._words: dict[str, np.ndarray] = {}
        self._vocab = np.stack([self._word(w) for w in VOCAB])  # the synthetic corpus's words, looked up in bulk
        self._row = {w: i for i, w in enumerate(VOCAB)}

    def _word(self, w: str) -> np.ndarray:
        v = self._words.get(w)
        if v is None:
            v = np.random.default_rng(zlib.crc32(w.encode())).standard_normal(self.dim).astype(np.float32)
            self._words[w] = v
        return v

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(WORD.findall(t)) for t in texts]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in WORD.finditer(text)]

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):  # a model spends its time outside the interpreter: keep Python work small
            words = WORD.findall(t.lower())[:256]
            rows = [self._row.get(w, -1) for w in words]
            known = [r for r in rows if r >= 0]
            out[i] = self._vocab[known].sum(axis=0) if known else 0.0
            for w, r in zip(words, rows, strict=True):
                if r < 0:
                    out[i] += self._word(w)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def make_doc(i: int, version: int = 0, words: int = 900) -> SourceText:
    """About four 240-token chunks of Zipf-distributed words; even docs tagged 'even', every fourth one Markdown,
    ten teams, `modified` spread over 2015-2024 (what the filter kinds select)."""
    rng = np.random.default_rng(i * 7919 + version)
    ids = np.minimum(rng.zipf(1.2, words) - 1, len(VOCAB) - 1)
    text = " ".join(VOCAB[j] for j in ids)
    return SourceText(source=f"doc{i:07d}", title=None, text=text,
                      media_type="text/markdown" if i % 4 == 0 else "text/plain",
                      metadata={"tags": ["even" if i % 2 == 0 else "odd"], "team": f"t{i % 10}",
                                "modified": f"{2015 + (i // 3) % 10}-06-01T00:00:00+00:00"})


FILTER_KINDS = {  # tags, media type, metadata: field_bits blocks; the others an SQL index (rag.store.filter_ids)
    "tags": Filters(tags=("even",)),
    "media_type": Filters(media_types=("text/markdown",)),
    "metadata": Filters(metadata=(("team", "t3"),)),
    "glob_prefix": Filters(source_glob="doc0001*"),
    "glob_suffix": Filters(source_glob="*7"),
    "modified_after": Filters(modified_after=datetime(2020, 1, 1, tzinfo=UTC)),
    "modified_between": Filters(modified_after=datetime(2017, 1, 1, tzinfo=UTC),
                                modified_before=datetime(2019, 1, 1, tzinfo=UTC)),
    "document_ids": Filters(document_ids=tuple(range(1, 201, 4))),
    "combined": Filters(tags=("even",), media_types=("text/markdown",),
                        modified_after=datetime(2020, 1, 1, tzinfo=UTC)),
}


def by_filter_kind(rag: RAG, queries: list[str]) -> dict[str, dict[str, float]]:
    """Hybrid p50 under each filter kind against the unfiltered p50, query by query in rotating order (load on the
    shared cores falls on all alike). The store's filter cache is emptied before every search, so each filtered
    search runs its SQL and builds its row masks (a filter seen for the first time: the worst case)."""
    kinds: list[tuple[str, Filters | None]] = [("none", None), *FILTER_KINDS.items()]
    times: dict[str, list[float]] = {k: [] for k, _ in kinds}
    for n, q in enumerate(queries):
        r = n % len(kinds)
        for kind, f in kinds[r:] + kinds[:r]:
            with rag.store._allowed_lock:  # noqa: SLF001 - a benchmark of the uncached path
                rag.store._allowed.clear()  # noqa: SLF001
            times[kind].extend(latencies(rag, [q], filters=f).tolist())
    from sqlalchemy import func, select

    from rag.store.ledger import Document

    coll = rag.store.collection("c")
    with rag.store.sessions() as s:
        docs = int(s.scalar(select(func.count()).select_from(Document).where(
            Document.collection_id == coll.id, Document.status == "ok")) or 0)
    from rag.store.filter_ids import allowed_document_ids

    none = float(np.percentile(times["none"], 50))
    out: dict[str, dict[str, float]] = {"none": {"p50_ms": none, "ratio_p50": 1.0}}
    for kind, f in FILTER_KINDS.items():
        p50 = float(np.percentile(times[kind], 50))
        with rag.store.sessions() as s:
            allowed = len(allowed_document_ids(s, coll.id, f))
        out[kind] = {"p50_ms": p50, "p99_ms": float(np.percentile(times[kind], 99)), "ratio_p50": p50 / none,
                     "documents_allowed": allowed, "share": allowed / max(docs, 1)}
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def disk_bytes(home: Path) -> dict[str, int]:
    idx = sum(p.stat().st_size for p in (home / "indexes").rglob("*") if p.is_file())
    db = sum(p.stat().st_size for p in home.glob("rag.db*") if p.is_file())
    return {"index": idx, "sqlite": db}


def latencies(rag: RAG, queries: list[str], filters: Any = None) -> np.ndarray:
    """Milliseconds per hybrid search; `filters` may be a function of the query's number."""
    out = []
    for n, q in enumerate(queries):
        f = filters(n) if callable(filters) else filters
        t0 = time.perf_counter()
        rag.search(q, collection="c", k=10, mode="hybrid", filters=f)
        out.append((time.perf_counter() - t0) * 1000)
    return np.array(out)


def side_by_side(rag: RAG, queries: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: unfiltered, a repeated filter (half the documents), and a filter never seen before (the
    same half, a new cache key: the SQL runs each time), in rotating order, so load on the shared cores
    falls on all three alike and their ratios hold."""
    even = Filters(tags=("even",))
    latencies(rag, queries[:5], filters=even)  # the repeated filter is resolved once, as a UI facet would be
    out: dict[str, list[float]] = {"none": [], "repeated": [], "new": []}
    for n, q in enumerate(queries):
        kinds = [("none", None), ("repeated", even), ("new", Filters(tags=("even", f"absent{n}")))]
        for kind, f in kinds[n % 3:] + kinds[:n % 3]:
            out[kind].extend(latencies(rag, [q], filters=f).tolist())
    return np.array(out["none"]), np.array(out["repeated"]), np.array(out["new"])


def median_s(fn: Any, n: int = 5) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def recall_at_10(rag: RAG, queries: list[str]) -> float:
    snap = rag.store.index("c")
    segs = [(s.ids if live is None else s.ids[live], np.asarray(s.vectors if live is None else s.vectors[live]))
            for s, live in zip(snap.segments, snap.live, strict=True)]
    ids = np.concatenate([a for a, _ in segs])
    vecs = np.concatenate([v for _, v in segs])
    hits = []
    for q in queries:
        qv = rag.embedder.encode_query(q)
        exact = set(ids[np.argsort(-(vecs @ qv))[:10]].tolist())
        got = set(snap.dense.search(qv, 10)[0].tolist())
        hits.append(len(exact & got) / 10)
    return float(np.mean(hits))


def bulk_load(rag: RAG, n_chunks: int, per_batch: int = 500) -> int:
    """The initial corpus through `LocalStore.write_batch` (ledger + segments, as ingest writes them) with
    pre-cut 225-word chunks and vectors embedded in bulk: the chunker is not what this benchmark measures."""
    from rag.contextual import index_text
    from rag.store.local import DocumentWrite, text_hash
    from rag.types import ChunkDraft

    coll = rag.store.collection("c", create=True)
    header = rag.settings.chunking.context_header
    emb = rag.embedder
    done, i = 0, 0
    while done < n_chunks:
        writes = []
        for j in range(i, i + per_batch):
            d = make_doc(j)
            words = d.text.split(" ")
            chunks, pos = [], 0
            for o, a in enumerate(range(0, len(words), 225)):
                piece = " ".join(words[a:a + 225])
                chunks.append(ChunkDraft(ordinal=o, text=piece, char_start=pos, char_end=pos + len(piece),
                                         token_count=len(words[a:a + 225])))
                pos += len(piece) + 1
            texts = [index_text(d.title, (), c.text, header=header) for c in chunks]
            vecs = emb.encode(texts)
            writes.append(DocumentWrite(source=d.source, content_hash=text_hash(d.text), media_type=d.media_type,
                                        size_bytes=len(d.text), title=d.title, metadata=d.metadata, chunks=chunks,
                                        vectors={text_hash(t): v for t, v in zip(texts, vecs, strict=True)}))
            done += len(chunks)
        rag.store.write_batch(coll, writes)
        i += per_batch
    return i


def _compacted(rag: RAG, queries: list[str], res: dict[str, Any]) -> None:
    """The same searches after `rag compact` (one segment)."""
    t0 = time.perf_counter()
    rag.store.compact("c")
    res["compact_s"] = time.perf_counter() - t0
    snap = rag.store.index("c")
    res["dense_kind_after_compact"] = snap.manifest["segments"][0]["dense"]
    lat, flat, fresh = side_by_side(rag, queries)
    res["compacted_hybrid_p50_ms"], res["compacted_hybrid_p99_ms"] = (float(np.percentile(lat, 50)),
                                                                      float(np.percentile(lat, 99)))
    res["compacted_filtered_ratio_p50"] = float(np.percentile(flat, 50)) / res["compacted_hybrid_p50_ms"]
    res["compacted_new_filter_ratio_p50"] = float(np.percentile(fresh, 50)) / res["compacted_hybrid_p50_ms"]
    res["compacted_dense_recall_at_10"] = recall_at_10(rag, queries[:100])
    res["compacted_filter_kinds"] = by_filter_kind(rag, queries[:100])


def measure(n_chunks: int, base: Path, compact: bool = True) -> dict[str, Any]:
    home = base / f"n{n_chunks}"
    rag = RAG.open(settings=Settings(home=home, ingest=IngestSettings(batch_files=256)), embedder=HashEmbedder())
    rss0 = rss_mb()
    built = home / "bulk.json"  # with --home, a built corpus is kept and measured again on the next run
    if built.is_file():
        i, build_s = json.loads(built.read_text())["docs"], json.loads(built.read_text())["build_s"]
    else:
        t0 = time.perf_counter()
        i = bulk_load(rag, n_chunks)
        build_s = time.perf_counter() - t0
        built.write_text(json.dumps({"docs": i, "build_s": build_s}))
    rag.store.wait_background()
    chunks = rag.store.chunk_count("c")
    queries = [" ".join(VOCAB[j] for j in np.random.default_rng(q).integers(0, 300, 3)) for q in range(200)]
    coll = rag.store.collection("c")
    res: dict[str, Any] = {"chunks": chunks, "docs": i, "build_s": build_s}
    restore(rag)  # a kept corpus as it was built, whatever an earlier run left (else its changes are skips)
    res["add_one_s"] = median_s(lambda k: rag.ingest_texts([make_doc(10**6 + k)], collection="c"))
    res["replace_one_s"] = median_s(lambda k: rag.ingest_texts([make_doc(k, version=1)], collection="c"))
    res["delete_one_s"] = median_s(lambda k: rag.store.write_batch(coll, [], removed=[f"doc{100 + k:07d}"]))
    restore(rag)
    rag.store.wait_background()
    res["segments_before_compact"] = len(rag.store.index("c").segments)
    latencies(rag, queries[:20])  # warm the snapshot and caches
    lat, flat, fresh = side_by_side(rag, queries)
    res["hybrid_p50_ms"], res["hybrid_p99_ms"] = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    res["filtered_p50_ms"] = float(np.percentile(flat, 50))
    res["filtered_ratio_p50"] = res["filtered_p50_ms"] / res["hybrid_p50_ms"]
    res["filtered_new_filter_p50_ms"] = float(np.percentile(fresh, 50))
    res["filtered_new_filter_p99_ms"] = float(np.percentile(fresh, 99))
    res["filtered_new_filter_ratio_p50"] = res["filtered_new_filter_p50_ms"] / res["hybrid_p50_ms"]
    res["dense_recall_at_10"] = recall_at_10(rag, queries[:100])
    res["filter_kinds"] = by_filter_kind(rag, queries[:100])
    if compact:
        _compacted(rag, queries, res)
    res.update(concurrent(rag, home, queries, start=2 * 10**6))
    restore(rag)
    rag.store.wait_background()
    res["rss_mb"] = rss_mb()
    res["rss_bytes_per_chunk"] = (res["rss_mb"] - rss0) * 2**20 / chunks
    rag.store.engine.dispose()
    disk = disk_bytes(home)
    res["disk_bytes_per_chunk"] = {k: v / chunks for k, v in disk.items()}
    return res


def restore(rag: RAG) -> None:
    """Undo what `measure` changes (added, replaced, deleted documents; the during-ingest ones), so that a
    corpus kept with --home measures real changes on the next run instead of skipping unchanged texts."""
    coll = rag.store.collection("c")
    extra = [f"doc{i:07d}" for i in (*range(10**6, 10**6 + 5), *range(2 * 10**6, 2 * 10**6 + 2500))]
    rag.store.write_batch(coll, [], removed=extra)
    rag.ingest_texts([make_doc(k) for k in (*range(5), *range(100, 105))], collection="c")  # skips when unchanged


def concurrent(rag: RAG, home: Path, queries: list[str], start: int) -> dict[str, float]:
    """Search p99 while ~10k chunks are ingested into the same collection, against idle p99: from a thread of
    this process (a library user doing both) and from a second process at the priority the server gives its
    ingestion process (`api.ingest_nice`: how `rag serve` ingests uploads)."""
    from bench.ingest_beside_search import beside_process
    from rag_platform.apps.uploads import ApiSettings

    idle = latencies(rag, queries)
    busy: list[float] = []
    done = threading.Event()

    docs = [make_doc(start + j) for j in range(2500)]  # made first: the ingest, not the synthesis, runs beside searches

    def ingest() -> None:
        try:
            for b in range(0, 2500, 250):
                rag.ingest_texts(docs[b:b + 250], collection="c")
        finally:
            done.set()

    thread = threading.Thread(target=ingest)
    thread.start()
    while not done.is_set():
        busy.extend(latencies(rag, queries[:20]).tolist())
    thread.join()
    idle = np.r_[idle, latencies(rag, queries)]
    nice = ApiSettings().ingest_nice
    other = beside_process(rag, home, queries, nice)
    idle = np.r_[idle, latencies(rag, queries)]
    idle_p99, busy_p99, other_p99 = (float(np.percentile(v, 99)) for v in (idle, busy, other))
    return {"idle_p99_ms": idle_p99, "during_ingest_p99_ms": busy_p99, "during_ingest_ratio_p99": busy_p99 / idle_p99,
            "during_ingest_searches": len(busy), "during_ingest_process_nice": nice,
            "during_ingest_process_p99_ms": other_p99, "during_ingest_process_ratio_p99": other_p99 / idle_p99,
            "during_ingest_process_searches": len(other)}


def quality(home: Path | None = None) -> dict[str, Any]:
    """SciFact test nDCG@10 with the real model: segmented index (ingested in small batches) vs one bm25s index.

    `home`: a data home where this function's ingest of SciFact into collection `c` was stopped part-way
    (embedding the corpus takes long on loaded cores); the corpus is then the documents it holds, and the
    queries are those with a relevant document among them (the others' documents are distractors)."""
    from sqlalchemy import select

    from rag.config import IndexSettings
    from rag.contextual import ChunkRow, sparse_texts
    from rag.retrieve import RetrievalRequest, retrieve
    from rag.store.ledger import Chunk, Document
    from rag.store.sparse import SparseIndex
    from rag_platform.eval.datasets import load_beir
    from rag_platform.eval.metrics import ndcg_at_k

    data = load_beir(REPO.parent / "shared" / "data" / "scifact", "test")
    subset = home is not None
    home = home or Path(tempfile.mkdtemp(prefix="scale-local-q-"))
    rag = RAG.open(settings=Settings(home=home, ingest=IngestSettings(batch_files=64)))
    if not subset:
        rag.ingest_texts([SourceText(source=d, title=t or None, text=x) for d, (t, x) in data.corpus.items()],
                         collection="c")
    rag.store.wait_background()
    snap = rag.store.index("c")
    coll = rag.store.collection("c")
    with rag.store.sessions() as s:
        rows = s.execute(select(Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.text, Document.title,
                                Chunk.heading_path).join(Document).where(Chunk.collection_id == coll.id)
                         .order_by(Chunk.id)).all()
        docs = set(s.scalars(select(Document.source_uri).where(Document.collection_id == coll.id,
                                                               Document.status == "ok")))
    cfg: IndexSettings = rag.settings.index
    texts = sparse_texts([ChunkRow(r[0], r[1], r[2], r[3], r[4], tuple(r[5] or ())) for r in rows],
                         neighbours=cfg.bm25_neighbours, header=rag.settings.chunking.context_header)
    ref = SparseIndex.build(np.array([r[0] for r in rows], np.int64), texts, cfg)

    class RefIndex:
        dense, sparse, revision = snap.dense, ref, snap.revision

    class RefStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(rag.store, name)

        def index(self, name: str) -> Any:
            return RefIndex()

    qrels = {q: rel for q, rel in data.qrels.items() if any(d in docs for d in rel)}
    out: dict[str, Any] = {"segments": len(snap.segments), "chunks": snap.sparse.size, "documents": len(docs),
                           "queries": len(qrels), "subset": subset}
    queries = [(qid, q) for qid, q in data.queries.items() if qid in qrels]
    for _qid, q in queries:  # every query vector in the embedder's cache first: both arms time retrieval alone
        rag.embedder.encode_query(q)
    arms = (("segments", rag.store), ("bm25s_single", RefStore()))
    for mode in ("hybrid", "bm25"):
        scores: dict[str, list[float]] = {label: [] for label, _ in arms}
        times: dict[str, list[float]] = {label: [] for label, _ in arms}
        for n, (qid, q) in enumerate(queries):
            req = RetrievalRequest.make(q, "c", rag.settings.retrieval, rag.settings.rerank, k=10, mode=mode)
            for label, store in arms if n % 2 else arms[::-1]:  # side by side, in alternating order
                t0 = time.perf_counter()
                hits = retrieve(req, store, rag.embedder)
                times[label].append((time.perf_counter() - t0) * 1000)
                scores[label].append(ndcg_at_k(list(dict.fromkeys(h.source for h in hits)), qrels[qid], 10))
        for label, _ in arms:
            out[f"{label}_{mode}_ndcg10"] = float(np.mean(scores[label]))
            out[f"{label}_{mode}_p50_ms"] = float(np.percentile(times[label], 50))
    for mode in ("hybrid", "bm25"):
        out[f"{mode}_ndcg_diff"] = out[f"segments_{mode}_ndcg10"] - out[f"bm25s_single_{mode}_ndcg10"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--quality", action="store_true", help="also SciFact nDCG@10 with the real model")
    ap.add_argument("--quality-home", type=Path, default=None,
                    help="--quality over the SciFact documents a stopped --quality run left in this data home")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale_local.json")
    ap.add_argument("--home", type=Path, default=None,
                    help="keep each size's built corpus here and reuse it on the next run (the 1M build takes long)")
    ap.add_argument("--no-compact", action="store_true", help="skip the full compaction and its searches")
    args = ap.parse_args()
    results: dict[str, Any] = {"embedder": "hash-seeded bag-of-words (size figures only; quality uses the real model)",
                               "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="scale-local-") as tmp:
        for n in args.sizes:
            console.print(f"building {n:,} chunks ...")
            results["sizes"][str(n)] = measure(n, args.home or Path(tmp), compact=not args.no_compact)
            console.print(results["sizes"][str(n)])
    if args.quality:
        results["scifact"] = quality(args.quality_home)
    if not results["sizes"]:
        console.print(results.get("scifact"))
        args.out.write_text(json.dumps(results, indent=2))
        return
    table = Table(title="embedded store at scale (hash-seeded embedder; ratios, shared 2-core machine)")
    table.add_column("metric")
    for n in results["sizes"]:
        table.add_column(f"{int(n):,}", justify="right")
    keys = [k for k in next(iter(results["sizes"].values())) if not isinstance(
        next(iter(results["sizes"].values()))[k], dict)]
    for k in keys:
        table.add_row(k, *[f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for r in results["sizes"].values()])
    console.print(table)
    kinds = Table(title="hybrid search p50 under each filter kind / unfiltered p50 (cold filter cache: the SQL runs "
                        "every search; target <= 2)")
    kinds.add_column("filter kind")
    for n in results["sizes"]:
        kinds.add_column(f"{int(n):,} ms", justify="right")
        kinds.add_column(f"{int(n):,} ratio", justify="right")
        kinds.add_column(f"{int(n):,} compacted ratio", justify="right")
    for kind in ["none", *FILTER_KINDS]:
        row = [kind]
        for r in results["sizes"].values():
            k, c = r["filter_kinds"][kind], r.get("compacted_filter_kinds", {}).get(kind)
            row += [f"{k['p50_ms']:.2f}", f"{k['ratio_p50']:.2f}", f"{c['ratio_p50']:.2f}" if c else "-"]
        kinds.add_row(*row)
    console.print(kinds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    if "scifact" in results:
        console.print(results["scifact"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
