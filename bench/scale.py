"""Scale-out check on a SciFact subset: PostgreSQL + pgvector against the embedded store, Ray against local.

One run (< 10 min on 2 cores), side by side on the same machine:
  * ingestion throughput: the local engine into the embedded store, and Ray
    Data (local mode, 2 embedding actors) into PostgreSQL; Ray start-up is
    timed apart;
  * dense recall@10 of pgvector HNSW (m=16, ef_construction=64) against exact
    search over the same vectors;
  * nDCG@10 of hybrid (RRF), dense and sparse, PostgreSQL against embedded;
  * query latency p50/p95 of a hybrid search (k=30, query embedding included)
    and of a sparse-only search (k=30: BM25 in the embedded store and in SQL).
Other work shares the CPU here: read the figures as ratios. PostgreSQL comes
from `--db-url` or a pgserver (PostgreSQL 16.2 + pgvector 0.6.2) started in
`--home`. Run: `.venv/bin/python bench/scale.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `python bench/<script>.py` puts bench/ first on sys.path; the checkout goes before it, so that
# `ingest` is the package, not bench/ingest.py.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import text  # noqa: E402

from rag import RAG, SourceText  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag_platform.eval.datasets import load_beir  # noqa: E402
from rag_platform.eval.metrics import ndcg_at_k  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"


def subset(n_docs: int) -> tuple[list[SourceText], dict[str, str], dict[str, dict[str, int]]]:
    """Every document judged for a test query, then corpus order up to `n_docs`."""
    data = load_beir(DATA, "test")
    judged = {d for rel in data.qrels.values() for d in rel}
    ids = [d for d in data.corpus if d in judged] + [d for d in data.corpus if d not in judged]
    keep = ids[:n_docs]
    docs = [SourceText(source=d, title=data.corpus[d][0] or None, text=data.corpus[d][1]) for d in keep]
    kept = set(keep)
    qrels = {q: {d: g for d, g in rel.items() if d in kept} for q, rel in data.qrels.items()}
    return docs, {q: data.queries[q] for q in qrels if qrels[q]}, {q: r for q, r in qrels.items() if r}


def ranked_docs(hits: list[Any]) -> list[str]:
    return list(dict.fromkeys(h.source for h in hits))


def evaluate(stores: dict[str, RAG], queries: dict[str, str], qrels: dict[str, dict[str, int]]
             ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """nDCG@10 per mode and store, hybrid and sparse latency, stores interleaved per query (shared load hits both)."""
    ndcg: dict[str, dict[str, list[float]]] = {m: {n: [] for n in stores} for m in ("hybrid", "dense", "bm25")}
    times: dict[str, dict[str, list[float]]] = {m: {n: [] for n in stores} for m in ("hybrid", "bm25")}
    for qid, q in queries.items():
        for name, rag in stores.items():
            for mode in ndcg:
                t0 = time.perf_counter()
                hits = rag.search(q, collection="s", k=30, mode=mode)
                if mode in times:
                    times[mode][name].append((time.perf_counter() - t0) * 1000)
                ndcg[mode][name].append(ndcg_at_k(ranked_docs(hits), qrels[qid], 10))
    lat = {m: {n: {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95))}
               for n, t in by.items()} for m, by in times.items()}
    return {m: {n: float(np.mean(v)) for n, v in by.items()} for m, by in ndcg.items()}, lat


def hnsw_recall(pg: RAG, queries: dict[str, str]) -> float:
    index = pg.store.index("s")
    with pg.store.sessions() as s:
        rows = s.execute(text("SELECT chunk_id, embedding::text FROM chunk_vectors")).all()
    ids = np.array([r[0] for r in rows])
    mat = np.array([json.loads(r[1]) for r in rows], dtype=np.float32)
    out = []
    for q in queries.values():
        qv = pg.embedder.encode_query(q)
        exact = set(ids[np.argsort(-(mat @ qv))[:10]].tolist())
        got, _ = index.dense.search(qv, 10)
        out.append(len(exact & set(got.tolist())) / 10)
    return float(np.mean(out))


def sparse_desc(pg: RAG) -> str:
    """How the PostgreSQL store ranked sparse candidates in this run."""
    cfg = pg.settings.index
    if cfg.pg_sparse == "bm25":
        return f"OR of analysed terms (GIN), BM25 in SQL (Lucene variant, k1={cfg.bm25_k1}, b={cfg.bm25_b})"
    return "OR of analysed terms (GIN), ts_rank_cd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--db-url", default=os.environ.get("RAG_TEST_DATABASE_URL"))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    home.mkdir(parents=True, exist_ok=True)
    console = Console()
    docs, queries, qrels = subset(args.docs)
    server = None
    if args.db_url is None:
        import pgserver

        server = pgserver.get_server(str(home / "pgdata"), cleanup_mode="stop")
        args.db_url = server.get_uri()
    from rag.store.postgres import pg_url

    local = RAG.open(settings=Settings(home=home / "local"))
    pg = RAG.open(settings=Settings(home=home / "pg", db_url=pg_url(args.db_url)), embedder=local.embedder)
    for name in list(local.store.collection_names()):
        local.delete_collection(name)
    if "s" in pg.store.collection_names():
        pg.delete_collection("s")
    local.embedder.encode(["warm up"])

    t0 = time.perf_counter()
    rep_local = local.ingest_texts(docs, collection="s")
    t_local = time.perf_counter() - t0
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    t_ray_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep_ray = pg.ingest_texts(docs, collection="s", engine="ray", workers=args.workers)
    t_ray = time.perf_counter() - t0
    ray.shutdown()
    assert rep_local.chunks_added == rep_ray.chunks_added, (rep_local.chunks_added, rep_ray.chunks_added)

    print(f"ingest: local {t_local:.0f}s, ray {t_ray:.0f}s (+{t_ray_start:.0f}s start)", flush=True)
    recall = hnsw_recall(pg, queries)
    ndcg, lat = evaluate({"embedded": local, "postgres": pg}, queries, qrels)
    result = {
        "corpus": f"SciFact subset: {len(docs)} docs, {rep_local.chunks_added} chunks; {len(queries)} test queries",
        "ingest": {"local_engine_embedded_store": {"seconds": t_local, "docs_per_s": len(docs) / t_local,
                                                   "chunks": rep_local.chunks_added},
                   "ray_local_mode_postgres": {"seconds": t_ray, "docs_per_s": len(docs) / t_ray,
                                               "workers": args.workers, "ray_start_seconds": t_ray_start,
                                               "chunks": rep_ray.chunks_added},
                   "ray_over_local_speed": t_local / t_ray},
        "dense_recall_at_10_hnsw_vs_exact": recall,
        "ndcg_at_10": ndcg,
        "hybrid_ndcg_gap_postgres_minus_embedded": ndcg["hybrid"]["postgres"] - ndcg["hybrid"]["embedded"],
        "latency_hybrid_k30": lat["hybrid"],
        "latency_bm25_k30": lat["bm25"],
        "pg": {"hnsw_m": 16, "ef_construction": 64, "ef_search": pg.store.manifest(pg.store.collection("s"))[
            "dense"]["ef_search"], "sparse": sparse_desc(pg), "server": "pgserver 0.1.4 "
            "(PostgreSQL 16.2, pgvector 0.6.2) on the same machine, unix socket"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "shared_cpu": True},
    }
    table = Table(title=result["corpus"])
    table.add_column("measure")
    table.add_column("embedded / local")
    table.add_column("PostgreSQL / Ray")
    table.add_row("ingest docs/s", f"{len(docs) / t_local:.1f}", f"{len(docs) / t_ray:.1f} (+{t_ray_start:.0f}s start)")
    table.add_row("dense recall@10 vs exact", "1.000 (flat)", f"{recall:.3f}")
    for mode, v in ndcg.items():
        table.add_row(f"nDCG@10 {mode}", f"{v['embedded']:.4f}", f"{v['postgres']:.4f}")
    for mode, by in lat.items():
        table.add_row(f"{mode} latency p50 / p95 ms", f"{by['embedded']['p50_ms']:.1f} / {by['embedded']['p95_ms']:.1f}",
                      f"{by['postgres']['p50_ms']:.1f} / {by['postgres']['p95_ms']:.1f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    pg.store.engine.dispose()
    if server is not None:
        server.cleanup()


if __name__ == "__main__":
    main()
