"""Retrieval quality on a BEIR dataset (e.g. SciFact test), stored as an evaluation run.

The corpus is ingested through the real pipeline (source = BEIR doc id), every
query is searched, chunk hits are folded into a document ranking (a document
scores as its best chunk), and nDCG/Recall/Precision/MRR/MAP are computed per
query, so the run gets bootstrap intervals like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track

from rag.api import RAG
from rag.store.base import manifest_hash
from rag_platform.eval import runs
from rag_platform.eval.datasets import BeirData
from rag_platform.eval.metrics import average_precision, dedupe, mrr_at_k, ndcg_at_k, precision_at_k, recall_at_k

METRICS = ("ndcg@10", "recall@10", "recall@100", "precision@10", "mrr@10", "map")


def query_metrics(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    return {"ndcg@10": ndcg_at_k(ranked, relevant, 10), "recall@10": recall_at_k(ranked, relevant, 10),
            "recall@100": recall_at_k(ranked, relevant, 100), "precision@10": precision_at_k(ranked, relevant, 10),
            "mrr@10": mrr_at_k(ranked, relevant, 10), "map": average_precision(ranked, relevant, 100)}


def evaluate_retrieval(rag: RAG, data: BeirData, *, dataset: str, collection: str, modes: tuple[str, ...] = ("hybrid",),
                       queries: int | None = None, fetch: int = 100, out_dir: Path | None = None,
                       console: Console | None = None) -> tuple[int, dict[str, Any], dict[str, Path]]:
    """Ingest, search every judged query once per mode, store per-query results; returns (run id, summary, reports)."""
    from rag_platform.eval.report import write_reports

    console = console or Console()
    rag.ingest_texts(data.source_texts(), collection=collection)
    rag.store.index(collection)
    manifest = rag.store.index_manifest(collection)
    qids = sorted(data.queries)[:queries] if queries else sorted(data.queries)
    prov = {"embedder": rag.embedder.model_id, "chunking": rag.settings.chunking.model_dump(),
            "retrieval": {**rag.settings.retrieval.model_dump(), "fetch": fetch}, "index_manifest": manifest,
            "dataset": dataset, "code_version": runs.code_version()}
    ledger = rag.ledger
    run_id = ledger.create_eval_run(kind="retrieval", status="running", dataset=dataset, collection=collection,
                                    arms=list(modes), split={"eval": qids}, split_hash=runs.sha256_json(qids),
                                    dataset_hash=runs.sha256_json({"queries": data.queries, "qrels": data.qrels}),
                                    index_manifest_hash=manifest_hash(manifest) if manifest else None,
                                    code_version=prov["code_version"], provenance=prov)
    for mode in modes:
        for qid in track(qids, description=f"{mode:>8}", console=console):
            hits = rag.search(data.queries[qid], collection=collection, k=fetch, mode=mode)
            ranked = dedupe([h.source for h in hits])
            rel = data.qrels[qid]
            detail = {"question": data.queries[qid], "gold": sorted(d for d, g in rel.items() if g > 0),
                      "sources": [{"n": n, "source": d, "gold": rel.get(d, 0) > 0}
                                  for n, d in enumerate(ranked[:10], 1)], "citations": []}
            ledger.add_eval_result(run_id, qid, mode, " ".join(ranked[:10]), query_metrics(ranked, rel), detail)
    rows = runs.results(ledger, run_id)
    summary = runs.summarise(rows, list(modes), metrics=METRICS)
    run = runs.get_run(ledger, run_id)
    paths = write_reports(run, summary, rows, out_dir or rag.settings.home.resolve() / "eval" / f"run-{run_id}")
    runs.finish(ledger, run_id, summary, str(paths["html"]))
    return run_id, summary, paths
