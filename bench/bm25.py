"""BM25 engines on SciFact: bm25s against rank-bm25, same tokens, document level.

rank-bm25 is the named dependency; bm25s claims ~200x faster queries with the
same quality. This script measures both on the 300 SciFact test queries and
picks one:

* index build seconds (tokenization is shared and timed once, apart);
* queries/s, timing only the scoring of every document plus the top-100
  (`np.argpartition`), with query tokens prepared beforehand;
* nDCG@10 (graded gains rel / log2(rank + 1) over the ideal) and Recall@100
  on the test qrels;
* agreement of the two engines: mean overlap of their top-10 ids, the share
  of queries with the same top-10 set, and Spearman's rho of their scores
  over the union of both top-100 lists.

One document is title + " " + text (no chunking). Both engines get the tokens
of `rag.store.sparse.analyze` (lowercase, English stopwords dropped,
Snowball-stemmed) and k1=1.2, b=0.75.

Run from the repository root:

    .venv/bin/python bench/bm25.py                                   # -> bench/results/bm25.json
    .venv/bin/python bench/bm25.py --limit-queries 50 --out /tmp/bm25_small.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# `python bench/<script>.py` puts bench/ first on sys.path; the checkout goes before it, so that
# `ingest` is the package, not bench/ingest.py.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag.store.sparse import analyze, top_k  # noqa: E402
from rag_platform.eval.datasets import load_qrels  # noqa: E402
from rag_platform.eval.metrics import ndcg_at_k, recall_at_k  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"
DEFAULT_OUT = REPO / "bench" / "results" / "bm25.json"
K1, B = 1.2, 0.75
TOP = 100
QUALITY_TOLERANCE = 0.005  # nDCG@10 gap under which two engines count as "same quality" whatever the noise

Qrels = dict[str, dict[str, int]]
Scorer = Callable[[list[str]], np.ndarray]


# -- data ----------------------------------------------------------------------------------
def load_corpus(path: Path) -> tuple[list[str], list[str]]:
    """(doc ids, doc texts) with one text = title + " " + text."""
    ids, texts = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            ids.append(str(row["_id"]))
            texts.append(f"{row.get('title') or ''} {row['text']}".strip())
    return ids, texts


def load_queries(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        return {str(r["_id"]): r["text"] for r in map(json.loads, fh)}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); nan when either side is constant."""
    from scipy.stats import spearmanr

    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


# -- engines -------------------------------------------------------------------------------
def build_bm25s(corpus_tokens: list[list[str]]) -> tuple[Scorer, float]:
    """bm25s, Lucene variant, scored per query with get_scores as our SparseIndex does."""
    import bm25s

    t0 = time.perf_counter()
    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    model.index(corpus_tokens, show_progress=False)
    seconds = time.perf_counter() - t0
    vocab = model.vocab_dict
    n_docs = len(corpus_tokens)

    def score(tokens: list[str]) -> np.ndarray:
        known = [t for t in tokens if t in vocab]  # bm25s rejects unknown tokens; they score 0 anyway
        return np.asarray(model.get_scores(known), dtype=np.float32) if known else np.zeros(n_docs, np.float32)

    return score, seconds


def build_rank_bm25(corpus_tokens: list[list[str]]) -> tuple[Scorer, float]:
    """rank-bm25's BM25Okapi (pip install rank-bm25==0.2.2)."""
    try:
        from rank_bm25 import BM25Okapi
    except ImportError as exc:
        raise SystemExit("rank-bm25 is missing: .venv/bin/pip install rank-bm25==0.2.2") from exc

    t0 = time.perf_counter()
    model = BM25Okapi(corpus_tokens, k1=K1, b=B)
    seconds = time.perf_counter() - t0

    def score(tokens: list[str]) -> np.ndarray:
        return np.asarray(model.get_scores(tokens), dtype=np.float32)

    return score, seconds


