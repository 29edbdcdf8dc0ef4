"""Dense recall@10 of the HNSW segment index against exact search, with real-model vectors.

`bench/scale_local.py` measures recall on hash-seeded vectors, which are near-duplicates of each
other (so HNSW cannot separate them); this script asks the question with the real embedding model:
SciFact's corpus vectors as one segment built through `rag.store.segment.build(dense_kind="hnsw")`
with the configured M / efConstruction, the SciFact test queries embedded with the same model, and
the segment searched through `SegmentDense.search` (the code path a search takes) at several
efSearch values, against exact inner product over the same vectors. Latency is per query, the same
run, flat vs HNSW side by side (the machine is shared: read ratios).

`--home` reuses a data home that already holds SciFact in collection `c` (for example the one
`bench/scale_local.py --quality` leaves in /tmp); without it the corpus is ingested first.
Run: `.venv/bin/python bench/hnsw_recall.py [--home DIR] [--ef 16 32 64 128 256]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rag import RAG, SourceText  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.store import segment as sg  # noqa: E402
from rag.store.dense import SegmentDense  # noqa: E402

console = Console()


def corpus_vectors(rag: RAG) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ids and vectors of every live row of collection `c`."""
    snap = rag.store.index("c")
    ids = [s.ids if live is None else s.ids[live] for s, live in zip(snap.segments, snap.live, strict=True)]
    vecs = [np.asarray(s.vectors if live is None else s.vectors[live], np.float32)
            for s, live in zip(snap.segments, snap.live, strict=True)]
    return np.concatenate(ids), np.ascontiguousarray(np.concatenate(vecs))


def measure(seg_dense: SegmentDense, exact: SegmentDense, queries: np.ndarray, ef: int) -> dict[str, float]:
    """Mean recall@10 of `seg_dense` at efSearch=ef against `exact`, and both p50 latencies (ms)."""
    recalls, t_hnsw, t_flat = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        want, _ = exact.search(q, 10, None, ef)
        t1 = time.perf_counter()
        got, _ = seg_dense.search(q, 10, None, ef)
        t2 = time.perf_counter()
        recalls.append(len(set(want.tolist()) & set(got.tolist())) / 10)
        t_flat.append((t1 - t0) * 1000)
        t_hnsw.append((t2 - t1) * 1000)
    return {"recall_at_10": float(np.mean(recalls)), "min_recall_at_10": float(np.min(recalls)),
            "hnsw_p50_ms": float(np.median(t_hnsw)), "flat_p50_ms": float(np.median(t_flat))}


def main() -> None:
    from rag_platform.eval.datasets import load_beir

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--ef", type=int, nargs="*", default=[16, 32, 64, 128, 256])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hnsw_recall.json")
    args = ap.parse_args()
    data = load_beir(REPO.parent / "shared" / "data" / "scifact", "test")
    if args.home is None:
        rag = RAG.open(settings=Settings(home=Path(tempfile.mkdtemp(prefix="hnsw-recall-"))))
        rag.ingest_texts([SourceText(source=d, title=t or None, text=x) for d, (t, x) in data.corpus.items()],
                         collection="c")
        rag.store.wait_background()
    else:
        rag = RAG.open(settings=Settings(home=args.home))
    cfg = rag.settings.index
    ids, vecs = corpus_vectors(rag)
    t0 = time.perf_counter()
    hnsw = sg.build(ids, vecs, [[] for _ in ids], dense_kind="hnsw", hnsw_m=cfg.hnsw_m,
                    ef_construction=cfg.hnsw_ef_construction)
    build_s = time.perf_counter() - t0
    flat = sg.build(ids, vecs, [[] for _ in ids], dense_kind="flat")
    seg_hnsw, seg_flat = SegmentDense(hnsw), SegmentDense(flat)
    queries = np.stack([rag.embedder.encode_query(q) for qid, q in data.queries.items() if qid in data.qrels])
    out: dict[str, Any] = {
        "model": rag.embedder.model_id, "rows": int(len(ids)), "dim": int(vecs.shape[1]), "queries": len(queries),
        "hnsw_m": cfg.hnsw_m, "ef_construction": cfg.hnsw_ef_construction, "default_ef_search": cfg.hnsw_ef_search,
        "hnsw_build_s": build_s, "by_ef_search": {}}
    for ef in args.ef:
        out["by_ef_search"][str(ef)] = measure(seg_hnsw, seg_flat, queries, ef)
    table = Table(title=f"HNSW recall@10 vs exact, {rag.embedder.model_id}, {len(ids):,} SciFact rows, "
                        f"{len(queries)} queries (shared machine: read ratios)")
    for col in ("efSearch", "recall@10", "min recall@10", "HNSW p50 ms", "flat p50 ms"):
        table.add_column(col, justify="right")
    for ef, r in out["by_ef_search"].items():
        table.add_row(ef, f"{r['recall_at_10']:.4f}", f"{r['min_recall_at_10']:.2f}", f"{r['hnsw_p50_ms']:.3f}",
                      f"{r['flat_p50_ms']:.3f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
