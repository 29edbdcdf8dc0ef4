"""How the extractive answerer's choices play out on the TRAINING split (SQuAD articles 1-12), out of fold.

`bench/fit_extractive.py` fits the sentence model; this script asks what the answer policy built on it
gives, without touching the test split (`bench/answer.py` reports that, once a choice is made here):

- the same questions, corpus and features as the fit (`--questions`, `--removed`, `--seed`, `--k`), and
  out-of-fold probabilities (5-fold by question, logistic regression as shipped), thresholds chosen as
  the fit chooses them;
- each policy runs the real `compose` / `closest` of `rag/llm/extractive.py` on those probabilities and
  reports: a gold answer in the answer, wrong abstentions, unanswerable questions abstained, low-confidence
  answers, sentences an answer, and citation precision per quoted sentence (as `bench/answer.py` counts it);
- how well a question-level model could tell answerable from unanswerable questions (AUC, and abstentions
  on unanswerable questions at 3% and 5% wrong abstentions): the ceiling on abstention without a reader.

Run: `python bench/answer_policy.py` (a table, and `bench/results/answer_policy.json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.fit_extractive import DATA, choose_thresholds, make_questions, out_of_fold, split_articles  # noqa: E402
from rag import RAG, Settings  # noqa: E402
from rag.llm import extractive as ex  # noqa: E402
from rag.llm.evidence import Candidate, Model, candidates, features, load_model  # noqa: E402
from rag.types import SourceText  # noqa: E402
from rag_platform.eval.metrics import contains_answer  # noqa: E402

console = Console(width=160)


def collect(rag: RAG, questions: list[Any], collection: str, k: int) -> list[dict[str, Any]]:
    rows = []
    for item in questions:
        hits = rag.search(item.question, collection=collection, k=k)
        sources = {n: h.text for n, h in enumerate(hits, 1)}
        cands = candidates(sources)
        x, pool = features(item.question, cands, rag.embedder)
        rows.append({"q": item.question, "answers": list(item.answers), "answerable": item.answerable,
                     "cands": cands, "x": x, "pool": pool, "scores": [h.score for h in hits],
                     "gold": [item.answerable and contains_answer(c.text, item.answers) for c in cands],
                     "src_gold": {n: item.answerable and contains_answer(t, item.answers) for n, t in sources.items()}})
    return rows


def unit_probabilities(rows: list[dict[str, Any]]) -> list[np.ndarray]:
    """Out-of-fold probabilities of each question's scored units, as the fit computes them."""
    x = np.vstack([r["x"] for r in rows if r["pool"]])
    y = np.concatenate([[float(r["gold"][i]) for i in r["pool"]] for r in rows])
    q = np.concatenate([[n] * len(r["pool"]) for n, r in enumerate(rows)])
    oof = out_of_fold((x - x.mean(0)) / (x.std(0) + 1e-6), y, q)
    return np.split(oof, np.cumsum([len(r["pool"]) for r in rows])[:-1])


def thresholds(rows: list[dict[str, Any]], probs: list[np.ndarray], max_wrong: float,
               precision: float) -> tuple[float, float]:
    best = np.array([p.max() if len(p) else 0.0 for p in probs])
    right = np.array([bool(len(p)) and r["gold"][r["pool"][int(np.argmax(p))]]
                      for p, r in zip(probs, rows, strict=True)])
    return choose_thresholds(best, right, np.array([r["answerable"] for r in rows]), max_wrong, precision)


def closest_before(cands: list[Candidate], pool: list[int], probs: np.ndarray, model: Model, max_sentences: int = 3,
                   terms: set[str] | None = None, ratio: float = 0.4) -> list[list[int]]:
    """The low-confidence passage as it was: units of the best source at least `ratio` as likely as the best."""
    used = ex.compose(cands, pool, probs, model, max_sentences, terms=terms)[0]
    source, best = cands[used[0]].n, float(probs.max())
    count = sum(cands[i].kind != "heading" for i in used)
    for j in np.argsort(-probs, kind="stable"):
        if count >= max_sentences or float(probs[j]) < ratio * best:
            break
        i = pool[int(j)]
        if i not in used and cands[i].n == source:
            used.append(i)
            count += 1
    return [sorted(used, key=lambda i: cands[i].index)]


