"""Fit the extractive answerer's sentence model and thresholds on SQuAD articles 1-12 ONLY.

SQuAD v1.1 dev part 1 (`../shared/data/squad`) has 24 articles; 1-12 (file
order) are the training split, 13-24 the test split that `bench/answer.py`
reports on and that nothing here may read. The training corpus is the
paragraphs of articles 1-12 minus `--removed` of them, whose questions become
unanswerable. For each sampled question the real pipeline retrieves k
sources; every candidate unit gets the features of `rag.llm.evidence` and the
label "holds a gold answer". A logistic regression (scikit-learn) is fitted;
thresholds are chosen on out-of-fold probabilities (5-fold, by question):

- `abstain_below`: the best candidate's probability under which we abstain,
  the highest value that keeps wrong abstentions on answerable questions at
  or under `--max-wrong-abstain` (default 4%, leaving a margin to the 5% target);
- `confident_from`: from here the best unit holds the answer for at least
  `--confident-precision` of the questions (answerable and not); below it the
  answer is marked low-confidence.

Writes `rag/llm/extractive_weights.json`. Run:
`python bench/fit_extractive.py [--questions 700]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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

from rag import RAG, Settings  # noqa: E402
from rag.config import LLMSettings, ProviderSettings  # noqa: E402
from rag.llm.evidence import FEATURES, candidates, features  # noqa: E402
from rag.llm.extractive import CODE_VERSION  # noqa: E402
from rag_platform.eval.datasets import QAItem, load_squad  # noqa: E402
from rag_platform.eval.metrics import contains_answer  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1-part1.json"
OUT = REPO / "rag" / "llm" / "extractive_weights.json"


def split_articles(path: Path, first: int, last: int) -> tuple[dict[str, tuple[str, str]], list[QAItem]]:
    """Passages and questions of articles first..last (1-based, file order)."""
    titles = [a["title"] for a in json.loads(path.read_text(encoding="utf-8"))["data"]][first - 1:last]
    data = load_squad(path)
    keep = {t for t in titles}
    passages = {pid: v for pid, v in data.passages.items() if pid.rsplit("#", 1)[0] in keep}
    items = [i for i in data.items if i.passage_id and i.passage_id.rsplit("#", 1)[0] in keep]
    return passages, items


def make_questions(passages: dict[str, Any], items: list[QAItem], n: int, removed: int,
                   seed: int) -> tuple[list[QAItem], list[str]]:
    """`n` answerable questions plus one unanswerable question per removed paragraph."""
    rng = random.Random(seed)
    pids = sorted(passages)
    rng.shuffle(pids)
    gone = pids[:removed]
    by_pid: dict[str, list[QAItem]] = {}
    for i in items:
        by_pid.setdefault(str(i.passage_id), []).append(i)
    unans = [QAItem(q.id, q.question, q.answers, q.passage_id, answerable=False)
             for p in gone for q in by_pid[p][:2]]
    pool = [i for i in items if i.passage_id not in set(gone)]
    rng.shuffle(pool)
    return pool[:n] + unans, gone


def collect(rag: RAG, questions: list[QAItem], collection: str, k: int) -> dict[str, Any]:
    xs, ys, qid = [], [], []
    meta = []
    for qi, item in enumerate(questions):
        hits = rag.search(item.question, collection=collection, k=k)
        sources = {n: h.text for n, h in enumerate(hits, 1)}
        cands = candidates(sources)
        x, pool = features(item.question, cands, rag.embedder)
        labels = [float(item.answerable and contains_answer(cands[i].text, item.answers)) for i in pool]
        xs.append(x)
        ys.extend(labels)
        qid.extend([qi] * len(pool))
        meta.append({"answerable": item.answerable, "any_gold": any(labels),
                     "gold_retrieved": any(h.source == item.passage_id for h in hits)})
        if qi % 100 == 0:
            print(f"  {qi}/{len(questions)}", flush=True)
    return {"x": np.vstack(xs), "y": np.array(ys), "q": np.array(qid), "meta": meta}


def best_per_question(p: np.ndarray, y: np.ndarray, q: np.ndarray, nq: int) -> tuple[np.ndarray, np.ndarray]:
    """(best probability, whether that best unit holds a gold answer) per question."""
    best = np.full(nq, 0.0)
    right = np.zeros(nq, dtype=bool)
    for i in range(len(p)):
        if p[i] > best[q[i]]:
            best[q[i]], right[q[i]] = p[i], bool(y[i])
    return best, right


def out_of_fold(xs: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each unit's probability from a logistic regression fitted without its question's fold (5 folds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    for tr, te in GroupKFold(n_splits=5).split(xs, y, q):
        oof[te] = LogisticRegression(C=1.0, max_iter=2000).fit(xs[tr], y[tr]).predict_proba(xs[te])[:, 1]
    return oof


def choose_thresholds(best: np.ndarray, right: np.ndarray, ans: np.ndarray, max_wrong: float,
                      precision: float) -> tuple[float, float]:
    """(abstain_below, confident_from) from each question's best probability, whether that unit holds a gold
    answer, and whether the question is answerable (see the module's docstring)."""
    grid = np.unique(np.round(best, 4))
    abstain_below = max([t for t in grid if np.mean(best[ans] < t) <= max_wrong] or [0.0])
    precise = [t for t in grid if (best >= t).sum() >= 20 and np.mean(right[best >= t]) >= precision]
    return float(abstain_below), float(max(abstain_below, min(precise) if precise else float(grid.max())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=700)
    ap.add_argument("--removed", type=int, default=40, help="Training paragraphs removed (2 questions each).")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-wrong-abstain", type=float, default=0.04)
    ap.add_argument("--confident-precision", type=float, default=0.85)
    ap.add_argument("--home", type=Path, default=REPO / ".bench-home-fit")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression

    passages, items = split_articles(DATA, 1, 12)
    questions, gone = make_questions(passages, items, args.questions, args.removed, args.seed)
    # features depend on the code that computes them (MAX_EMBED too): the answerer's code hash keys the cache
    cache = args.home / f"features-{args.seed}-{args.questions}-{args.removed}-{args.k}-{CODE_VERSION}.npz"
    args.home.mkdir(parents=True, exist_ok=True)
    providers = [ProviderSettings(name="extractive", kind="extractive")]
    rag = RAG.open(settings=Settings(home=args.home, llm=LLMSettings(providers=providers)))
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        data = {"x": z["x"], "y": z["y"], "q": z["q"], "meta": json.loads(str(z["meta"]))}
    else:
        t0 = time.perf_counter()
        corpus = {pid: v for pid, v in passages.items() if pid not in set(gone)}
        from rag.types import SourceText

        rag.ingest_texts((SourceText(source=p, title=t or None, text=x) for p, (t, x) in corpus.items()),
                         collection=f"squad-train-{args.removed}-{args.seed}")
        print(f"train corpus: {len(corpus)} paragraphs in {time.perf_counter() - t0:.0f}s")
        data = collect(rag, questions, f"squad-train-{args.removed}-{args.seed}", args.k)
        np.savez(cache, x=data["x"], y=data["y"], q=data["q"], meta=json.dumps(data["meta"]))
    x, y, q, meta = data["x"], data["y"], data["q"], data["meta"]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / scale
    oof = out_of_fold(xs, y, q)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(xs, y)
    best, right = best_per_question(oof, y, q, len(meta))
    ans = np.array([m["answerable"] for m in meta])
    abstain_below, confident_from = choose_thresholds(best, right, ans, args.max_wrong_abstain,
                                                      args.confident_precision)
    stats = {
        "questions": int(len(meta)), "answerable": int(ans.sum()), "unanswerable": int((~ans).sum()),
        "top1_holds_gold_when_any": float(np.mean(right[[m["any_gold"] for m in meta]])),
        "wrong_abstain": float(np.mean(best[ans] < abstain_below)),
        "unanswerable_abstained": float(np.mean(best[~ans] < abstain_below)),
        "confident_share": float(np.mean(best >= confident_from)),
        "confident_precision": float(np.mean(right[best >= confident_from])) if (best >= confident_from).any() else 0.0,
    }
    version = hashlib.sha256(json.dumps([model.coef_.tolist(), abstain_below, confident_from]).encode()).hexdigest()[:8]
    out = {
        "version": version, "features": list(FEATURES), "mean": mean.tolist(), "scale": scale.tolist(),
        "coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]),
        "abstain_below": float(abstain_below), "confident_from": float(confident_from),
        "embedder": rag.embedder.model_id, "k": args.k,
        "trained_on": "SQuAD v1.1 dev part 1, articles 1-12 (file order); articles 13-24 held out",
        "removed_paragraphs": len(gone), "seed": args.seed, "training": stats,
        "command": "python bench/fit_extractive.py " + " ".join(sys.argv[1:]),
    }
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.out)
    for name, c in zip(FEATURES, model.coef_[0], strict=True):
        print(f"  {name:>12} {c:+.3f}")
    print(json.dumps(stats, indent=1))
    print(f"abstain_below {abstain_below:.4f}  confident_from {confident_from:.4f}  -> {args.out}")


if __name__ == "__main__":
    main()
