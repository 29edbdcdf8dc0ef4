"""Where a filter seen for the first time spends its time, step by step, beside the unfiltered search.

Reads a corpus `bench/scale_local.py --home DIR` built (default: the 1M-chunk one) and only searches
it. For each filter kind, query by query in rotating order (load on shared cores falls on all alike):
  * the whole hybrid search with the filter cache emptied (cold) against the unfiltered search;
  * its steps: the SQL giving document ids, the row masks of every segment, the dense search and the
    BM25 search inside them (masks already built), against the unfiltered dense and BM25 searches.
Run: `.venv/bin/python bench/filter_cost.py --home /work/scale-home/n1000000 [--queries 60]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.scale_local import FILTER_KINDS, VOCAB, HashEmbedder
from rag import RAG, Filters
from rag.config import Settings
from rag.store.allowed import AllowedIds
from rag.store.filter_ids import allowed_document_ids, resolve


def clear_cache(rag: RAG) -> None:
    with rag.store._allowed_lock:
        rag.store._allowed.clear()


def ms(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000, out


def measure(rag: RAG, queries: list[str], kinds: dict[str, Filters | None]) -> dict[str, dict[str, float]]:
    store = rag.store
    coll = store.collection("c")
    snap = store.index("c")
    steps = ("search", "sql", "masks", "dense", "bm25")
    times: dict[str, dict[str, list[float]]] = {k: {s: [] for s in steps} for k in kinds}
    names = list(kinds)
    allowed_n: dict[str, int] = {}
    for n, q in enumerate(queries):
        qv = rag.embedder.encode_query(q)
        r = n % len(names)
        for kind in names[r:] + names[:r]:
            f = kinds[kind]
            clear_cache(rag)
            t = times[kind]
            t["search"].append(ms(lambda f=f, q=q: rag.search(q, collection="c", k=10, mode="hybrid", filters=f))[0])
            allowed = None
            if f is not None:
                with store.sessions() as s:
                    dt, got = ms(lambda s=s, f=f: resolve(s, coll.id, f))
                    if kind not in allowed_n:
                        allowed_n[kind] = len(allowed_document_ids(s, coll.id, f))
                t["sql"].append(dt)
                allowed = AllowedIds(got.ids)
                t["masks"].append(ms(lambda a=allowed: [a.mask(seg) for seg in snap.segments])[0])
            t["dense"].append(ms(lambda a=allowed, qv=qv: snap.dense.search(qv, 100, a))[0])
            t["bm25"].append(ms(lambda a=allowed, q=q: snap.sparse.search(q, 100, a))[0])
    base = float(np.median(times["none"]["search"]))
    out: dict[str, dict[str, float]] = {}
    for kind in names:
        row = {f"{s}_ms": float(np.median(v)) for s, v in times[kind].items() if v}
        row["ratio_p50"] = row["search_ms"] / base
        row["documents_allowed"] = allowed_n.get(kind, -1)
        out[kind] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=Path("/work/scale-home/n1000000"))
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--kinds", nargs="*", default=None, help="filter kinds of bench/scale_local.py (default: all)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rag = RAG.open(settings=Settings(home=args.home), embedder=HashEmbedder())
    queries = [" ".join(VOCAB[j] for j in np.random.default_rng(q).integers(0, 300, 3)) for q in range(args.queries)]
    for q in queries[:10]:
        rag.search(q, collection="c", k=10, mode="hybrid")  # load the snapshot, warm caches
    chosen = {k: FILTER_KINDS[k] for k in (args.kinds or FILTER_KINDS)}
    res = measure(rag, queries, {"none": None, **chosen})
    table = Table(title="cold filter: p50 ms per step (masks built once per filter; same queries, interleaved)")
    for col in ("kind", "docs", "search", "ratio", "sql", "masks", "dense", "bm25"):
        table.add_column(col, justify="right")
    for kind, r in res.items():
        table.add_row(kind, str(r["documents_allowed"]), f"{r['search_ms']:.1f}", f"{r['ratio_p50']:.2f}",
                      *[f"{r[s]:.1f}" if s in r else "-" for s in ("sql_ms", "masks_ms", "dense_ms", "bm25_ms")])
    Console().print(table)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
