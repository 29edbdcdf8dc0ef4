"""Retrieval quality and latency on SciFact, ours against LangChain's EnsembleRetriever.

Builds the SciFact corpus (5,183 abstracts) through the real ingest pipeline
(or reuses `--home` if it already holds it: re-ingesting unchanged text is a
no-op), then on the 300 test queries, in one run:
  * nDCG@10, Recall@100, MRR@10 for bm25, dense, hybrid-RRF, hybrid-convex,
    and hybrid + rerank when a cross-encoder is given (`--reranker PATH`);
  * the same chunks and vectors through LangChain's EnsembleRetriever
    (BM25Retriever + a FAISS vector store): quality and per-query latency;
  * fusion parameters tuned on the *train* qrels, reported on test;
  * rerank latency for the top 20 with a MiniLM-L6 cross-encoder architecture.
Documents are ranked by their best chunk. Run: `.venv/bin/python bench/retrieval.py`.
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
from sqlalchemy import select  # noqa: E402

from rag import RAG  # noqa: E402
from rag.config import RetrievalSettings  # noqa: E402
from rag.retrieve import RetrievalRequest, fuse, run_retrievers  # noqa: E402
from rag.store.ledger import Chunk  # noqa: E402
from rag_platform.eval.datasets import load_beir  # noqa: E402
from rag_platform.eval.metrics import dedupe, evaluate_run  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"
console = Console()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def chunk_to_doc(rag: RAG) -> dict[int, str]:
    """chunk id -> its document's source, through the store's ledger (any store)."""
    ledger = rag.store.ledger
    return {c.id: d.source_uri for d in ledger.documents("scifact") for c in ledger.document_chunks("scifact", d.id)}


def base_runs(rag: RAG, queries: dict[str, str], fetch_k: int) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Each query's dense and bm25 (ids, scores), computed once and fused many ways."""
    index = rag.store.index("scifact")
    out = {}
    for qid, text in queries.items():
        req = RetrievalRequest.make(text, "scifact", rag.settings.retrieval, k=fetch_k, fetch_k=fetch_k)
        out[qid] = run_retrievers(req, index, rag.embedder, None)
    return out


def doc_run(runs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], c2d: dict[int, str], mode: str,
            fusion: str = "rrf", rrf_k: int = 60, dense_weight: float = 0.5,
            normalization: str = "zero") -> dict[str, list[str]]:
    out = {}
    for qid, r in runs.items():
        sub = {m: r[m] for m in (("dense", "bm25") if mode == "hybrid" else (mode,))}
        req = RetrievalRequest.make("x", "scifact", RetrievalSettings(), k=10, mode=mode, fusion=fusion,
                                    rrf_k=rrf_k, dense_weight=dense_weight, normalization=normalization)
        ids, _ = fuse(req, sub)
        out[qid] = dedupe([c2d[int(c)] for c in ids])
    return out