def policy(rows: list[dict[str, Any]], probs: list[np.ndarray], model: Model, closest: Any) -> dict[str, Any]:
    gold = wrong = unans = low = cited = cited_ok = 0
    sentences = []
    for p, r in zip(probs, rows, strict=True):
        cands, pool, terms = r["cands"], r["pool"], ex.question_terms(r["q"])
        if not pool or p.max() < model.abstain_below:
            wrong += r["answerable"]
            unans += not r["answerable"]
            continue
        if p.max() < model.confident_from:
            low += 1
            groups = closest(cands, pool, p, model, 3, terms=terms)
        else:
            groups = ex.compose(cands, pool, p, model, 3, terms=terms)
        quoted = [i for g in groups for i in g if cands[i].kind != "heading"]
        sentences.append(len(quoted))
        if r["answerable"]:
            gold += contains_answer(" ".join(ex._render(cands, g) for g in groups), r["answers"])
            cited += len(quoted)
            cited_ok += sum(r["src_gold"][cands[i].n] for i in quoted)
    n_ans = sum(r["answerable"] for r in rows)
    return {"contains_gold": gold / n_ans, "wrong_abstentions": wrong / n_ans,
            "unanswerable_abstained": f"{unans}/{len(rows) - n_ans}", "low_confidence": low,
            "sentences_per_answer": float(np.mean(sentences)), "citation_precision": cited_ok / max(1, cited)}


def answerability(rows: list[dict[str, Any]], probs: list[np.ndarray]) -> dict[str, Any]:
    """Question-level separability of answerable from unanswerable questions, out of fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    feats = []
    for p, r in zip(probs, rows, strict=True):
        if not len(p):
            feats.append([0.0] * 9)
            continue
        o, b, x, s = np.sort(p)[::-1], int(np.argmax(p)), r["x"], r["scores"] + [0.0] * 4
        second = o[1] if len(o) > 1 else 0.0
        feats.append([o[0], second, o[0] - second, x[b, 0], x[b, 2], x[:, 0].max(), x[:, 2].max(), s[0], s[0] - s[3]])
    f = np.array(feats)
    ans = np.array([r["answerable"] for r in rows])
    xs = (f - f.mean(0)) / (f.std(0) + 1e-6)
    oof = np.zeros(len(f))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(xs, ans):
        oof[te] = LogisticRegression(max_iter=2000).fit(xs[tr], ans[tr]).predict_proba(xs[te])[:, 1]
    out: dict[str, Any] = {"auc_best_probability": float(roc_auc_score(ans, f[:, 0])),
                           "auc_question_model": float(roc_auc_score(ans, oof))}
    for wrong in (0.03, 0.05):
        for name, score in (("best_probability", f[:, 0]), ("question_model", oof)):
            cut = np.quantile(score[ans], wrong)
            out[f"unanswerable_abstained_at_{wrong:.2f}_wrong_{name}"] = float(np.mean(score[~ans] < cut))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=900)
    ap.add_argument("--removed", type=int, default=60)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-wrong-abstain", type=float, default=0.03)
    ap.add_argument("--confident-precision", type=float, default=0.85)
    ap.add_argument("--home", type=Path, default=REPO / ".bench-home-fit")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "answer_policy.json")
    args = ap.parse_args()
    passages, items = split_articles(DATA, 1, 12)
    questions, gone = make_questions(passages, items, args.questions, args.removed, args.seed)
    rag = RAG.open(settings=Settings(home=args.home))
    collection = f"squad-train-{args.removed}-{args.seed}"
    if collection not in rag.store.collection_names():
        corpus = {p: v for p, v in passages.items() if p not in set(gone)}
        rag.ingest_texts((SourceText(source=p, title=t or None, text=x) for p, (t, x) in corpus.items()),
                         collection=collection)
    rows = collect(rag, questions, collection, args.k)
    probs = unit_probabilities(rows)
    abstain, confident = thresholds(rows, probs, args.max_wrong_abstain, args.confident_precision)
    model = dataclasses.replace(load_model(), abstain_below=abstain, confident_from=confident)
    results = {"shipped: the rest of the best sentence's section": policy(rows, probs, model, ex.closest),
               "before: units >= 0.4 as likely as the best": policy(rows, probs, model, closest_before)}
    table = Table(title=f"Answer policy on the training split, out of fold ({len(rows)} questions; abstain below "
                        f"{abstain:.3f}, confident from {confident:.3f})")
    table.add_column("low-confidence passage")
    for col in next(iter(results.values())):
        table.add_column(col.replace("_", " "), justify="right")
    for name, res in results.items():
        table.add_row(name, *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in res.values()))
    console.print(table)
    sep = answerability(rows, probs)
    for key, value in sep.items():
        console.print(f"  {key}: {value:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"split": "SQuAD v1.1 dev part 1 articles 1-12 (training), out of fold",
                                    "command": "python bench/answer_policy.py " + " ".join(sys.argv[1:]),
                                    "abstain_below": abstain, "confident_from": confident,
                                    "policies": results, "answerability": sep}, indent=1) + "\n")


if __name__ == "__main__":
    main()
