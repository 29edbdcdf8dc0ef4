"""Answer quality, abstention, citations and latency on held-out SQuAD: old and new answerer side by side.

Test split only: SQuAD v1.1 dev part 1 articles 13-24 (file order); the
extractive answerer's model was fitted on articles 1-12 (`bench/fit_extractive.py`).
The corpus is the test articles' paragraphs minus `--removed` of them (their
questions, one each, are the unanswerable ones). Every arm answers the same
questions in the same run, through the real pipeline (retrieve, answer,
check citations), cache off:

- `extractive`: the answerer of `rag/llm/extractive.py`;
- `extractive-v1`: the answerer as it was before (bench/extractive_v1.py);
- `local`: the bundled 135M model (slow: `--local-questions` caps it).

Per arm: the answer contains a gold answer string (answerable questions),
wrong abstentions, abstentions on the removed paragraphs' questions,
low-confidence answers, citation precision (the cited chunk holds a gold
answer), answers with every sentence cited, supported citations (our
checker), and answer latency beyond retrieval (p50/p95; the sentence-vector
cache is emptied before each question, so it is the cold figure), as wall time
and as the process's CPU time (with OMP_NUM_THREADS=1 the CPU time is what one
idle core would take, a figure that a loaded shared machine does not distort).
Run: `python bench/answer.py [--questions 160] [--local-questions 30]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
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

import bench.extractive_v1  # noqa: E402,F401 - registers the baseline arm
from bench.fit_extractive import DATA, split_articles  # noqa: E402
from rag import RAG, Settings  # noqa: E402
from rag.cite import strip_markers  # noqa: E402
from rag.config import LLMSettings, ProviderSettings  # noqa: E402
from rag.retrieve import RetrievalRequest, retrieve  # noqa: E402
from rag.types import SourceText  # noqa: E402
from rag.vectors import SHARED  # noqa: E402
from rag_platform.eval.datasets import QAItem  # noqa: E402
from rag_platform.eval.metrics import contains_answer  # noqa: E402

console = Console()


def test_questions(n: int, removed: int, seed: int) -> tuple[dict[str, Any], list[QAItem]]:
    """Corpus (test paragraphs minus the removed ones) and questions: n answerable + one per removed paragraph."""
    passages, items = split_articles(DATA, 13, 24)
    rng = random.Random(seed)
    pids = sorted(passages)
    rng.shuffle(pids)
    gone = set(pids[:removed])
    unans = []
    for pid in pids[:removed]:
        q = next(i for i in items if i.passage_id == pid)
        unans.append(QAItem(q.id, q.question, q.answers, q.passage_id, answerable=False))
    pool = sorted((i for i in items if i.passage_id not in gone), key=lambda i: i.id)
    rng.shuffle(pool)
    return {p: v for p, v in passages.items() if p not in gone}, pool[:n] + unans


def ask_one(rag: RAG, item: QAItem, arm: str, k: int) -> dict[str, Any]:
    SHARED._data.clear()  # cold: no sentence vector from an earlier question
    req = RetrievalRequest.make(item.question, "squad-test", rag.settings.retrieval, rag.settings.rerank, k=k)
    t0 = time.perf_counter()
    hits = retrieve(req, rag.store, rag.embedder, None)
    t1, c1 = time.perf_counter(), time.process_time()
    a = rag.answerer.run(req, hits, providers=[arm], use_cache=False, stream=False)
    t2, c2 = time.perf_counter(), time.process_time()
    text = strip_markers(a.text)
    golds = item.answers
    return {
        "id": item.id, "question": item.question, "gold": list(golds), "answerable": item.answerable,
        "answer": a.text, "contains_gold": item.answerable and contains_answer(text, golds),
        "abstained": a.abstained, "low_confidence": a.low_confidence,
        "citations": len(a.citations), "cited_has_answer": sum(contains_answer(a.sources[c.n - 1].text, golds)
                                                             for c in a.citations),
        "supported": sum(c.supported for c in a.citations), "all_cited": not a.uncited_sentences,
        "provider": a.provider, "retrieval_s": t1 - t0, "answer_s": t2 - t1, "answer_cpu_s": c2 - c1,
        "gold_passage_retrieved": any(h.source == item.passage_id for h in a.sources),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    answered = [r for r in ans if not r["abstained"]]
    cites = sum(r["citations"] for r in ans)
    lat = [r["answer_s"] for r in rows]
    return {
        "answerable": len(ans), "unanswerable": len(una),
        "contains_gold": float(np.mean([r["contains_gold"] for r in ans])) if ans else 0.0,
        "wrong_abstentions": float(np.mean([r["abstained"] for r in ans])) if ans else 0.0,
        "unanswerable_abstained": f"{sum(r['abstained'] for r in una)}/{len(una)}",
        "low_confidence": float(np.mean([r["low_confidence"] for r in rows])) if rows else 0.0,
        "citation_precision": sum(r["cited_has_answer"] for r in ans) / cites if cites else 0.0,
        "all_sentences_cited": float(np.mean([r["all_cited"] for r in answered])) if answered else 0.0,
        "supported_share": sum(r["supported"] for r in ans) / cites if cites else 0.0,
        "gold_passage_in_sources": float(np.mean([r["gold_passage_retrieved"] for r in ans])) if ans else 0.0,
        "answer_latency_p50_ms": 1000 * float(np.percentile(lat, 50)),
        "answer_latency_p95_ms": 1000 * float(np.percentile(lat, 95)),
        "answer_cpu_p50_ms": 1000 * float(np.percentile([r["answer_cpu_s"] for r in rows], 50)),
        "answer_cpu_p95_ms": 1000 * float(np.percentile([r["answer_cpu_s"] for r in rows], 95)),
        "retrieval_p50_ms": 1000 * float(np.percentile([r["retrieval_s"] for r in rows], 50)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=160, help="Answerable questions.")
    ap.add_argument("--removed", type=int, default=20, help="Paragraphs removed (one unanswerable question each).")
    ap.add_argument("--arms", default="extractive,extractive-v1,local")
    ap.add_argument("--local-questions", type=int, default=30,
                    help="Answerable questions for the local model (~17 s each on 2 cores), plus the unanswerable.")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--max-tokens", type=int, default=64, help="Answer length cap for the local model.")
    ap.add_argument("--ingest-only", action="store_true", help="Build the test corpus and stop.")
    ap.add_argument("--home", type=Path, default=REPO / ".bench-home-answer")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "answer.json")
    args = ap.parse_args()

    providers = [ProviderSettings(name="extractive", kind="extractive"),
                 ProviderSettings(name="extractive-v1", kind="extractive-v1"),
                 ProviderSettings(name="local", kind="local", model="smollm2-135m-instruct",
                                  max_output_tokens=args.max_tokens, timeout_s=180)]
    rag = RAG.open(settings=Settings(home=args.home, llm=LLMSettings(providers=providers, max_attempts=1)))
    corpus, questions = test_questions(args.questions, args.removed, args.seed)
    t0 = time.perf_counter()
    report = rag.ingest_texts((SourceText(source=p, title=t or None, text=x) for p, (t, x) in corpus.items()),
                              collection="squad-test")
    console.print(f"corpus: {report.summary()} ({len(corpus)} paragraphs) in {time.perf_counter() - t0:.0f}s")
    if args.ingest_only:
        return
    arms = args.arms.split(",")
    results, per_question = {}, {}
    fast = [a for a in arms if a != "local"]
    for arm in arms:
        ask_one(rag, questions[0], arm, args.k)  # warm up (model load)
    rows: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    t1 = time.perf_counter()
    for i, item in enumerate(questions):  # interleaved, so both arms see the same machine load
        for arm in fast:
            rows[arm].append(ask_one(rag, item, arm, args.k))
        if i % 25 == 0:
            console.print(f"  {', '.join(fast)}: {i}/{len(questions)} ({time.perf_counter() - t1:.0f}s)")
    if "local" in arms:
        subset = [q for q in questions if q.answerable][: args.local_questions] + \
            [q for q in questions if not q.answerable][: max(5, args.local_questions // 6)]
        for i, item in enumerate(subset):
            rows["local"].append(ask_one(rag, item, "local", args.k))
            console.print(f"  local: {i + 1}/{len(subset)} ({time.perf_counter() - t1:.0f}s)")
    for arm in arms:
        results[arm], per_question[arm] = summarise(rows[arm]), rows[arm]

    table = Table(title=f"SQuAD articles 13-24 (held out), k={args.k}, {len(corpus)} paragraphs")
    table.add_column("metric")
    for arm in results:
        table.add_column(arm, justify="right")
    for col in results[arms[0]]:
        table.add_row(col, *[v if isinstance(v := results[a][col], str) else
                             (f"{v:.0f}" if col.endswith("_ms") or isinstance(v, int) else f"{v:.3f}")
                             for a in results])
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({
        "dataset": "squad-v1.1-dev-part1 articles 13-24 (test split)", "k": args.k, "removed": args.removed,
        "seed": args.seed, "results": results, "local_max_tokens": args.max_tokens,
        "command": "python bench/answer.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"), "per_question": per_question}, indent=1))
    tmp.replace(args.out)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
