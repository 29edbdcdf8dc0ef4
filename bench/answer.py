"""Answer quality, citation quality and latency on SQuAD, local model and extractive side by side.

The 913 paragraphs of `../shared/data/squad/dev-v1.1-part1.json` are ingested
as the corpus through the real pipeline; a reproducible sample of questions
(default 200) is asked through `RAG.ask` (streamed, cache off) once per arm.
Per arm: exact match and token F1 (SQuAD normalisation, [n] markers removed),
citation precision (the cited chunk contains a gold answer), share of
supported citations (our checker), abstentions, latency p50/p95 and time to
first token p50. Run: `.venv/bin/python bench/answer.py [--questions 200]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
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
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from eval.datasets import load_squad, sample  # noqa: E402
from eval.metrics import contains_answer, exact_match, token_f1  # noqa: E402
from rag import RAG, Settings  # noqa: E402
from rag.cite import strip_markers  # noqa: E402
from rag.config import LLMSettings, ProviderSettings  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1-part1.json"
console = Console()


def ask_all(rag: RAG, items: list[Any], arm: str, k: int) -> list[dict[str, Any]]:
    rows = []
    for item in track(items, description=f"{arm:>10}", console=console):
        t0 = time.perf_counter()
        stream = rag.ask(item.question, collection="squad", k=k, providers=[arm], stream=True, use_cache=False)
        first = None
        for piece in stream:
            if first is None and piece.strip():
                first = time.perf_counter() - t0
        a = stream.answer
        text = strip_markers(a.text)
        cited = a.citations
        rows.append({
            "id": item.id, "question": item.question, "gold": list(item.answers), "answer": a.text,
            "em": exact_match(text, item.answers), "f1": token_f1(text, item.answers),
            "citations": len(cited), "cited_has_answer": sum(contains_answer(a.sources[c.n - 1].text, item.answers)
                                                             for c in cited),
            "supported": sum(c.supported for c in cited), "abstained": a.abstained,
            "provider": a.provider, "latency_s": time.perf_counter() - t0, "ttft_s": first,
            "gold_passage_retrieved": any(h.source == item.passage_id for h in a.sources),
        })
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cites = sum(r["citations"] for r in rows)
    lat = [r["latency_s"] for r in rows]
    ttft = [r["ttft_s"] for r in rows if r["ttft_s"] is not None]
    return {
        "questions": len(rows), "exact_match": float(np.mean([r["em"] for r in rows])),
        "f1": float(np.mean([r["f1"] for r in rows])),
        "citation_precision": sum(r["cited_has_answer"] for r in rows) / cites if cites else 0.0,
        "supported_share": sum(r["supported"] for r in rows) / cites if cites else 0.0,
        "answers_with_citations": float(np.mean([r["citations"] > 0 for r in rows])),
        "abstained": float(np.mean([r["abstained"] for r in rows])),
        "fell_back": float(np.mean([r["provider"] != rows[0]["provider"] for r in rows])) if rows else 0.0,
        "gold_passage_in_sources": float(np.mean([r["gold_passage_retrieved"] for r in rows])),
        "latency_p50_s": float(np.percentile(lat, 50)), "latency_p95_s": float(np.percentile(lat, 95)),
        "ttft_p50_s": float(np.percentile(ttft, 50)) if ttft else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--arms", default="extractive,local")
    ap.add_argument("--local-questions", type=int, default=None,
                    help="Fewer questions for the local model (~8 s each on 2 CPU cores); default: all.")
    ap.add_argument("--k", type=int, default=4, help="Sources per question.")
    ap.add_argument("--max-tokens", type=int, default=64, help="Answer length cap for the local model.")
    ap.add_argument("--home", type=Path, default=REPO / ".bench-home-squad")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "answer.json")
    args = ap.parse_args()

    providers = [ProviderSettings(name="extractive", kind="extractive"),
                 ProviderSettings(name="local", kind="local", model="smollm2-135m-instruct",
                                  max_output_tokens=args.max_tokens, timeout_s=120)]
    rag = RAG.open(settings=Settings(home=args.home, llm=LLMSettings(providers=providers, max_attempts=1)))
    data = load_squad(DATA)
    t0 = time.perf_counter()
    report = rag.ingest_texts(data.source_texts(), collection="squad")
    console.print(f"corpus: {report.summary()} ({len(data.passages)} paragraphs) in {time.perf_counter() - t0:.0f}s")
    items = sample(data.items, args.questions)
    results, per_question = {}, {}
    for arm in args.arms.split(","):
        "".join(rag.ask(items[0].question, collection="squad", providers=[arm], use_cache=False, stream=True))
        subset = items[: args.local_questions] if arm == "local" and args.local_questions else items
        rows = ask_all(rag, subset, arm, args.k)
        results[arm], per_question[arm] = summarise(rows), rows

    sizes = ", ".join(f"{a}: {results[a]['questions']}" for a in results)
    table = Table(title=f"SQuAD v1.1 dev part 1 ({sizes} questions; {len(data.passages)} paragraphs, k={args.k})")
    cols = ["exact_match", "f1", "citation_precision", "supported_share", "answers_with_citations", "abstained",
            "gold_passage_in_sources", "latency_p50_s", "latency_p95_s", "ttft_p50_s"]
    table.add_column("metric")
    for arm in results:
        table.add_column(arm, justify="right")
    for col in cols:
        table.add_row(col, *[("-" if results[a][col] is None else f"{results[a][col]:.3f}") for a in results])
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "dataset": "squad-v1.1-dev-part1", "questions": len(items), "k": args.k, "results": results,
        "local_max_tokens": args.max_tokens, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"), "per_question": per_question}, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