def tune(train_runs: Any, c2d: dict[int, str], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Grid search on train: RRF k, and the convex dense weight."""
    rrf = {k: evaluate_run(doc_run(train_runs, c2d, "hybrid", "rrf", rrf_k=k), qrels)["ndcg@10"]
           for k in (5, 10, 20, 40, 60, 100)}
    convex = {w: evaluate_run(doc_run(train_runs, c2d, "hybrid", "convex", dense_weight=w), qrels)["ndcg@10"]
              for w in [round(x * 0.1, 1) for x in range(11)]}
    return {"rrf_k": max(rrf, key=rrf.get), "dense_weight": max(convex, key=convex.get),
            "train_ndcg10_by_rrf_k": rrf, "train_ndcg10_by_dense_weight": convex}


def langchain_ensemble(rag: RAG, fetch_k: int) -> Any:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_core.embeddings import Embeddings

    from rag.store.sparse import analyze

    class Wrapped(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return rag.embedder.encode(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return rag.embedder.encode_query(text).tolist()

    with rag.store.sessions() as s:
        rows = s.execute(select(Chunk.id, Chunk.text, Chunk.text_hash).order_by(Chunk.id)).all()
    vectors = rag.store.cached_vectors(r[2] for r in rows)
    metas = [{"chunk_id": r[0]} for r in rows]
    texts = [r[1] for r in rows]
    bm25 = BM25Retriever.from_texts(texts, metadatas=metas, preprocess_func=analyze, k=fetch_k,
                                    bm25_params={"k1": 1.2, "b": 0.75})
    store = FAISS.from_embeddings([(t, vectors[r[2]].tolist()) for t, r in zip(texts, rows)], Wrapped(),
                                  metadatas=metas, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
    dense = store.as_retriever(search_kwargs={"k": fetch_k})
    return EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5])


def timed(fn: Any, items: list[str]) -> tuple[list[Any], list[float]]:
    outs, secs = [], []
    for q in items:
        t = time.perf_counter()
        outs.append(fn(q))
        secs.append(time.perf_counter() - t)
    return outs, secs


def rerank_latency(rag: RAG, queries: list[str], path: str | None) -> dict[str, Any]:
    """p50 of reranking the fused top 20; with no weights, a MiniLM-L6 cross-encoder of random head."""
    from rag.config import RerankSettings
    from rag.rerank import CrossEncoderReranker

    note = "real cross-encoder"
    if path is None:
        from transformers import AutoTokenizer, BertForSequenceClassification

        from rag.embed import resolve_model_path

        src = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
        path = tempfile.mkdtemp(prefix="ce-arch-")
        BertForSequenceClassification.from_pretrained(src, num_labels=1).save_pretrained(path)
        AutoTokenizer.from_pretrained(src).save_pretrained(path)
        note = "MiniLM-L6 architecture with an untrained head: latency only (no weights offline)"
    rr = CrossEncoderReranker(RerankSettings(model=path, depth=20))
    hits = [rag.search(q, collection="scifact", k=20) for q in queries]
    rr.rerank(queries[0], hits[0])
    _, secs = timed(lambda i: rr.rerank(queries[int(i)], hits[int(i)]), [str(i) for i in range(len(queries))])
    return {"p50_s": pct(secs, 50), "p95_s": pct(secs, 95), "depth": 20, "note": note, "reranker": rr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=REPO / ".bench-home")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieval.json")
    ap.add_argument("--fetch-k", type=int, default=100)
    ap.add_argument("--reranker", help="Path of a cross-encoder (e.g. ms-marco-MiniLM-L-6-v2) for quality.")
    ap.add_argument("--limit-queries", type=int, default=None)
    args = ap.parse_args()

    test, train = load_beir(DATA, "test"), load_beir(DATA, "train")
    rag = RAG.open(args.home)
    t = time.perf_counter()
    report = rag.ingest_texts(test.source_texts(), collection="scifact")
    console.print(f"corpus ready: {report.summary()} in {time.perf_counter() - t:.0f}s")
    c2d = chunk_to_doc(rag)
    tq = dict(list(test.queries.items())[: args.limit_queries]) if args.limit_queries else test.queries
    qrels = {q: test.qrels[q] for q in tq}

    train_q = dict(list(train.queries.items())[: args.limit_queries or len(train.queries)])
    tuned = tune(base_runs(rag, train_q, args.fetch_k), c2d, train.qrels)
    runs = base_runs(rag, tq, args.fetch_k)
    rows: dict[str, dict[str, float]] = {
        "bm25": evaluate_run(doc_run(runs, c2d, "bm25"), qrels),
        "dense": evaluate_run(doc_run(runs, c2d, "dense"), qrels),
        "hybrid-rrf (k=60)": evaluate_run(doc_run(runs, c2d, "hybrid", "rrf", rrf_k=60), qrels),
        f"hybrid-rrf (k={tuned['rrf_k']}, tuned)": evaluate_run(
            doc_run(runs, c2d, "hybrid", "rrf", rrf_k=tuned["rrf_k"]), qrels),
        "hybrid-convex (w=0.5)": evaluate_run(doc_run(runs, c2d, "hybrid", "convex", dense_weight=0.5), qrels),
        "hybrid-convex min-max (w=0.5)": evaluate_run(
            doc_run(runs, c2d, "hybrid", "convex", dense_weight=0.5, normalization="minmax"), qrels),
        f"hybrid-convex (w={tuned['dense_weight']}, tuned)": evaluate_run(
            doc_run(runs, c2d, "hybrid", "convex", dense_weight=tuned["dense_weight"]), qrels),
    }

    texts = list(tq.values())
    rag.search(texts[0], collection="scifact", k=10)
    # Cold: every query embedded (query cache off), which both sides pay alike. Warm: query vectors
    # cached (both sides call the same embedder), so the figure is the retrieval itself.
    emb = rag.embedder
    emb.settings.query_cache, cache_size = 0, emb.settings.query_cache
    emb.queries.clear()
    _, ours_cold = timed(lambda q: rag.search(q, collection="scifact", k=10), texts)
    emb.settings.query_cache = cache_size
    for q in texts:
        emb.encode_query(q)
    _, ours_secs = timed(lambda q: rag.search(q, collection="scifact", k=10), texts)
    ens = langchain_ensemble(rag, args.fetch_k)
    lc_out, lc_secs = timed(ens.invoke, texts)  # warm: the vectors cached above
    emb.settings.query_cache = 0
    emb.queries.clear()
    _, lc_cold = timed(ens.invoke, texts)
    emb.settings.query_cache = cache_size
    lc_run = {qid: dedupe([c2d[d.metadata["chunk_id"]] for d in docs]) for qid, docs in zip(tq, lc_out)}
    rows["langchain EnsembleRetriever"] = evaluate_run(lc_run, qrels)

    rr = rerank_latency(rag, texts[:50], args.reranker)
    if args.reranker:
        rr_run = {}
        for qid, q in tq.items():
            hits = rr["reranker"].rerank(q, rag.search(q, collection="scifact", k=100), depth=20)
            rr_run[qid] = dedupe([h.source for h in hits])
        rows["hybrid + rerank@20"] = evaluate_run(rr_run, qrels)
    rr.pop("reranker")

    latency = {"ours_hybrid_p50_ms": 1000 * pct(ours_secs, 50), "ours_hybrid_p95_ms": 1000 * pct(ours_secs, 95),
               "langchain_p50_ms": 1000 * pct(lc_secs, 50), "langchain_p95_ms": 1000 * pct(lc_secs, 95)}
    latency["p50_ratio_ours_over_langchain"] = latency["ours_hybrid_p50_ms"] / latency["langchain_p50_ms"]
    latency.update({"cold_ours_p50_ms": 1000 * pct(ours_cold, 50), "cold_langchain_p50_ms": 1000 * pct(lc_cold, 50)})
    latency["cold_p50_ratio"] = latency["cold_ours_p50_ms"] / latency["cold_langchain_p50_ms"]
    targets = {"bm25 ndcg@10 >= 0.67": rows["bm25"]["ndcg@10"] >= 0.67,
               "dense ndcg@10 >= 0.64": rows["dense"]["ndcg@10"] >= 0.64,
               "hybrid ndcg@10 >= 0.73 (tuned convex)":
                   rows[f"hybrid-convex (w={tuned['dense_weight']}, tuned)"]["ndcg@10"] >= 0.73,
               "hybrid p50 <= 1/5 of langchain (query vectors cached)": latency["p50_ratio_ours_over_langchain"] <= 0.2,
               "rerank@20 p50 <= 1 s": rr["p50_s"] <= 1.0}

    table = Table(title=f"SciFact test ({len(tq)} queries, {len(test.corpus)} docs, {len(c2d)} chunks)")
    for col in ("method", "nDCG@10", "Recall@100", "MRR@10"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for name, m in rows.items():
        table.add_row(name, f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}", f"{m['mrr@10']:.4f}")
    console.print(table)
    console.print(f"latency p50/p95 ms: ours {latency['ours_hybrid_p50_ms']:.1f}/{latency['ours_hybrid_p95_ms']:.1f}"
                  f"  langchain {latency['langchain_p50_ms']:.1f}/{latency['langchain_p95_ms']:.1f}"
                  f"  ratio {latency['p50_ratio_ours_over_langchain']:.3f} (query vectors cached);"
                  f" with query embedding: ours {latency['cold_ours_p50_ms']:.1f}, langchain "
                  f"{latency['cold_langchain_p50_ms']:.1f}, ratio {latency['cold_p50_ratio']:.3f}")
    console.print(f"rerank@20 p50 {rr['p50_s']:.3f}s ({rr['note']});  tuned on train: {tuned['rrf_k']=}, "
                  f"{tuned['dense_weight']=}")
    for name, ok in targets.items():
        console.print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "dataset": "scifact", "queries": len(tq), "docs": len(test.corpus), "chunks": len(c2d),
        "fetch_k": args.fetch_k, "metrics": rows, "tuned_on_train": tuned, "latency": latency,
        "rerank": rr, "targets": targets, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"), "embedder": rag.embedder.model_id,
        "chunking": rag.settings.chunking.model_dump()}, indent=2, default=str))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