def run_queries(score: Scorer, query_tokens: list[list[str]]) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Top-100 rows and all scores per query, and the seconds spent scoring + ranking only.

    One untimed query first, so no first-call cost lands in the timing.
    """
    if query_tokens:
        score(query_tokens[0])
    rows, all_scores = [], []
    elapsed = 0.0
    for tokens in query_tokens:
        t0 = time.perf_counter()
        s = score(tokens)
        top = top_k(s, TOP)
        elapsed += time.perf_counter() - t0
        rows.append(top)
        all_scores.append(s)
    return rows, all_scores, elapsed


def per_query_ndcg(rows: list[np.ndarray], qids: list[str], doc_ids: list[str], qrels: Qrels) -> np.ndarray:
    return np.array([ndcg_at_k([doc_ids[i] for i in r], qrels[q], 10) for r, q in zip(rows, qids, strict=True)])


def evaluate(rows: list[np.ndarray], qids: list[str], doc_ids: list[str], qrels: Qrels) -> dict[str, float]:
    ranked = [[doc_ids[i] for i in r] for r in rows]
    return {
        "ndcg@10": float(per_query_ndcg(rows, qids, doc_ids, qrels).mean()) if rows else 0.0,
        "recall@100": float(np.mean([recall_at_k(rk, qrels[q], 100) for rk, q in zip(ranked, qids, strict=True)])),
    }


def paired_gap(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean per-query difference a - b with a normal 95% interval (paired over the same queries)."""
    d = a - b
    half = 1.96 * float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else float("inf")
    return {"mean": float(d.mean()), "ci95_low": float(d.mean()) - half, "ci95_high": float(d.mean()) + half}


def agreement(a_rows: list[np.ndarray], b_rows: list[np.ndarray], a_scores: list[np.ndarray],
              b_scores: list[np.ndarray]) -> dict[str, float]:
    """How alike two engines rank: top-10 overlap, identical top-10 sets, Spearman over the top-100 union."""
    overlaps, same, rhos = [], [], []
    for ar, br, asc, bsc in zip(a_rows, b_rows, a_scores, b_scores, strict=True):
        a10, b10 = set(ar[:10].tolist()), set(br[:10].tolist())
        overlaps.append(len(a10 & b10) / 10)
        same.append(float(a10 == b10))
        union = np.union1d(ar, br)
        rhos.append(spearman(asc[union], bsc[union]))
    return {
        "top10_overlap_mean": float(np.mean(overlaps)),
        "top10_identical_share": float(np.mean(same)),
        "top10_identical_order_share": float(np.mean([np.array_equal(a[:10], b[:10])
                                                      for a, b in zip(a_rows, b_rows, strict=True)])),
        "spearman_top100_union_mean": float(np.nanmean(rhos)),
    }


# -- the benchmark ---------------------------------------------------------------------------
def measure(limit_queries: int | None) -> dict[str, Any]:
    doc_ids, doc_texts = load_corpus(DATA / "corpus.jsonl")
    queries = load_queries(DATA / "queries.jsonl")
    qrels = load_qrels(DATA / "qrels" / "test.tsv")
    qids = [q for q in qrels if q in queries][:limit_queries]

    t0 = time.perf_counter()
    corpus_tokens = [analyze(t) or [""] for t in doc_texts]
    query_tokens = [analyze(queries[q]) for q in qids]
    tokenize_seconds = time.perf_counter() - t0

    engines: dict[str, Any] = {}
    runs: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for name, build in (("bm25s", build_bm25s), ("rank_bm25", build_rank_bm25)):
        score, build_seconds = build(corpus_tokens)
        rows, scores, seconds = run_queries(score, query_tokens)
        runs[name] = (rows, scores)
        engines[name] = {
            "index_build_seconds": build_seconds,
            "query_seconds": seconds,
            "queries_per_second": len(qids) / seconds if seconds else None,
            "ms_per_query": 1000 * seconds / len(qids) if qids else None,
            **evaluate(rows, qids, doc_ids, qrels),
        }
    agree = agreement(runs["bm25s"][0], runs["rank_bm25"][0], runs["bm25s"][1], runs["rank_bm25"][1])
    gap = paired_gap(per_query_ndcg(runs["bm25s"][0], qids, doc_ids, qrels),
                     per_query_ndcg(runs["rank_bm25"][0], qids, doc_ids, qrels))
    return {
        "benchmark": "bm25",
        "data": str(DATA),
        "config": {"k1": K1, "b": B, "bm25s_method": "lucene", "top_k": TOP, "level": "document (title + ' ' + text)",
                   "analyzer": "rag.store.sparse.analyze (lowercase, English stopwords, Snowball stemming)",
                   "limit_queries": limit_queries, "queries": len(qids), "docs": len(doc_ids)},
        "machine": machine_facts(),
        "tokenize_seconds": tokenize_seconds,
        "engines": engines,
        "speed_ratio_bm25s_over_rank_bm25": (engines["bm25s"]["queries_per_second"]
                                             / engines["rank_bm25"]["queries_per_second"]),
        "agreement": agree,
        "ndcg@10_gap_bm25s_minus_rank_bm25": gap,
        "note": ("Scores differ slightly by design: rank-bm25's BM25Okapi uses idf = log((N - n + 0.5) / (n + 0.5)), "
                 "negative for terms in more than half the documents and then floored at 0.25 x the mean idf, "
                 "while bm25s method='lucene' uses idf = log(1 + (N - n + 0.5) / (n + 0.5)), always positive. "
                 "The term-frequency part is the same, so rankings agree closely but not exactly."),
    }


def choose(res: dict[str, Any]) -> dict[str, str]:
    """Pick an engine from the measured figures and say why."""
    """Pick an engine from the measured figures and say why.

    bm25s wins when it is faster and not measurably worse: its nDCG@10 is within
    QUALITY_TOLERANCE of rank-bm25's, or the paired 95% interval of the
    per-query gap reaches zero (on few queries the noise dwarfs the tolerance).
    """
    s, r = res["engines"]["bm25s"], res["engines"]["rank_bm25"]
    gap = res["ndcg@10_gap_bm25s_minus_rank_bm25"]
    ratio = res["speed_ratio_bm25s_over_rank_bm25"]
    same = gap["mean"] >= -QUALITY_TOLERANCE or gap["ci95_high"] >= 0
    interval = f"gap {gap['mean']:+.4f}, 95% CI [{gap['ci95_low']:+.4f}, {gap['ci95_high']:+.4f}]"
    if same and ratio > 1:
        return {"engine": "bm25s", "why": (
            f"no measurable quality loss (nDCG@10 {s['ndcg@10']:.4f} vs {r['ndcg@10']:.4f}, {interval}; "
            f"Recall@100 {s['recall@100']:.4f} vs {r['recall@100']:.4f}) at {ratio:.0f}x the queries/s "
            f"({s['queries_per_second']:,.0f} vs {r['queries_per_second']:,.1f}); its index saves as plain .npy "
            f"arrays plus JSON, which fits our index folder (no pickle). rank-bm25 stays the test reference.")}
    return {"engine": "rank_bm25", "why": (
        f"bm25s was measurably worse ({interval}) or not faster ({ratio:.1f}x the queries/s)")}


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "bm25s": installed("bm25s"), "rank_bm25": installed("rank-bm25"),
            "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def print_table(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg, s, r, a = res["config"], res["engines"]["bm25s"], res["engines"]["rank_bm25"], res["agreement"]
    t = Table(title=f"BM25 on SciFact: {cfg['docs']} docs, {cfg['queries']} test queries, k1={K1} b={B}")
    for col in ("figure", "bm25s", "rank-bm25"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    t.add_row("index build s", f"{s['index_build_seconds']:.2f}", f"{r['index_build_seconds']:.2f}")
    t.add_row("queries/s", f"{s['queries_per_second']:,.0f}", f"{r['queries_per_second']:,.1f}")
    t.add_row("ms/query", f"{s['ms_per_query']:.2f}", f"{r['ms_per_query']:.1f}")
    t.add_row("nDCG@10", f"{s['ndcg@10']:.4f}", f"{r['ndcg@10']:.4f}")
    t.add_row("Recall@100", f"{s['recall@100']:.4f}", f"{r['recall@100']:.4f}")
    t.add_row("speed ratio", f"{res['speed_ratio_bm25s_over_rank_bm25']:,.0f}x", "1x")
    gap = res["ndcg@10_gap_bm25s_minus_rank_bm25"]
    both = Table(title="Agreement of the two engines (same queries)")
    both.add_column("figure")
    both.add_column("value", justify="right")
    both.add_row("nDCG@10 gap bm25s - rank-bm25", f"{gap['mean']:+.4f}")
    both.add_row("  paired 95% interval", f"[{gap['ci95_low']:+.4f}, {gap['ci95_high']:+.4f}]")
    both.add_row("top-10 overlap, mean", f"{a['top10_overlap_mean']:.3f}")
    both.add_row("queries with the same top-10 set", f"{a['top10_identical_share']:.3f}")
    both.add_row("queries with the same top-10 order", f"{a['top10_identical_order_share']:.3f}")
    both.add_row("Spearman rho over top-100 union", f"{a['spearman_top100_union_mean']:.3f}")
    both.add_row("tokenize s (shared, not in build)", f"{res['tokenize_seconds']:.2f}")
    console = Console()
    console.print(t)
    console.print(both)
    console.print(f"choice: [bold]{res['choice']['engine']}[/bold]: {res['choice']['why']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-queries", type=int, default=None, help="only the first N test queries")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default: {DEFAULT_OUT})")
    args = parser.parse_args()
    results = measure(args.limit_queries)
    results["choice"] = choose(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
